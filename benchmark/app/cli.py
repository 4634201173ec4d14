"""``darsbench``: run one benchmark cell (or a Hydra multirun grid of them).

A cell that fails writes ``error.json`` in its folder; in a sweep the other cells go on
(README, "Failures"). ``resume=true`` keeps the cells whose fingerprint matches (README, "Resume").
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from pathlib import Path
from typing import Any, Callable

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import hydra  # noqa: E402
from hydra.core.hydra_config import HydraConfig  # noqa: E402
from hydra.utils import instantiate  # noqa: E402
from omegaconf import DictConfig, OmegaConf  # noqa: E402

from benchmark.app import resolvers  # noqa: E402,F401 - registers ${darsbench.*} before composing
from benchmark.app import sweep as S  # noqa: E402
from benchmark.app.run import CellSpec, run_cell  # noqa: E402
from benchmark.app.schema import RunSchema, validate_or_exit  # noqa: E402
from benchmark.app.threads import cell_threads, limit_threads  # noqa: E402
from benchmark.data.io import atomic_write_text  # noqa: E402
from benchmark.data.loader import DataError  # noqa: E402
from evaluators.leaderboard import leaderboard_frame, to_markdown  # noqa: E402

log = logging.getLogger("darsbench")

#: The Hydra config tree (``conf/`` at the repository root; the project installs editable).
CONF_DIR = str(Path(__file__).resolve().parents[2] / "conf")

# conf/hydra/launcher/ray.yaml extends the Ray launcher's schema of the same name on purpose.
warnings.filterwarnings("ignore", message=".*is validated against ConfigStore schema.*")


def build_spec(cfg: DictConfig, router_name: str) -> CellSpec:
    """Instantiate the config's parts into a :class:`CellSpec` (no I/O happens here)."""
    return CellSpec(
        source=instantiate(cfg.dataset),
        featurizer=instantiate(cfg.features),
        router=instantiate(cfg.router),
        router_name=router_name,
        mode=cfg.supervision.mode,
        n_draws=int(cfg.supervision.n_draws),
        lam=float(cfg.cost.lam),
        beta=float(cfg.cost.beta),
        cost_norm=str(cfg.cost.norm),
        seed=int(cfg.seed),
        n_rewrites=cfg.protocol.n_rewrites,
        n_decodes=cfg.protocol.n_decodes,
        frontier_lams=list(cfg.frontier.lams or []),
        cache_dir=Path(os.path.expanduser(str(cfg.cache_dir))),
        decisions_format=str(cfg.decisions_format),
        save_router=bool(cfg.save_router),
        n_train_queries=cfg.train.n_queries,
        train_budget=cfg.train.budget,
        bootstrap_resamples=int(cfg.bootstrap.resamples),
        bootstrap_seed=int(cfg.bootstrap.seed),
        sampler=str(cfg.supervision.get("sampler", "darsbench")),
        use_context=bool(cfg.get("feature_context", True)),
    )


def run_from_config(
    cfg: DictConfig, out_dir: Path, router_name: str, *, threads: int | None = None,
    resume: bool = False, cell: dict[str, Any] | None = None,
    before_run: Callable[[], Any] | None = None,
) -> dict:
    """Run the cell ``cfg`` into ``out_dir``. With ``resume``, a complete result whose
    fingerprint matches is returned as it is (nothing is written). ``before_run`` is called
    once the cell is known to run."""
    spec = build_spec(cfg, router_name)
    limit_threads(threads)
    resolved = OmegaConf.to_container(cfg, resolve=True)
    resolved["router_name"] = router_name
    data = S.load_dataset(cfg, spec.source)  # read once per process for a sweep's cells
    fp = S.fingerprint(resolved, data.source.get("content_hash"))
    if resume:
        keep, why = S.resume_decision(out_dir, fp)
        where = f"cell {cell['num']} ({' '.join(cell['overrides'])})" if cell else str(out_dir)
        if keep:
            print(f"darsbench: resume: {where}: {why}; kept")
            return S.read_results(out_dir)
        if (Path(out_dir) / S.RESULTS).exists():
            print(f"darsbench: resume: {where}: {why}; recomputing")
    if before_run is not None:
        before_run()
    logger = instantiate(cfg.logger)
    try:
        where = None if cell is None else {k: cell[k] for k in ("folder", "overrides", "label")}
        results = run_cell(spec, out_dir, config=resolved, data=data,
                           extra={"fingerprint": fp, "cell": where, "threads": threads})
        logger.log_results(results, out_dir)
    finally:
        logger.finish()
    return results


def save_hydra_files(cfg: DictConfig, out_dir: Path) -> None:
    """``.hydra/{config,hydra,overrides}.yaml`` as Hydra writes them (conf/hydra/default.yaml
    turns Hydra's own copy off so that a kept cell's folder is never touched)."""
    hc = HydraConfig.get()
    where = Path(out_dir) / ".hydra"
    atomic_write_text(where / "config.yaml", OmegaConf.to_yaml(cfg))
    atomic_write_text(where / "hydra.yaml", OmegaConf.to_yaml(OmegaConf.create({"hydra": hc})))
    atomic_write_text(where / "overrides.yaml", OmegaConf.to_yaml(hc.overrides.task))


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="config")
def main(cfg: DictConfig) -> float | None:
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    validate_or_exit(cfg, RunSchema, "darsbench")  # every value checked before any work (schema.py)
    hc = HydraConfig.get()
    out_dir = Path(hc.runtime.output_dir)
    multirun = hc.mode is not None and hc.mode.name == "MULTIRUN"
    choice = hc.runtime.choices.get("router", "router")
    cell = S.manifest_cell(hc.sweep.dir, int(hc.job.num)) if multirun else None
    router_name = cell["label"] if cell else choice
    resume = bool(cfg.get("resume", False)) and multirun
    try:
        threads = cell_threads(cfg.get("threads"), hc.launcher)
        results = run_from_config(cfg, out_dir, router_name, threads=threads, resume=resume, cell=cell,
                                  before_run=lambda: save_hydra_files(cfg, out_dir))
        S.clear_error(out_dir)
    except DataError as err:
        save_hydra_files(cfg, out_dir)
        S.write_error(out_dir, err, cell)
        # Bad input data: the message names file, line and field; a traceback adds nothing.
        print(f"darsbench: bad data: {err}", file=sys.stderr)
        if multirun:
            return None
        sys.exit(2)
    except Exception as err:
        save_hydra_files(cfg, out_dir)
        S.write_error(out_dir, err, cell)
        if not multirun:
            raise
        print(f"darsbench: cell failed: {out_dir.name}: {type(err).__name__}: {err} "
              f"(traceback in {out_dir / S.ERROR})", file=sys.stderr)
        return None
    if cfg.print_table and not multirun:
        print(to_markdown(leaderboard_frame([results])))
        print(f"\nresults: {out_dir / 'results.json'}")
    return float(results["metrics"]["rU"]["mean"])


if __name__ == "__main__":
    main()
