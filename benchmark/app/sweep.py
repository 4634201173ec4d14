"""Sweeps that survive their cells: manifest, cache preparation, fingerprints, resume and status.

* At sweep start (:class:`benchmark.app.callbacks.LeaderboardCallback`) the sweep writes
  ``sweep_manifest.json``: every cell's job number, overrides and folder, expanded exactly as
  Hydra's basic sweeper expands them; then it builds the dataset and feature caches once.
* Each cell stores a fingerprint in ``results.json``: sha256 of its resolved config (keys that do
  not change numbers removed) plus the data content hash. ``resume=true`` keeps a cell whose
  fingerprint matches and recomputes the others.
* A failed cell writes ``error.json``; :func:`sweep_status` separates finished, failed and
  missing cells from the manifest, not from the results that happen to exist.

README, "Sweeps on Ray and Slurm", "Resume" and "Failures".
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import traceback
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict

from benchmark.data.io import atomic_write_json, atomic_write_text
from benchmark.features import compute_features

MANIFEST = "sweep_manifest.json"
STATUS_JSON = "sweep_status.json"
STATUS_MD = "sweep_status.md"
ERROR = "error.json"
RESULTS = "results.json"
MANIFEST_SCHEMA = "darsbench.sweep/1"
ERROR_SCHEMA = "darsbench.error/1"

#: Config keys that never change a cell's numbers: left out of the fingerprint.
NOT_FINGERPRINTED = ("resume", "print_table", "logger", "paths", "cache_dir", "threads", "router_name")
#: Override keys whose differences the leaderboard already shows (columns or settings): ``arm``
#: (supervision mode + protocol) and ``train`` (queries or budget) are the rows and columns of the
#: budget and learning-curve tables, and runs differing only by ``seed`` are aggregated as seeds.
SHOWN_KEYS = ("router", "supervision", "dataset", "cost", "protocol", "experiment", "resume",
              "threads", "print_table", "logger", "hydra", "frontier", "decisions_format",
              "arm", "train", "seed")


# ----------------------------------------------------------------------------- the grid
def expand_jobs(config: DictConfig) -> list[list[str]]:
    """The override list of every job of this multirun, in launch order (job number = index),
    as Hydra's basic sweeper computes it (sweeper params first, then the command line)."""
    params = config.hydra.sweeper.get("params") or {}
    args = [f"{k}={v}" for k, v in params.items()]
    args += [str(o) for o in config.hydra.overrides.task]
    parser = OverridesParser.create(config_loader=GlobalHydra.instance().config_loader())
    batches = BasicSweeper.split_arguments(parser.parse_overrides(args), None)
    return [list(job) for job in batches[0]] if batches else []


def _key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def varying_keys(jobs: list[list[str]]) -> list[str]:
    """Override keys whose value differs between jobs."""
    values: dict[str, set[str]] = {}
    for job in jobs:
        for o in job:
            values.setdefault(_key(o), set()).add(o.split("=", 1)[1] if "=" in o else "")
    n = len(jobs)
    present = {k: sum(any(_key(o) == k for o in job) for job in jobs) for k in values}
    return sorted(k for k, v in values.items() if len(v) > 1 or present[k] != n)


def cell_label(router: str, overrides: list[str], varying: list[str]) -> str:
    """``router`` plus every varying override the leaderboard does not already tell apart,
    e.g. ``knn[router.k=5]``; plain ``router`` when there is none."""
    extra = [o for o in overrides if _key(o) in varying
             and (_key(o).startswith("router.") or _key(o).split(".", 1)[0] not in SHOWN_KEYS)]
    return f"{router}[{','.join(extra)}]" if extra else router


