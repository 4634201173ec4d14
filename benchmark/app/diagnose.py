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
import pandas as pd  # noqa: E402
from hydra.core.hydra_config import HydraConfig  # noqa: E402
from hydra.utils import instantiate  # noqa: E402
from omegaconf import DictConfig, OmegaConf  # noqa: E402

from benchmark.app import resolvers  # noqa: E402,F401 - registers ${darsbench.*} before composing
from benchmark.app.run import CellSpec, run_cell  # noqa: E402
from benchmark.app.threads import cell_threads, limit_threads  # noqa: E402
from benchmark.data.dataset import normalise_costs  # noqa: E402
from benchmark.data.io import atomic_write_frame, atomic_write_json, atomic_write_text  # noqa: E402
from evaluators.diagnostics import diagnose, draw_summary, variance_decomposition  # noqa: E402
from evaluators.leaderboard import load_results  # noqa: E402

CONF_DIR = str(Path(__file__).resolve().parents[2] / "conf")

DIAGNOSTICS_SCHEMA = "darsbench.diagnostics/1"

#: Table columns: (diagnose key, header).
COLUMNS = (
    ("outcome_instability", "outcome instability"),
    ("winner_flip_rate", "winner flip rate"),
    ("single_vs_da_disagreement", "single-vs-DA disagreement"),
    ("variance_input_side", "input-side var"),
    ("variance_output_side", "output-side var"),
    ("variance_total", "total var"),
    ("variance_input_share", "input share"),
)

#: Paper values (docs/spec.md §7) for the release datasets and their simulated look-alikes.
PAPER_REFERENCE: dict[str, dict[str, float]] = {
    "gpqa": {"outcome_instability": 0.715, "winner_flip_rate": 0.970},
    "math-500": {"winner_flip_rate": 0.645},
    "drop-800": {"winner_flip_rate": 0.665, "single_vs_da_disagreement": 0.471},
}
_LOOKALIKE = {"gpqa_like": "gpqa", "math_like": "math-500", "drop_like": "drop-800"}


def paper_reference(name: str) -> dict[str, float]:
    return PAPER_REFERENCE.get(_LOOKALIKE.get(name, name), {})


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


