"""``darsbench-diagnose``: docs/spec.md §7 diagnostics of a dataset (paper Fig. 2), as a Hydra app.

    darsbench-diagnose dataset=gpqa_like
    darsbench-diagnose -m dataset=gpqa_like,math_like,drop_like

Per dataset, over the training observations (costs normalised as ``cost.norm`` says): outcome
instability, winner flip rate, single-vs-DA disagreement (at ``cost.lam``), input-side and
output-side score variance (also per model); and, for ``router``, the spread of test utility
over the routers trained on the single-shot draws (Fig. 2c) with the DARS-trained router's
value. The numbers come from :mod:`evaluators.diagnostics`, the figures from
:mod:`evaluators.plots`. Outputs (run folder): ``diagnostics.json``, ``diagnostics.md``,
``diagnostics.csv``, ``instability.png``, ``variance.png``, ``draw_histogram.png`` and, when the
cells are run here, ``cells/{single_shot,dars}/results.json``. A multirun also writes the
combined table and figures of all its datasets into the sweep folder
(:class:`benchmark.app.callbacks.DiagnoseCallback`).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import hydra  # noqa: E402
import numpy as np  # noqa: E402
from hydra.core.hydra_config import HydraConfig  # noqa: E402
from hydra.utils import instantiate  # noqa: E402
from omegaconf import DictConfig, OmegaConf  # noqa: E402

from benchmark.app import resolvers  # noqa: E402,F401 - registers ${darsbench.*} before composing
from benchmark.app.run import CellSpec, run_cell  # noqa: E402
from benchmark.app.schema import DiagnoseSchema, validate_or_exit  # noqa: E402
from benchmark.app.threads import cell_threads, limit_threads  # noqa: E402
from benchmark.data.dataset import normalise_costs  # noqa: E402
from benchmark.data.io import atomic_write_json  # noqa: E402
from evaluators.diagnostics import diagnose, draw_summary, variance_decomposition  # noqa: E402
from evaluators.diagnostics_report import (  # noqa: E402
    diagnostics_markdown, paper_reference, write_diagnostics,
)
from evaluators.leaderboard import load_results  # noqa: E402

CONF_DIR = str(Path(__file__).resolve().parents[2] / "conf")

DIAGNOSTICS_SCHEMA = "darsbench.diagnostics/1"

# ------------------------------------------------------------------------ router variance
def _pick(results: list[dict[str, Any]], mode: str, dataset: str, router: str | None) -> dict | None:
    """The one run of ``mode`` on ``dataset`` (and ``router`` when several routers match)."""
    cands = [r for r in results if r["supervision"] == mode]
    if len(cands) > 1:
        cands = [r for r in cands if r["dataset"]["name"] == dataset] or cands
    if len(cands) > 1 and router is not None:
        cands = [r for r in cands if r["router"] == router] or cands
    if len(cands) > 1:
        where = ", ".join(r.get("_path", "?") for r in cands)
        raise ValueError(f"histogram: {len(cands)} {mode} runs match; point at one of: {where}")
    return cands[0] if cands else None


def _draws_from_files(hcfg: DictConfig, dataset: str, router: str) -> tuple[dict, dict | None]:
    found = load_results([hcfg.results])
    ss = _pick(found, "single_shot", dataset, router)
    if ss is None or not (ss.get("per_draw") or {}).get(hcfg.metric):
        raise ValueError(
            f"histogram.results={hcfg.results}: no single_shot results.json with per_draw.{hcfg.metric}"
        )
    dars_pool = load_results([hcfg.dars_results]) if hcfg.dars_results else found
    dars = _pick(dars_pool, "dars", ss["dataset"]["name"], ss["router"])
    return ss, dars


def _run_cells(cfg: DictConfig, out_dir: Path, router_name: str) -> tuple[dict, dict]:
    results = {}
    resolved = OmegaConf.to_container(cfg, resolve=True)
    for mode in ("single_shot", "dars"):
        spec = CellSpec(
            source=instantiate(cfg.dataset),
            featurizer=instantiate(cfg.features),
            router=instantiate(cfg.router),
            router_name=router_name,
            mode=mode,
            n_draws=int(cfg.histogram.n_draws),
            lam=float(cfg.cost.lam),
            beta=float(cfg.cost.beta),
            cost_norm=str(cfg.cost.norm),
            seed=int(cfg.seed),
            frontier_lams=[],
            cache_dir=Path(os.path.expanduser(str(cfg.cache_dir))),
            decisions_format=str(cfg.decisions_format),
        )
        cell_cfg = {**resolved, "supervision": {"mode": mode, "n_draws": int(cfg.histogram.n_draws)},
                    "router_name": router_name}
        results[mode] = run_cell(spec, out_dir / "cells" / mode, config=cell_cfg)
        results[mode]["_path"] = str(out_dir / "cells" / mode / "results.json")
    return results["single_shot"], results["dars"]


def router_variance(
    cfg: DictConfig, out_dir: Path, router_name: str, dataset_name: str, content_hash: str | None
) -> dict[str, Any] | None:
    """Fig. 2(c) data: per-draw values of the single-shot routers and the DARS value."""
    h = cfg.histogram
    if not h.enabled:
        return None
    if h.results:
        ss, dars = _draws_from_files(h, dataset_name, router_name)
        source = "files"
    else:
        ss, dars = _run_cells(cfg, out_dir, router_name)
        source = "run here"
    values = list(ss["per_draw"][h.metric])
    out = {
        "router": ss["router"],
        "metric": str(h.metric),
        "source": source,
        "single_shot_results": ss.get("_path"),
        "dars_results": None if dars is None else dars.get("_path"),
        "values": values,
        "summary": draw_summary(values),
        "dars_value": None if dars is None else float(dars["metrics"][h.metric]["mean"]),
        "dataset": ss["dataset"]["name"],
        "content_hash": ss["dataset"].get("content_hash"),
    }
    if out["dataset"] != dataset_name or (content_hash and out["content_hash"] != content_hash):
        out["warning"] = (
            f"the single-shot runs are on {out['dataset']} ({str(out['content_hash'])[:12]}), not on "
            f"the diagnosed data {dataset_name} ({str(content_hash)[:12]})"
        )
        warnings.warn(out["warning"], stacklevel=1)
    if dars is None:
        warnings.warn("histogram: no dars run found; the figure has no DARS line", stacklevel=1)
    if out["dars_value"] is not None:
        v = np.asarray(values)
        out["share_of_draws_below_dars"] = float(np.mean(v < out["dars_value"]))
    return out


# ------------------------------------------------------------------------------- job
def run_diagnose(cfg: DictConfig, out_dir: str | Path, router_name: str = "knn") -> dict[str, Any]:
    """Diagnose ``cfg.dataset``; write every output into ``out_dir``; return the payload."""
    out_dir = Path(out_dir)
    cache_dir = Path(os.path.expanduser(str(cfg.cache_dir)))
    data = normalise_costs(instantiate(cfg.dataset).load(cache_dir), str(cfg.cost.norm))
    lam = float(cfg.cost.lam)
    diag = diagnose(data.train, lam, align=str(cfg.align))
    pm = variance_decomposition(data.train, per_model=True)["per_model"]
    payload: dict[str, Any] = {
        "schema": DIAGNOSTICS_SCHEMA,
        "dataset": {
            "name": data.name,
            "content_hash": data.source.get("content_hash"),
            "models": list(data.models),
            "n_train_queries": int(data.train.n_queries),
            "simulated": data.test_truth is not None,
        },
        "cost": {"lam": lam, "norm": str(cfg.cost.norm)},
        "diagnostics": diag,
        "per_model": {k: np.asarray(v, dtype=float).tolist() for k, v in pm.items()},
        "paper_reference": paper_reference(data.name),
        "router_variance": router_variance(
            cfg, out_dir, router_name, data.name, data.source.get("content_hash")
        ),
        "config": OmegaConf.to_container(cfg, resolve=True),
    }
    atomic_write_json(out_dir / "diagnostics.json", payload)
    write_diagnostics([payload], out_dir)
    return payload


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="diagnose")
def main(cfg: DictConfig) -> None:
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    validate_or_exit(cfg, DiagnoseSchema, "darsbench-diagnose")  # every value checked before any work (schema.py)
    hc = HydraConfig.get()
    out_dir = Path(hc.runtime.output_dir)
    router_name = hc.runtime.choices.get("router", "router")
    limit_threads(cell_threads(cfg.get("threads"), hc.launcher))
    payload = run_diagnose(cfg, out_dir, router_name)
    print(diagnostics_markdown([payload]))
    print(f"\ndiagnostics: {out_dir / 'diagnostics.json'} (+ .md, .csv, instability.png, variance.png"
          + (", draw_histogram.png)" if payload.get("router_variance") else ")"))


if __name__ == "__main__":
    main()
