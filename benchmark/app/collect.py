"""``darsbench-collect``: build a DARS dataset from OpenAI-compatible endpoints (a Hydra app).

    darsbench-collect --config-name tinypool                       # conf/collect/tinypool.yaml
    darsbench-collect --config-dir my/confs --config-name mine split.seed=3
    darsbench-collect --config my.yaml --budget-usd 5 --stages prepare,rewrite   # short form

The config is composed by Hydra and checked against the schema (benchmark/collect/config.py)
before anything is written or sent; API keys named by ``api_key_env`` are checked next.
Exit status: 0 complete; 2 bad config / key / source / work_dir; 3 stopped by the budget;
4 incomplete (some requests failed: the next run retries them); 130 interrupted.
Reference: docs/collect.md.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any, Sequence

import hydra
import yaml
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from benchmark.collect.client import Budget, KeyConfigError, check_keys
from benchmark.collect.config import (
    KEYLIKE,
    CollectConfig,
    ConfigError,
    looks_like_credential,
    parse_config,
)
from benchmark.collect.pipeline import STAGES, PrepareMismatch, RunContext, run_stages
from benchmark.collect.sources import SourceError
from benchmark.collect.store import Store, StoreLockedError
from benchmark.data.io import atomic_write_json, atomic_write_text

EXIT_OK, EXIT_CONFIG, EXIT_BUDGET, EXIT_INCOMPLETE, EXIT_INTERRUPTED = 0, 2, 3, 4, 130
PROG = "darsbench-collect"
#: The shipped collection configs (a Hydra config directory).
CONF_DIR = str(Path(__file__).resolve().parents[2] / "conf" / "collect")
_HYDRA_FLAGS_WITH_VALUE = ("--config-dir", "-cd", "--config-name", "-cn", "--config-path", "-cp")
_HYDRA_INFO_FLAGS = ("--help", "-h", "--hydra-help", "--cfg", "-c", "--info", "-i", "--resolve", "--package", "-p")
_SHORT_FLAGS = {"--stages": "run.stages", "--budget-usd": "budget_usd", "--budget-scope": "run.budget_scope"}
_state: dict[str, Any] = {}


class UsageError(ValueError):
    """A bad command line (one line, exit 2)."""


def translate_argv(argv: Sequence[str]) -> tuple[list[str], str, str | None]:
    """The short form (``--config FILE``, ``--stages``, ``--budget-usd``, ``--budget-scope``,
    ``--no-progress``) as Hydra arguments. Returns (overrides, config dir, config name).

    Every ``key=value`` override becomes ``++key=value`` (set or add): the schema, not Hydra's
    struct flag, decides which keys exist, so a typo gets the schema's "unknown field" line.
    """
    overrides: list[str] = []
    conf_dir, conf_name = CONF_DIR, None
    args = list(argv)
    i = 0
    while i < len(args):
        a = args[i]
        flag, eq, inline = a.partition("=") if a.startswith("--") else (a, "", "")
        takes = flag in ("--config", *_SHORT_FLAGS, *_HYDRA_FLAGS_WITH_VALUE)
        if takes:
            if eq:
                value = inline
            else:
                if i + 1 >= len(args):
                    raise UsageError(f"{flag} needs a value")
                value = args[i + 1]
                i += 1
            if flag == "--config":
                path = Path(value)
                if not path.is_file():
                    raise UsageError(f"--config {value}: config file not found")
                conf_dir, conf_name = str(path.resolve().parent), path.stem
            elif flag in ("--config-dir", "-cd", "--config-path", "-cp"):
                conf_dir = str(Path(value).resolve())
            elif flag in ("--config-name", "-cn"):
                conf_name = value[:-5] if value.endswith(".yaml") else value
            elif flag == "--stages":
                stages = [s.strip() for s in value.split(",") if s.strip()]
                overrides.append(f"++run.stages=[{','.join(stages)}]")
            else:
                overrides.append(f"++{_SHORT_FLAGS[flag]}={value}")
        elif a == "--no-progress":
            overrides.append("++run.progress=false")
        elif a.startswith("-"):
            raise UsageError(f"unknown option {a} (see {PROG} --help)")
        elif "=" in a:
            overrides.append(a if a.startswith(("+", "~", "hydra.", "hydra/")) else f"++{a}")
        else:
            raise UsageError(f"argument {a!r} is not key=value")
        i += 1
    return overrides, conf_dir, conf_name


def check_override_secrets(overrides: Sequence[str]) -> None:
    """Refuse a credential-like key or a key-like value on the command line before Hydra
    records the overrides anywhere."""
    for o in overrides:
        key, _, value = o.lstrip("+~").partition("=")
        for part in key.replace("[", ".").replace("]", "").split("."):
            if looks_like_credential(part):
                raise ConfigError(f"override `{key}`: looks like a credential; keys are never passed as config "
                                  "(export it in an environment variable and name it in `api_key_env`)")
        if KEYLIKE.search(value):
            raise ConfigError(f"override `{key}`: the value looks like an API key; name an environment variable "
                              "in `api_key_env` instead")


def compose_config(conf_dir: str, conf_name: str, overrides: Sequence[str]) -> CollectConfig:
    """Compose ``<conf_dir>/<conf_name>.yaml`` with the overrides (Hydra) and check it."""
    path = Path(conf_dir) / f"{conf_name}.yaml"
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        with initialize_config_dir(config_dir=conf_dir, version_base="1.3", job_name=PROG):
            cfg = compose(config_name=conf_name, overrides=[o for o in overrides if not o.startswith(("hydra.", "hydra/"))])
        raw = OmegaConf.to_container(cfg, resolve=True)
    except Exception as exc:  # noqa: BLE001 - YAML / override / interpolation errors: one line naming the file
        raise ConfigError(f"{path}: cannot compose the config: {' '.join(str(exc).split())}") from None
    if isinstance(raw, dict):
        raw.pop("hydra", None)
    return parse_config(raw, str(path))


def _debug() -> bool:
    return os.environ.get("HYDRA_FULL_ERROR") == "1"


def _fail(message: str) -> int:
    print(f"{PROG}: {message}", file=sys.stderr)
    return EXIT_CONFIG


def main(argv: Sequence[str] | None = None) -> int:
    """Check the command line and the config, then run the Hydra app; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if any(a.split("=", 1)[0] in _HYDRA_INFO_FLAGS for a in argv):
        return _run_hydra(argv, record=argv)
    try:
        overrides, conf_dir, conf_name = translate_argv(argv)
        if conf_name is None:
            raise UsageError("give --config-name NAME (conf/collect/NAME.yaml), or --config FILE")
        check_override_secrets(overrides)
        cfg = compose_config(conf_dir, conf_name, overrides)
        check_keys(cfg)
    except (UsageError, ConfigError, KeyConfigError) as exc:
        if _debug():
            raise
        return _fail(str(exc))
    run_id = time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]
    _state.update(run_id=run_id, argv=[PROG, *argv], code=EXIT_CONFIG, config_path=cfg.config_path)
    hydra_args = ["--config-dir", conf_dir, "--config-name", conf_name, *overrides,
                  "hydra/job_logging=none", "hydra/hydra_logging=none", "hydra.output_subdir=null",
                  "hydra.job.chdir=false", f"hydra.run.dir={Path(cfg.work_dir).resolve() / 'runs' / run_id}"]
    return _run_hydra(hydra_args, record=argv)


