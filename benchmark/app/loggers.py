"""Experiment loggers selected by ``logger=none|csv|wandb``.

A logger receives each finished job's results (``log_results``) and is closed with ``finish``.
``results.json`` is always written by the run loop whatever the logger. A logger may also have
``log_leaderboard(sweep_dir, files, tables)``, called once at the end of a sweep by
:class:`benchmark.app.callbacks.LeaderboardCallback` (the wandb logger uploads the tables there).
Constructors do no I/O (``tests/test_configs.py`` instantiates every logger).
"""

from __future__ import annotations

import csv
import fcntl
import importlib
import io
import os
import sys
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig

from benchmark.data.io import atomic_write_text


def flat_metrics(results: dict[str, Any]) -> dict[str, float]:
    """``{metric: mean}``, ``{metric_std: std}`` for metrics measured over draws, the 95%
    bootstrap interval ``{metric_low, metric_high}`` where the run has one, and the AIQ of the
    frontier with its interval on each view (``aiq/<view>``, ``aiq/<view>_low`` / ``_high``,
    and the fixed models' hull as ``aiq/<view>/fixed``)."""
    out: dict[str, float] = {}
    for k, v in results["metrics"].items():
        out[k] = v["mean"]
        if v["n"] > 1:
            out[k + "_std"] = v["std"]
        if v.get("ci"):
            out[k + "_low"], out[k + "_high"] = v["ci"]
    for view, a in ((results.get("frontier") or {}).get("aiq") or {}).items():
        out[f"aiq/{view}"], (out[f"aiq/{view}_low"], out[f"aiq/{view}_high"]) = a["aiq"], a["ci"]
        out[f"aiq/{view}/fixed"] = a["fixed_aiq"]
        out[f"aiq/{view}/fixed_low"], out[f"aiq/{view}/fixed_high"] = a["fixed_ci"]
    return out


def baseline_metrics(results: dict[str, Any]) -> dict[str, float]:
    """``baseline/<name>/<metric>`` (with ``_low`` / ``_high`` from its interval) and
    ``fixed/<model>/<metric>`` of a run's baselines."""
    out: dict[str, float] = {}
    for name, b in (results.get("baselines") or {}).items():
        if name == "fixed_models":
            for model, vals in b.items():
                out.update({f"fixed/{model}/{k}": v for k, v in vals.items()})
            continue
        out.update({f"baseline/{name}/{k}": v for k, v in b.items()
                    if isinstance(v, (int, float)) and not isinstance(v, bool)})
        for k, (lo, hi) in (b.get("ci") or {}).items():
            out[f"baseline/{name}/{k}_low"], out[f"baseline/{name}/{k}_high"] = lo, hi
    return out


#: Columns that identify a cell of a paired-comparison table (``*_diff`` leaderboard kinds).
PAIRED_KEYS = ("router", "dataset", "metric", "a", "b", "arm", "reference", "budget")
#: Numbers logged per paired comparison.
PAIRED_VALUES = ("diff", "low", "high", "p", "p_adjusted", "significant", "pairs")


def paired_metrics(tables: dict[str, Any]) -> dict[str, float]:
    """Every cell of the leaderboard's paired-comparison tables (kinds ending in ``_diff``) as
    scalars ``<kind>/<router>/<dataset>/<metric>/<a>-<b>/<value>`` (budget tables: the arm,
    reference and budget instead of a and b), with :data:`PAIRED_VALUES`. When a table holds
    several settings, the setting's index among them is added after the kind."""
    out: dict[str, float] = {}
    for kind, frame in tables.items():
        if not kind.endswith("_diff") or frame is None or not len(frame):
            continue
        settings = list(dict.fromkeys(frame["setting"])) if "setting" in frame else [None]
        for row in frame.to_dict("records"):
            parts = [kind] + ([f"setting{settings.index(row['setting'])}"] if len(settings) > 1 else [])
            ident = {k: row[k] for k in PAIRED_KEYS if k in row}
            if "a" in ident and "b" in ident:
                ident["a"] = f"{ident.pop('a')}-{ident.pop('b')}"
            parts += [str(v) for v in ident.values()]
            for v in PAIRED_VALUES:
                if v in row:
                    out["/".join(parts + [v])] = float(row[v])
    return out


class NullLogger:
    """Logs nothing."""

    def log_results(self, results: dict[str, Any], run_dir: Path) -> None:
        return None

    def finish(self) -> None:
        return None


