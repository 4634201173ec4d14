"""Presentation of leaderboard tables: the one cell formatter (markdown), markdown tables, CSV
with ``#`` header lines, the README assembly and atomic writes. Conventions: docs/analyses.md,
section "Leaderboards"."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmark.data.io import atomic_write_text

MISSING = "—"
#: Long-table metric columns (``cost``: mean normalised cost over both test views).
COLUMNS = ("rU", "dU", "rQ", "dQ", "cost")
TRUTH_COLUMNS = ("tU",)
TITLES = {
    "table1": "Table 1: single-shot vs DARS",
    "table1_diff": "Table 1: DARS minus single-shot, paired over test queries (and draws)",
    "table2": "Table 2: supervision ablation",
    "table2_diff": "Table 2: paired differences between supervision modes",
    "baselines": "Baselines per dataset",
    "protocol": "Protocol study",
    "risk": "Risk weight study",
    "frontier": "Cost-quality frontier",
    "frontier_diff": "Cost-quality frontier: paired AIQ differences",
    "budget": "Equal training-generation budget",
    "budget_diff": "Equal budget: paired differences against single-shot",
    "learning_curve": "Learning curves",
}
LEGEND = (
    "rU / dU: mean utility q - lambda * c~ of the chosen model on the rewrite / decoding test "
    "view (docs/analyses.md). Single-shot cells: mean ± sample std (ddof=1) over draws. [low, high]: 95% "
    "percentile-bootstrap interval over test queries (single-shot: queries and draws resampled "
    "independently). (n=k): k runs (seeds) aggregated, mean and Student-t 95% interval across "
    "them. Paired differences: +d [low, high] p=..., * significant at 5% after the table's "
    "correction (stated in its heading). — : no run. Table 2 avg columns: mean over datasets (avg: over every "
    "cell of the row). Frontier: points re-routed under the lambda grid without retraining, "
    "AIQ = area under the non-decreasing upper hull over [0, largest cost] / width, its interval from "
    "re-scoring every bootstrap replicate of the points; Q@cost<=b: "
    "hull quality at mean normalised cost b (— : no point that cheap)."
)


@dataclass
class Table:
    """One table block: a numeric frame (CSV) and its markdown."""

    kind: str
    title: str
    setting: str
    frame: pd.DataFrame
    markdown: str


@dataclass
class Report:
    """What :func:`evaluators.leaderboard.build_leaderboards` found and wrote."""

    tables: dict[str, list[Table]] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    text: str = ""
    n_results: int = 0


def _finite(x: Any) -> bool:
    return x is not None and bool(np.isfinite(float(x)))


def fmt(
    mean: Any, std: Any = np.nan, n: int = 1, runs: int = 1, low: Any = np.nan, high: Any = np.nan,
    digits: int = 4,
) -> str:
    """The one cell format: ``mean``; ``± std`` over draws when one run has ``n > 1`` draws;
    ``[low, high]``, the 95% interval, when known; ``(n=k)`` when ``k`` runs (seeds) were
    aggregated; :data:`MISSING` for no value."""
    if not _finite(mean):
        return MISSING
    text = f"{float(mean):.{digits}f}"
    if runs <= 1 and n and n > 1 and _finite(std):
        text += f" ± {float(std):.{digits}f}"
    if _finite(low) and _finite(high):
        text += f" [{float(low):.{digits}f}, {float(high):.{digits}f}]"
    if runs > 1:
        text += f" (n={runs})"
    return text


def fmt_diff(diff: Any, low: Any, high: Any, p: Any, significant: bool, digits: int = 4) -> str:
    """A paired difference: ``+d [low, high] p=...``, ``*`` when significant after correction."""
    if not _finite(diff):
        return MISSING
    text = f"{float(diff):+.{digits}f}"
    if _finite(low) and _finite(high):
        text += f" [{float(low):+.{digits}f}, {float(high):+.{digits}f}]"
    if _finite(p):
        text += f" p={float(p):.3g}"
    return text + ("*" if significant else "")


def md_table(header: list[str], rows: list[list[str]], n_label_cols: int = 1) -> str:
    lines = ["| " + " | ".join(header) + " |"]
    lines.append("|" + "|".join(["---"] * n_label_cols + ["---:"] * (len(header) - n_label_cols)) + "|")
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def to_markdown(frame: pd.DataFrame) -> str:
    """The long table (:func:`evaluators.leaderboard.tables.leaderboard_frame`) as markdown, one
    block per setting; single-shot cells as mean ± std over draws."""
    if frame.empty:
        return "(no results)"
    blocks = []
    cols = [c for c in (*COLUMNS, *TRUTH_COLUMNS) if c in frame.columns]
    for setting, sub in frame.groupby("setting", sort=False):
        rows = []
        for r in sub.to_dict("records"):
            n = int(r.get("n_draws", 1) or 1)
            rows.append([str(r["method"]), str(r["supervision"])]
                        + [fmt(r.get(c), r.get(c + "_std", np.nan), n, 1, r.get(c + "_low"),
                               r.get(c + "_high")) for c in cols])
        blocks.append(f"**{setting}**\n\n" + md_table(["method", "supervision", *cols], rows, 2))
    note = (
        "\n\nrU / dU: mean utility q - lambda * c~ on the rewrite / decoding test view; rQ / dQ: "
        "mean quality; cost: mean normalised cost over both views; tU: true utility (simulated "
        "data only). Single-shot cells: mean ± sample std (ddof=1) over draws. [low, high]: 95% "
        "bootstrap interval over test queries (and draws), docs/analyses.md."
    )
    return "\n\n".join(blocks) + note


def header_md(header: Iterable[str]) -> str:
    lines = [f"<!-- {h.replace('-->', '-- >')} -->" for h in header]
    return "\n".join(lines) + ("\n" if lines else "")


def write_csv(path: Path, frame: pd.DataFrame, header: Iterable[str] = ()) -> Path:
    """``frame`` as CSV after ``# header`` lines (read with ``pandas.read_csv(path, comment="#")``)."""
    lines = "".join(f"# {h}\n" for h in header)
    return atomic_write_text(path, lines + frame.to_csv(index=False))


