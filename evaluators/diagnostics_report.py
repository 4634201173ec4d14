"""Presentation of the diagnostics of ``darsbench-diagnose`` payloads: the table (markdown, CSV),
the paper's reference values and the figures (paper Fig. 2). Definitions: docs/analyses.md."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from benchmark.data.io import atomic_write_frame, atomic_write_text
from evaluators.plots import plot_draw_histogram, plot_instability, plot_variance

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