def write_manifest(config: DictConfig, command: str) -> dict[str, Any] | None:
    """Write ``<sweep dir>/sweep_manifest.json``; return it with each cell's composed config
    under ``"_configs"`` (not written). None when the sweeper is not Hydra's basic one."""
    target = str(config.hydra.sweeper.get("_target_", ""))
    if not target.endswith("BasicSweeper"):
        return None
    jobs = expand_jobs(config)
    loader = GlobalHydra.instance().config_loader()
    varying = varying_keys(jobs)
    cells, configs = [], []
    composed: dict[tuple[str, ...], DictConfig] = {}
    for num, job in enumerate(jobs):
        cfg = loader.load_sweep_config(config, list(job))
        composed[tuple(job)] = copy.deepcopy(cfg)
        with open_dict(cfg):
            cfg.hydra.job.num = num
        folder = str(OmegaConf.select(cfg, "hydra.sweep.subdir"))
        choices = cfg.hydra.runtime.choices
        router = str(choices.get("router", "router"))
        cells.append({
            "num": num, "folder": folder, "overrides": job,
            "router": router, "label": cell_label(router, job, varying),
            "supervision": str(choices.get("supervision", "")),
            "dataset": str(choices.get("dataset", "")),
        })
        configs.append(cfg)
    manifest = {
        "schema": MANIFEST_SCHEMA,
        "command": command,
        "written_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "launcher": str(config.hydra.launcher.get("_target_", "")),
        "varying_keys": varying,
        "cells": cells,
    }
    sweep_dir = Path(str(config.hydra.sweep.dir))
    atomic_write_json(sweep_dir / MANIFEST, manifest)
    reuse_compositions(loader, config, composed)
    return {**manifest, "_configs": configs}


def reuse_compositions(loader: Any, master: DictConfig, composed: dict[tuple[str, ...], DictConfig]) -> None:
    """Hand out copies of the job configs composed for the manifest.

    In one process Hydra composes every job's config twice more after the manifest did (the
    basic sweeper's ``validate_batch_is_legal`` and the launcher), each a full walk of the config
    tree (about 0.1 s a job). The loader's ``load_sweep_config`` then returns a deep copy of the
    manifest's composition for the same sweep config and overrides (the same files, overrides and
    resolver cache, so the same config) and composes anything else as before.
    """
    original = loader.load_sweep_config

    def load_sweep_config(master_config: DictConfig, sweep_overrides: list[str]) -> DictConfig:
        hit = composed.get(tuple(sweep_overrides)) if master_config is master else None
        if hit is None:
            return original(master_config, sweep_overrides)
        return copy.deepcopy(hit)

    loader.load_sweep_config = load_sweep_config


def read_manifest(sweep_dir: str | Path) -> dict[str, Any] | None:
    path = Path(sweep_dir) / MANIFEST
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def manifest_cell(sweep_dir: str | Path, num: int) -> dict[str, Any] | None:
    manifest = read_manifest(sweep_dir)
    if manifest is None:
        return None
    cells = [c for c in manifest["cells"] if c["num"] == num]
    return cells[0] if cells else None


# ----------------------------------------------------------------------- cache preparation
def dataset_key(cfg: DictConfig) -> str:
    """A cell's dataset: its resolved ``dataset`` config and cache folder."""
    cache_dir = Path(os.path.expanduser(str(cfg.cache_dir)))
    return json.dumps([OmegaConf.to_container(cfg.dataset, resolve=True), str(cache_dir)],
                      sort_keys=True, default=str)


#: The dataset this process loaded last, ``(dataset_key, file stamps, dataset)``: the cells of a
#: sweep that runs in one process (the basic launcher) reuse what :func:`prepare_caches` or the
#: previous cell read instead of parsing the cache again. One entry, so memory holds one dataset.
_LAST_DATASET: list[tuple[str, tuple, Any]] = []


def _file_stamps(data: Any) -> tuple:
    """(path, size, mtime) of every file the dataset was read from: an edited file is read again."""
    out = []
    for path in (data.source or {}).get("paths") or []:
        try:
            st = os.stat(path)
            out.append((str(path), st.st_size, st.st_mtime_ns))
        except OSError:
            out.append((str(path), None, None))
    return tuple(out)