def _run_hydra(args: list[str], record: Sequence[str]) -> int:
    saved = sys.argv
    sys.argv = [PROG, *args]
    _state.setdefault("code", EXIT_OK)
    try:
        _hydra_app()
    finally:
        sys.argv = saved
    return int(_state.pop("code", EXIT_OK))


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name=None)
def _hydra_app(hcfg: DictConfig) -> None:
    raw = OmegaConf.to_container(hcfg, resolve=True)
    cfg = parse_config(raw, _state.get("config_path"))  # composed and checked already; typed here
    out_dir = Path(HydraConfig.get().runtime.output_dir)
    _state["code"] = collect(cfg, _state.get("run_id", "run"), _state.get("argv", [PROG]), out_dir)


def collect(cfg: CollectConfig, run_id: str, argv: Sequence[str], run_dir: Path | None = None) -> int:
    """Run the configured stages on the work_dir store; returns the exit status."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("httpx", "httpcore", "sentence_transformers"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        store = Store(cfg.work_dir)
    except StoreLockedError as exc:
        return _fail(str(exc))
    stale = store.mark_stale_runs()
    if stale:
        print(f"{PROG}: marked {len(stale)} run(s) left 'running' by a dead process as interrupted: {', '.join(stale)}",
              flush=True)
    limit = cfg.budget_usd
    already = store.total_spend_usd() if cfg.run.budget_scope == "total" else 0.0
    budget = Budget(limit, already)
    ctx = RunContext(cfg, store, run_id, budget, progress=cfg.run.progress)
    store.start_run(run_id, list(argv))
    if run_dir is not None:
        atomic_write_text(run_dir / "config.yaml",
                          yaml.safe_dump(json.loads(cfg.model_dump_json(by_alias=True)), sort_keys=False))
    t0 = time.monotonic()
    status, code = "failed", EXIT_CONFIG
    results: list = []
    try:
        print(f"{PROG}: dataset {cfg.dataset}, work_dir {cfg.work_dir}, run {run_id}"
              + (f", budget ${limit} ({cfg.run.budget_scope})" if limit is not None else ""), flush=True)
        results = run_stages(ctx, [s for s in STAGES if s in cfg.run.stages])
        failed = sum(r.failed for r in results)
        incomplete = any(not r.complete for r in results)
        if any(r.budget_stopped for r in results):
            status, code = "budget", EXIT_BUDGET
        elif failed or incomplete:
            status, code = "incomplete", EXIT_INCOMPLETE
        else:
            status, code = "complete", EXIT_OK
        print(f"{PROG}: {status} in {time.monotonic() - t0:.1f}s; spend this run ${budget.spent:.6f}, "
              f"total ${store.total_spend_usd():.6f}", flush=True)
        if failed:
            print(f"{PROG}: {failed} requests failed (see the errors table in {store.path}); "
                  "run the same command again to retry them", flush=True)
        return code
    except (SourceError, PrepareMismatch) as exc:
        return _fail(str(exc))
    except KeyboardInterrupt:
        status, code = "interrupted", EXIT_INTERRUPTED
        print(f"\n{PROG}: interrupted; completed items are saved, run again to resume", file=sys.stderr)
        return code
    finally:
        store.finish_run(run_id, status, f"{budget.spent}")
        store.close()
        if run_dir is not None:
            atomic_write_json(run_dir / "summary.json", {
                "run_id": run_id, "status": status, "exit_code": code, "spend_usd": str(budget.spent),
                "stages": [{"stage": r.stage, "total": r.total, "done_now": r.done_now, "done_before": r.done_before,
                            "failed": r.failed, "notes": r.notes} for r in results]})


def run_cli(path: str | os.PathLike, *extra: str) -> int:
    """``darsbench-collect --config path --no-progress *extra`` in-process (tests, notebooks)."""
    return main(["--config", str(path), "--no-progress", *extra])


if __name__ == "__main__":
    sys.exit(main())