class CsvLogger:
    """Appends one row per job (identity columns, metric means, std over draws, 95% intervals
    and AIQ, :func:`flat_metrics`) to ``<run_dir>/../<filename>``.

    In a sweep every job appends to one file in the sweep folder. Jobs differ in their columns
    (single-shot has ``_std``; a run without a frontier has no AIQ): a row with a column the
    file lacks rewrites the file once with the widened header, earlier rows left empty there.
    Writers take an exclusive lock on ``<filename>.lock`` (parallel jobs); each row is flushed
    and synced, so a killed sweep keeps its finished rows.
    """

    def __init__(self, filename: str = "metrics.csv") -> None:
        self.filename = filename

    def log_results(self, results: dict[str, Any], run_dir: Path) -> None:
        row = {
            "run_dir": str(run_dir),
            "dataset": results["dataset"]["name"],
            "router": results["router"],
            "supervision": results["supervision"],
            "lam": results["cost"]["lam"],
            "beta": results["cost"]["beta"],
            "seed": results["seed"],
            **flat_metrics(results),
        }
        path = Path(run_dir).parent / self.filename
        with open(path.parent / (path.name + ".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            header: list[str] = []
            if path.exists() and path.stat().st_size:
                with open(path, newline="", encoding="utf-8") as fh:
                    header = next(csv.reader(fh))
            wider = header + [k for k in row if k not in header]
            if header and wider != header:
                with open(path, newline="", encoding="utf-8") as fh:
                    old = list(csv.DictReader(fh))
                buf = io.StringIO()
                writer = csv.DictWriter(buf, fieldnames=wider)
                writer.writeheader()
                writer.writerows(old + [row])
                atomic_write_text(path, buf.getvalue())
                return
            with open(path, "a", newline="", encoding="utf-8") as fh:
                writer = csv.DictWriter(fh, fieldnames=wider)
                if not header:
                    writer.writeheader()
                writer.writerow(row)
                fh.flush()
                os.fsync(fh.fileno())

    def finish(self) -> None:
        return None


# ------------------------------------------------------------------------------ wandb
WANDB_MISSING = (
    "logger=wandb needs the wandb package, which is not installed. Install it with "
    "`pip install 'darsbench[wandb]'` (or `pip install wandb`), or choose logger=csv / logger=none."
)


def import_wandb() -> Any:
    """``import wandb``, or an ImportError that says how to get it."""
    try:
        return importlib.import_module("wandb")
    except ImportError as exc:
        raise ImportError(WANDB_MISSING) from exc


def sweep_group() -> str | None:
    """The sweep folder's name when running inside a Hydra multirun job, else None."""
    try:
        if HydraConfig.initialized():
            hc = HydraConfig.get()
            if hc.mode is not None and hc.mode.name == "MULTIRUN":
                return Path(str(hc.sweep.dir)).name
    except Exception:  # noqa: BLE001 - outside Hydra there is simply no sweep
        return None
    return None


def _safe_name(text: str) -> str:
    """Artifact names allow letters, digits, '-', '_' and '.'."""
    return "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in text)


class WandbLogger:
    """Weights & Biases: one wandb run per job, offline by default.

    Each job's run gets the job's resolved config, every metric (means, ``_std`` over
    single-shot draws, ``_low`` / ``_high`` 95% intervals, AIQ per view with its interval) in
    its summary and history, the baselines (``baseline/<name>/<metric>``, with intervals),
    the per-draw values and the frontier points as tables, and ``results.json`` as a file.
    Runs are grouped by sweep (``group`` = the sweep folder's name in a multirun, unless
    ``group`` is given) and tagged ``dataset:<name>``, ``router:<name>``, ``mode:<mode>``.

    ``mode="offline"`` (the default, from ``WANDB_MODE``) writes the run under
    ``<run folder>/wandb/offline-run-*``; upload it later with ``wandb sync <that folder>``.
    ``dir`` overrides where the ``wandb/`` folder goes.
    """

    def __init__(
        self,
        project: str = "darsbench",
        entity: str | None = None,
        mode: str | None = None,
        group: str | None = None,
        tags: list[str] | tuple[str, ...] = (),
        job_type: str = "cell",
        dir: str | None = None,  # noqa: A002 - wandb's own name for it
        log_files: bool = True,
    ) -> None:
        import_wandb()  # fail before the job runs, with a clear message
        self.project = project
        self.entity = entity
        self.mode = mode or os.environ.get("WANDB_MODE") or "offline"
        self.group = group
        self.tags = [str(t) for t in (tags or ())]
        self.job_type = job_type
        self.dir = dir
        self.log_files = log_files
        self.run: Any = None

    def _init(self, wandb: Any, run_dir: Path, **kwargs: Any) -> Any:
        base = Path(self.dir) if self.dir else Path(run_dir)
        base.mkdir(parents=True, exist_ok=True)
        return wandb.init(
            project=self.project,
            entity=self.entity,
            mode=self.mode,
            dir=str(base),
            settings=wandb.Settings(console="off", x_disable_stats=True, silent=True),
            **kwargs,
        )

    def log_results(self, results: dict[str, Any], run_dir: Path) -> None:
        wandb = import_wandb()
        run_dir = Path(run_dir)
        group = self.group or sweep_group()
        d = results["dataset"]["name"]
        r, m = results["router"], results["supervision"]
        tags = [f"dataset:{d}", f"router:{r}", f"mode:{m}", *self.tags]
        config = dict(results.get("config") or {})
        config.setdefault("router_name", r)
        self.run = run = self._init(
            wandb, run_dir,
            group=group,
            job_type=self.job_type,
            name=run_dir.name if group else f"{r}-{m}-{d}",
            tags=[t[:64] for t in tags],
            config=config,
            reinit="finish_previous",
        )
        flat = {**flat_metrics(results), **baseline_metrics(results)}
        flat.update({f"time/{k}": v for k, v in (results.get("timings_s") or {}).items()})
        run.log(flat)
        run.summary.update(flat)
        per_draw = results.get("per_draw")
        if per_draw:
            keys = sorted(per_draw)
            n = len(per_draw[keys[0]])
            table = wandb.Table(columns=["draw", *keys], data=[[i, *(per_draw[k][i] for k in keys)] for i in range(n)])
            run.log({"per_draw": table})
            if "rU" in per_draw:
                run.summary["per_draw_rU_hist"] = wandb.Histogram(per_draw["rU"])
        fr = results.get("frontier")
        if fr:
            keys = [k for k in ("rC", "rQ", "dC", "dQ") if k in fr]
            rows = [[lam, *(fr[k][i] for k in keys)] for i, lam in enumerate(fr["lams"])]
            run.log({"frontier": wandb.Table(columns=["lam", *keys], data=rows)})
        res_path = run_dir / "results.json"
        if self.log_files and res_path.exists():
            run.save(str(res_path), base_path=str(run_dir), policy="now")

    def log_leaderboard(
        self, sweep_dir: Path, files: list[Path], tables: dict[str, Any] | None = None,
        config: dict[str, Any] | None = None,
    ) -> Path | None:
        """One ``leaderboard`` run in the sweep's group: every paired comparison as scalars
        (:func:`paired_metrics`), the tables as wandb Tables and every file (markdown, CSV, PNG)
        in a ``leaderboard`` artifact. Returns the run's local folder."""
        wandb = import_wandb()
        sweep_dir = Path(sweep_dir)
        group = self.group or sweep_dir.name
        run = self._init(
            wandb, sweep_dir,
            group=group, job_type="leaderboard", name=f"leaderboard-{group}",
            tags=["leaderboard", *self.tags], config=config or {"sweep_dir": str(sweep_dir)},
            reinit="finish_previous",
        )
        try:
            paired = paired_metrics(tables or {})
            if paired:  # every paired comparison's difference, interval and (adjusted) p-value
                run.log(paired)
                run.summary.update(paired)
            for name, frame in (tables or {}).items():
                if frame is not None and len(frame):
                    run.log({f"leaderboard/{name}": wandb.Table(dataframe=frame.astype(object).where(frame.notna(), None))})
            art = wandb.Artifact(_safe_name(f"leaderboard-{group}"), type="leaderboard")
            for f in files:
                f = Path(f)
                if f.is_file():
                    art.add_file(str(f), name=str(f.relative_to(sweep_dir)) if f.is_relative_to(sweep_dir) else f.name)
            run.log_artifact(art)
            return Path(run.dir).parent
        finally:
            run.finish()

    def finish(self) -> None:
        if self.run is not None:
            try:
                self.run.finish()
            except Exception as exc:  # noqa: BLE001 - closing must not hide the job's result
                print(f"darsbench: wandb run did not close cleanly: {exc}", file=sys.stderr)
            self.run = None