def load_dataset(cfg: DictConfig, source: Any | None = None) -> Any:
    """The cell's dataset (raw costs): the one loaded last in this process when ``cfg`` names
    the same dataset config and cache folder and its files are unchanged, else ``source.load``
    (``source``: the instantiated ``cfg.dataset``). Cells never modify a dataset (run_cell builds
    normalised copies)."""
    key = dataset_key(cfg)
    if _LAST_DATASET:
        last_key, stamps, data = _LAST_DATASET[0]
        if last_key == key and _file_stamps(data) == stamps:
            return data
    _LAST_DATASET.clear()  # release the previous one before reading the next
    source = instantiate(cfg.dataset) if source is None else source
    data = source.load(Path(os.path.expanduser(str(cfg.cache_dir))))
    _LAST_DATASET.append((key, _file_stamps(data), data))
    return data


def release_dataset() -> None:
    """Forget the dataset kept by :func:`load_dataset` (the sweep's cells are done)."""
    _LAST_DATASET.clear()


def prepare_caches(configs: list[DictConfig]) -> list[str]:
    """Load every distinct dataset and compute every distinct (dataset, features) pair once,
    filling ``cache_dir`` before the cells start. Returns one line per failure: a cell whose
    data cannot be prepared fails on its own, in its own folder, when it runs."""
    done: set[str] = set()
    problems: list[str] = []
    failed: set[str] = set()
    first: dict[str, int] = {}
    for cfg in configs:
        first.setdefault(dataset_key(cfg), len(first))
    # grouped by dataset (in order of first use) so each is read once with a one-entry memo
    for cfg in sorted(configs, key=lambda c: first[dataset_key(c)]):
        cache_dir = Path(os.path.expanduser(str(cfg.cache_dir)))
        d_key = dataset_key(cfg)
        f_key = json.dumps([d_key, OmegaConf.to_container(cfg.features, resolve=True)],
                           sort_keys=True, default=str)
        if f_key in done or d_key in failed:
            continue
        done.add(f_key)
        try:
            data = load_dataset(cfg)
            featurizer = instantiate(cfg.features)
            if getattr(featurizer, "progress", False) is None:
                featurizer.progress = False  # no encoding bar in a sweep unless features.progress=true
            compute_features(featurizer, data.train_queries["text"].tolist(),
                             data.test_queries["text"].tolist(), cache_dir=cache_dir)
        except Exception as exc:  # noqa: BLE001 - reported; the cell records its own error
            if not _LAST_DATASET or _LAST_DATASET[0][0] != d_key:
                failed.add(d_key)  # the data itself failed: not retried for other features
            problems.append(f"{cfg.hydra.runtime.choices.get('dataset')}: {type(exc).__name__}: {exc}")
    return problems