def write_tables(tables: dict[str, list[Table]], out_dir: Path, header: list[str]) -> list[Path]:
    """``<kind>.md`` and ``<kind>.csv`` of every kind that has tables."""
    files = []
    head = header_md(header)
    for kind, tabs in tables.items():
        if not tabs:
            continue
        text = "\n\n".join(t.markdown for t in tabs)
        files.append(atomic_write_text(out_dir / f"{kind}.md", head + text + "\n"))
        frame = pd.concat([t.frame for t in tabs], ignore_index=True)
        files.append(write_csv(out_dir / f"{kind}.csv", frame, header))
    return files


def readme_text(
    report: Report, paths: Iterable[str | Path], figures: list[tuple[str, Path]], legend: str = LEGEND
) -> str:
    """The leaderboard README: every table, the figures, the missing cells and the notes."""
    parts = [f"# Leaderboard\n\n{report.n_results} runs from: " + ", ".join(f"`{p}`" for p in map(str, paths))]
    for kind, tabs in report.tables.items():
        if tabs:
            parts.append(f"## {TITLES.get(kind, kind)}\n\n" + "\n\n".join(t.markdown for t in tabs))
    if figures:
        parts.append("## Figures\n\n" + "\n".join(f"- {t}: ![]({p.name})" for t, p in figures))
    parts.append(
        "## Missing cells\n\n"
        + ("\n".join(f"- {m}" for m in report.missing) if report.missing else "none")
    )
    if report.notes:
        parts.append("## Notes\n\n" + "\n".join(f"- {n}" for n in dict.fromkeys(report.notes)))
    parts.append(legend)
    return "\n\n".join(parts)


def safe_name(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)
