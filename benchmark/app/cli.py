"""``darsbench``: run one benchmark cell (or a Hydra multirun grid of them)."""

from __future__ import annotations

import logging
import os
import sys
import warnings
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import hydra  # noqa: E402
from hydra.core.hydra_config import HydraConfig  # noqa: E402
from hydra.utils import instantiate  # noqa: E402
from omegaconf import DictConfig, OmegaConf  # noqa: E402

from benchmark.data.loader import DataError  # noqa: E402
from benchmark.app.run import CellSpec, run_cell  # noqa: E402
from benchmark.app.schema import RunSchema, validate_or_exit  # noqa: E402

log = logging.getLogger("darsbench")

#: The Hydra config tree (``conf/`` at the repository root; the project installs editable).
CONF_DIR = str(Path(__file__).resolve().parents[2] / "conf")


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
        sampler=str(cfg.supervision.get("sampler", "darsbench")),
        use_context=bool(cfg.get("feature_context", True)),
    )


def run_from_config(cfg: DictConfig, out_dir: Path, router_name: str) -> dict:
    spec = build_spec(cfg, router_name)
    logger = instantiate(cfg.logger)
    resolved = OmegaConf.to_container(cfg, resolve=True)
    resolved["router_name"] = router_name
    try:
        results = run_cell(spec, out_dir, config=resolved)
        logger.log_results(results, out_dir)
    finally:
        logger.finish()
    return results


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="config")
def main(cfg: DictConfig) -> float:
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    validate_or_exit(cfg, RunSchema, "darsbench")  # every value checked before any work (schema.py)
    hc = HydraConfig.get()
    out_dir = Path(hc.runtime.output_dir)
    router_name = hc.runtime.choices.get("router", "router")
    try:
        results = run_from_config(cfg, out_dir, router_name)
    except DataError as err:
        # Bad input data: the message names file, line and field; a traceback adds nothing.
        print(f"darsbench: bad data: {err}", file=sys.stderr)
        sys.exit(2)
    if cfg.print_table and hc.mode.name == "RUN":
        from evaluators.leaderboard import leaderboard_frame, to_markdown

        print(to_markdown(leaderboard_frame([results])))
        print(f"\nresults: {out_dir / 'results.json'}")
    return float(results["metrics"]["rU"]["mean"])


if __name__ == "__main__":
    main()