# ------------------------------------------------------------------------ fingerprints
def fingerprint(resolved: dict[str, Any], content_hash: str | None) -> dict[str, Any]:
    """sha256 over the cell's resolved config (without :data:`NOT_FINGERPRINTED`) and the data
    content hash."""
    cell = {k: v for k, v in resolved.items() if k not in NOT_FINGERPRINTED}
    text = json.dumps({"config": cell, "content_hash": content_hash}, sort_keys=True, default=str)
    return {"sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(), "content_hash": content_hash}


def stored_fingerprint(out_dir: Path) -> dict[str, Any] | None:
    """The fingerprint of ``out_dir/results.json``; None when there is no readable result."""
    path = Path(out_dir) / RESULTS
    try:
        return json.loads(path.read_text(encoding="utf-8")).get("fingerprint") or {}
    except (OSError, ValueError):
        return None


def read_results(out_dir: Path) -> dict[str, Any]:
    return json.loads((Path(out_dir) / RESULTS).read_text(encoding="utf-8"))


def resume_decision(out_dir: Path, current: dict[str, Any]) -> tuple[bool, str]:
    """``(keep, why)``: keep a complete cell whose fingerprint matches ``current``."""
    stored = stored_fingerprint(out_dir)
    if stored is None:
        return False, "no complete results.json"
    if stored.get("sha256") == current["sha256"]:
        return True, "complete, fingerprint matches"
    if stored.get("content_hash") != current["content_hash"]:
        return False, (f"data changed (content hash {str(stored.get('content_hash'))[:12]} -> "
                       f"{str(current['content_hash'])[:12]})")
    return False, "config changed since its results.json"


# ----------------------------------------------------------------------------- failures
def write_error(out_dir: Path, exc: BaseException, cell: dict[str, Any] | None = None) -> Path:
    """``error.json``: the exception's type and message, the traceback in its own field."""
    payload = {
        "schema": ERROR_SCHEMA,
        "type": type(exc).__name__,
        "message": str(exc),
        "traceback": "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)),
        "cell": cell,
        "written_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    return atomic_write_json(Path(out_dir) / ERROR, payload)


def clear_error(out_dir: Path) -> None:
    """Remove the error.json of an earlier failed attempt once the cell has a result."""
    path = Path(out_dir) / ERROR
    if path.exists() and (Path(out_dir) / RESULTS).exists():
        path.unlink()


# ------------------------------------------------------------------------------- status
def sweep_status(sweep_dir: str | Path) -> dict[str, Any] | None:
    """Finished / failed / missing cells of a sweep, from its manifest; None without one.

    A cell is finished when its folder holds results.json, failed when it holds error.json and
    no results.json, missing otherwise (never started, or killed). ``routers_without_result``
    lists routers of the grid with no finished cell at all."""
    sweep_dir = Path(sweep_dir)
    manifest = read_manifest(sweep_dir)
    if manifest is None:
        return None
    finished, failed, missing = [], [], []
    for cell in manifest["cells"]:
        folder = sweep_dir / cell["folder"]
        entry = {k: cell[k] for k in ("num", "folder", "label", "supervision", "dataset")}
        entry["overrides"] = " ".join(cell["overrides"])
        if (folder / RESULTS).is_file():
            finished.append(entry)
        elif (folder / ERROR).is_file():
            err = json.loads((folder / ERROR).read_text(encoding="utf-8"))
            failed.append({**entry, "type": err.get("type"), "message": err.get("message"),
                           "error": str(folder / ERROR)})
        else:
            missing.append(entry)
    routers = sorted({c["label"] for c in manifest["cells"]})
    done = {c["label"] for c in finished}
    return {
        "sweep_dir": str(sweep_dir), "command": manifest.get("command"),
        "n_cells": len(manifest["cells"]), "finished": finished, "failed": failed,
        "missing": missing, "routers_without_result": [r for r in routers if r not in done],
    }


def status_markdown(status: dict[str, Any]) -> str:
    lines = [f"**Sweep status**: {len(status['finished'])} of {status['n_cells']} cells finished, "
             f"{len(status['failed'])} failed, {len(status['missing'])} missing "
             f"(grid from {MANIFEST})", ""]
    if status["failed"]:
        lines += ["Failed cells:", "", "| # | cell | error | folder |", "|---:|---|---|---|"]
        for c in status["failed"]:
            msg = str(c["message"]).replace("|", "\\|").replace("\n", " ")[:300]
            lines.append(f"| {c['num']} | {c['overrides']} | {c['type']}: {msg} | {c['folder']} |")
        lines.append("")
    if status["missing"]:
        lines += ["Missing cells (never finished):", "", "| # | cell | folder |", "|---:|---|---|"]
        lines += [f"| {c['num']} | {c['overrides']} | {c['folder']} |" for c in status["missing"]]
        lines.append("")
    if status["routers_without_result"]:
        lines.append("Routers with no finished cell: " + ", ".join(status["routers_without_result"]))
        lines.append("")
    if status["failed"] or status["missing"]:
        lines.append("Resume: rerun the same command with "
                     f"hydra.sweep.dir={status['sweep_dir']} resume=true")
    return "\n".join(lines).rstrip() + "\n"


def write_status(sweep_dir: str | Path) -> dict[str, Any] | None:
    status = sweep_status(sweep_dir)
    if status is not None:
        atomic_write_json(Path(sweep_dir) / STATUS_JSON, status)
        atomic_write_text(Path(sweep_dir) / STATUS_MD, status_markdown(status))
    return status