# ------------------------------------------------------------------------------ tables
def diagnostics_frame(payloads: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per dataset: every diagnostic, the router-variance summary, paper values."""
    rows = []
    for p in payloads:
        d = p["diagnostics"]
        row: dict[str, Any] = {"dataset": p["dataset"]["name"],
                               "content_hash": p["dataset"].get("content_hash"),
                               "lam": d["lam"], "align": d["align"]}
        row.update({k: d[k] for k, _ in COLUMNS})
        row.update({k: d[k] for k in ("n_queries", "n_models", "n_pairs_observed", "n_label_positions")})
        rv = p.get("router_variance")
        if rv:
            s = rv["summary"]
            row.update({
                "router": rv["router"], "metric": rv["metric"], "draws": s["n"],
                "draws_mean": s["mean"], "draws_std": s["std"], "draws_min": s["min"],
                "draws_max": s["max"], "dars_value": rv["dars_value"],
            })
        for k, v in paper_reference(row["dataset"]).items():
            row[f"paper {k}"] = v
        rows.append(row)
    return pd.DataFrame(rows)


def diagnostics_markdown(payloads: list[dict[str, Any]], header: list[str] | None = None) -> str:
    lines = [f"<!-- {h.replace('-->', '-- >')} -->" for h in header or []]
    lam = ", ".join(f"{v:g}" for v in sorted({p["diagnostics"]["lam"] for p in payloads}))
    lines += [f"**Diagnostics of single-shot supervision** (training observations, lambda={lam})", ""]
    lines.append("| dataset | " + " | ".join(h for _, h in COLUMNS) + " |")
    lines.append("|---|" + "---:|" * len(COLUMNS))
    for p in payloads:
        d = p["diagnostics"]
        lines.append(f"| {p['dataset']['name']} | " + " | ".join(f"{d[k]:.4f}" for k, _ in COLUMNS) + " |")
    refs = [(p["dataset"]["name"], paper_reference(p["dataset"]["name"])) for p in payloads]
    refs = [(n, r) for n, r in refs if r]
    if refs:
        lines += ["", "Paper values (docs/spec.md §7): " + "; ".join(
            f"{n}: " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in r.items()) for n, r in refs)]
    per_model = [p for p in payloads if p.get("per_model")]
    for p in per_model:
        pm = p["per_model"]
        lines += ["", f"**Variance per model: {p['dataset']['name']}**", "",
                  "| model | input-side | output-side | total | input share |", "|---|---:|---:|---:|---:|"]
        for j, m in enumerate(p["dataset"]["models"]):
            lines.append(
                f"| {m} | {pm['input_side'][j]:.4f} | {pm['output_side'][j]:.4f} | "
                f"{pm['total'][j]:.4f} | {pm['input_share'][j]:.4f} |"
            )
    rvs = [p for p in payloads if p.get("router_variance")]
    if rvs:
        lines += ["", "**Router variance over single-shot draws** (Fig. 2c)", "",
                  "| dataset | router | metric | draws | mean ± std | min | p5 | p95 | max | DARS | draws below DARS |",
                  "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for p in rvs:
            rv, s = p["router_variance"], p["router_variance"]["summary"]
            dv = "—" if rv["dars_value"] is None else f"{rv['dars_value']:.4f}"
            below = rv.get("share_of_draws_below_dars")
            lines.append(
                f"| {p['dataset']['name']} | {rv['router']} | {rv['metric']} | {s['n']} | "
                f"{s['mean']:.4f} ± {s['std']:.4f} | {s['min']:.4f} | {s['p5']:.4f} | {s['p95']:.4f} | "
                f"{s['max']:.4f} | {dv} | {'—' if below is None else f'{below:.2f}'} |"
            )
            if rv.get("warning"):
                lines.append(f"\nwarning: {rv['warning']}")
    lines += ["", "Outcome instability: share of (query, model) pairs whose scores are not all equal. "
              "Winner flip rate: share of queries whose single-shot label (argmax of q - lambda c~ "
              "of the k-th observation) changes with k. Disagreement: share of (query, k) whose "
              "single-shot label differs from argmax (mu_q - lambda mu_c). Input-side: population "
              "variance of per-rewrite mean scores; output-side: mean within-rewrite population "
              "variance (both averaged over pairs). Definitions: docs/analyses.md."]
    return "\n".join(lines)


def write_diagnostics(
    payloads: list[dict[str, Any]], out_dir: Path, *, header: list[str] | None = None,
    histogram: bool = True,
) -> list[Path]:
    """diagnostics.md / .csv, instability.png, variance.png (+ draw_histogram*.png) in ``out_dir``."""
    from evaluators.plots import plot_draw_histogram, plot_instability, plot_variance

    out_dir = Path(out_dir)
    files = [atomic_write_text(out_dir / "diagnostics.md", diagnostics_markdown(payloads, header) + "\n")]
    frame = diagnostics_frame(payloads)
    if header:  # '#' lines first, as the leaderboards: pandas.read_csv(path, comment="#")
        lines = "".join(f"# {h}\n" for h in header)
        files.append(atomic_write_text(out_dir / "diagnostics.csv", lines + frame.to_csv(index=False)))
    else:
        files.append(atomic_write_frame(out_dir / "diagnostics.csv", frame))
    by_name: dict[str, dict] = {}
    for p in payloads:
        name = p["dataset"]["name"]
        if name in by_name:  # same name, different content or setting: keep both bars
            name = f"{name}@{str(p['dataset'].get('content_hash'))[:8]}"
        by_name[name] = p["diagnostics"]
    files.append(plot_instability(by_name, out_dir / "instability.png"))
    files.append(plot_variance(by_name, out_dir / "variance.png"))
    if histogram:
        for p in payloads:
            rv = p.get("router_variance")
            if not rv:
                continue
            fname = "draw_histogram.png" if len(payloads) == 1 else f"draw_histogram_{p['dataset']['name']}.png"
            files.append(plot_draw_histogram(
                rv["values"], out_dir / fname, dars_value=rv["dars_value"],
                title=f"{rv['router']} on {p['dataset']['name']}: test {rv['metric']} over "
                      f"{len(rv['values'])} single-shot draws",
                xlabel=f"test {rv['metric']}",
            ))
    return files


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
