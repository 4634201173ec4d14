"""Hydra callbacks: prepare a sweep before its cells, report on it when the multirun ends."""

from __future__ import annotations

import json
import shlex
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import pandas as pd
from hydra.experimental.callback import Callback
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf

from benchmark.app import sweep as S
from evaluators.diagnostics_report import diagnostics_markdown, write_diagnostics
from evaluators.leaderboard import build_leaderboards, write_leaderboard


def sweep_command(config: DictConfig) -> str:
    """The ``darsbench -m ...`` command line of the sweep (its command-line overrides)."""
    try:
        task = list(config.hydra.overrides.task)
        task += [o for o in config.hydra.overrides.hydra if not str(o).startswith("hydra.mode=")]
    except Exception:  # noqa: BLE001 - best effort, only used in file headers
        task = []
    return "darsbench -m " + shlex.join(str(t) for t in task)


class LeaderboardCallback(Callback):
    """At the start of a multirun: ``sweep_manifest.json`` (every cell of the grid) and the
    dataset / feature caches, built once for all cells (:mod:`benchmark.app.sweep`).

    At the end of a multirun, in the sweep folder:

    * ``sweep_status.md`` / ``.json``: finished, failed and missing cells (printed when any
      failed or is missing); the process exits with status 1 when a cell failed;

    * ``leaderboard.md`` / ``leaderboard.csv``: the long table of every run (printed);
    * ``leaderboard/``: the paper-shaped tables, figures and missing cells of
      :func:`evaluators.leaderboard.build_leaderboards` (what ``darsbench-leaderboard`` writes);
    * with ``logger=wandb``: those files as a ``leaderboard`` artifact in the sweep's group.

    A failure of the paper tables or the upload is reported as a warning; it never fails the
    sweep (every job's ``results.json`` is already on disk). ``plots=False`` writes the tables
    without figures (no matplotlib: about 1 s less per sweep; ``darsbench-leaderboard <sweep dir>``
    draws them later).
    """

    def __init__(self, analyses: bool = True, prepare: bool = True, plots: bool = True) -> None:
        self.analyses = analyses
        self.prepare = prepare
        self.plots = plots

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        t0 = time.perf_counter()
        # Resolve the cache folder here: the cached value travels with every cell's config.
        _ = config.cache_dir
        manifest = S.write_manifest(config, sweep_command(config))
        if manifest is None:
            return
        configs = manifest.pop("_configs")
        problems = S.prepare_caches(configs) if self.prepare else []
        print(f"darsbench: sweep of {len(configs)} cells in {config.hydra.sweep.dir}; caches "
              f"ready in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        for line in problems:
            print(f"darsbench: cache not prepared for {line}", file=sys.stderr)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        S.release_dataset()  # the cells are done: the leaderboards run without the dataset in memory
        sweep_dir = Path(config.hydra.sweep.dir)
        if not sweep_dir.exists():
            return
        status = S.write_status(sweep_dir)
        try:
            self._leaderboards(config, sweep_dir)
        finally:
            if status is not None and (status["failed"] or status["missing"]):
                print("\n" + S.status_markdown(status))
            if status is not None and status["failed"]:
                print(f"darsbench: {len(status['failed'])} of {status['n_cells']} cells failed "
                      f"(see {sweep_dir / S.STATUS_MD})", file=sys.stderr)
                sys.exit(1)

    def _leaderboards(self, config: DictConfig, sweep_dir: Path) -> None:
        text = write_leaderboard([sweep_dir], sweep_dir)
        if text:
            print(text)
        if not text or not self.analyses:
            return
        command = sweep_command(config)
        try:
            report = build_leaderboards(
                [sweep_dir], sweep_dir / "leaderboard",
                header=[f"generated at the end of the sweep: {command}",
                        f"rebuild with: darsbench-leaderboard {sweep_dir}"],
                plots=bool(self.plots),
            )
        except Exception as exc:  # noqa: BLE001
            warnings.warn(f"paper-shaped leaderboards failed: {exc!r}", stacklevel=1)
            return
        print(f"\npaper tables, figures and missing cells: {sweep_dir / 'leaderboard' / 'README.md'}"
              f" ({len(report.missing)} missing cells)")
        self._upload(config, sweep_dir, report, command)

    @staticmethod
    def _upload(config: DictConfig, sweep_dir: Path, report: Any, command: str) -> None:
        logger_cfg = config.get("logger")
        if logger_cfg is None or not hasattr(logger_cfg, "get") or not logger_cfg.get("_target_"):
            return
        try:
            cls = get_class(str(logger_cfg["_target_"]))
        except Exception:  # noqa: BLE001 - the jobs already reported a bad logger
            return
        if not hasattr(cls, "log_leaderboard"):
            return

        try:
            logger = instantiate(logger_cfg)
            tables = {
                kind: pd.concat([t.frame for t in tabs], ignore_index=True)
                for kind, tabs in report.tables.items() if tabs
            }
            files = [*report.files, sweep_dir / "leaderboard.md", sweep_dir / "leaderboard.csv"]
            cfg = {"sweep_dir": str(sweep_dir), "command": command,
                   "overrides": OmegaConf.to_container(config.hydra.overrides.task)}
            where = logger.log_leaderboard(sweep_dir, files, tables, config=cfg)
            if where is not None:
                print(f"leaderboard artifact logged: {where}")
        except Exception as exc:  # noqa: BLE001
            print(f"darsbench: leaderboard upload failed: {exc!r}", file=sys.stderr)


class DiagnoseCallback(Callback):
    """At the end of a ``darsbench-diagnose`` multirun: every dataset of the sweep in one
    ``diagnostics.md`` / ``.csv``, ``instability.png`` (Fig. 2a), ``variance.png`` (Fig. 2b) and
    ``draw_histogram_<dataset>.png`` (Fig. 2c) in the sweep folder."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        if not sweep_dir.exists():
            return
        payloads = [
            json.loads(p.read_text(encoding="utf-8"))
            for p in sorted(sweep_dir.glob("*/diagnostics.json"))
        ]
        if not payloads:
            return
        command = sweep_command(config).replace("darsbench -m", "darsbench-diagnose -m", 1)
        header = [f"generated at the end of the sweep: {command}"]
        try:
            write_diagnostics(payloads, sweep_dir, header=header)
        except Exception as exc:  # noqa: BLE001 - every job's own outputs are already written
            warnings.warn(f"combined diagnostics failed: {exc!r}", stacklevel=1)
            return
        print(diagnostics_markdown(payloads))
        print(f"\ncombined diagnostics: {sweep_dir / 'diagnostics.md'} (+ .csv, instability.png, variance.png)")
