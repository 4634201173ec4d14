"""Leaderboards from ``results.json`` files: :mod:`.records` (files -> one records frame),
:mod:`.tables` (Table 1, Table 2, baselines, sweeps, frontier), :mod:`.render` (markdown, CSV,
README); figures come from :mod:`evaluators.plots`. Shapes: docs/analyses.md, "Leaderboards"."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from benchmark.data.io import atomic_write_frame, atomic_write_text
from evaluators.leaderboard.records import (
    GROUP_FIELDS,
    MODE_ORDER,
    ROUTER_ORDER,
    find_results,
    groups,
    load_results,
    protocol_label,
    records_frame,
    row_label,
    slug,
)
from evaluators.leaderboard.render import (
    Report,
    Table,
    header_md,
    readme_text,
    safe_name,
    to_markdown,
    write_csv,
    write_tables,
)
from evaluators.leaderboard.tables import (
    TABLE1_MODES,
    baseline_table,
    budget_comparisons,
    comparison_tables,
    curve_tables,
    draw_histograms,
    frontier_data,
    frontier_tables,
    leaderboard_frame,
    sweep_tables,
    table1,
    table2,
)
from evaluators.plots import plot_curves, plot_draw_histogram, plot_frontier

__all__ = [
    "DEFAULT_BUDGETS", "DEFAULT_METRICS", "MODE_ORDER", "ROUTER_ORDER", "Report", "Table",
    "build_leaderboards", "find_results", "leaderboard_frame", "load_results", "protocol_label",
    "records_frame", "sweep_tables", "table1", "table2", "to_markdown", "write_leaderboard",
]

DEFAULT_METRICS = ("rU", "dU")
#: Figure kinds :func:`build_leaderboards` can draw.
PLOT_KINDS = ("frontier", "hist", "budget", "learning_curve")
#: Mean normalised cost budgets of the frontier table.
DEFAULT_BUDGETS = (0.02, 0.05, 0.1, 0.2)


def write_leaderboard(paths: Iterable[str | Path], out_dir: str | Path, stem: str = "leaderboard") -> str:
    """The long table of every ``results.json`` under ``paths`` as ``<stem>.md`` / ``.csv``."""
    results = load_results(paths)
    if not results:
        return ""
    frame = leaderboard_frame(results)
    text = to_markdown(frame)
    out_dir = Path(out_dir)
    atomic_write_text(out_dir / f"{stem}.md", text + "\n")
    atomic_write_frame(out_dir / f"{stem}.csv", frame)
    return text


def build_leaderboards(
    paths: Iterable[str | Path],
    out_dir: str | Path,
    *,
    metrics: tuple[str, ...] = DEFAULT_METRICS,
    budgets: tuple[float, ...] = DEFAULT_BUDGETS,
    frontier_view: str = "mean",
    hist_metric: str = "rU",
    header: Iterable[str] = (),
    plots: bool | Iterable[str] = True,
    compare: Iterable[tuple[str, str]] = (),
    correction: str = "holm",
    resamples: int | None = None,
) -> Report:
    """Every ``results.json`` under ``paths`` -> paper-shaped tables, plots and a summary.

    Writes into ``out_dir``: ``README.md`` (everything: the tables, the missing cells, the
    notes, links to the plots), ``table1``, ``table2``, ``baselines``, ``protocol``, ``risk``
    and ``frontier`` as ``.md`` + ``.csv`` (those that apply), ``leaderboard.md/.csv`` (the
    long table of every run), ``frontier_<dataset>.png`` and ``hist_<dataset>_<router>.png``.
    Paired comparisons (``table1_diff``: dars - single_shot per router; ``table2_diff``: every
    ablated mode against dars, and the ``compare`` pairs ``(a, b)``) read the per-query values
    of the runs' decisions files; ``correction`` (``holm`` or ``bh``) is applied per table and
    ``resamples`` overrides the bootstrap resamples recorded in the runs. The same pairs get
    paired AIQ differences (``frontier_diff``) from the runs' frontier bootstrap files. ``plots``: True (every
    figure), False (none) or the kinds to draw among ``frontier``, ``hist``, ``budget`` and
    ``learning_curve``.
    ``header`` lines go first in every text file (markdown comments / ``#`` lines in CSV; read
    the CSVs with ``pandas.read_csv(path, comment="#")``).
    """
    header = list(header)
    paths = list(paths)
    out_dir = Path(out_dir)
    results = load_results(paths)
    report = Report(n_results=len(results))
    if not results:
        report.text = "(no results.json found)"
        return report
    metrics = tuple(metrics)
    df = records_frame(results)
    if df["dataset"].nunique() < df["column"].nunique():
        clash = sorted(set(df.loc[df["column"] != df["dataset"], "dataset"]))
        report.notes.append(
            f"dataset(s) {clash} appear with different contents (content hash); they are kept "
            "as separate columns name@hash"
        )
    n_groups = len(groups(df, GROUP_FIELDS))
    if n_groups > 1:
        report.notes.append(
            f"{n_groups} cost/protocol settings found; each table holds one setting (see its heading)"
        )
    for field_name in ("features", "n_draws"):
        for (r, m), sub in df.groupby(["router", "mode"]):
            vals = sorted(set(sub[field_name].astype(str)))
            if len(vals) > 1:
                report.notes.append(f"{row_label(r, m)}: runs differ in {field_name}: {vals}")

    tables = report.tables
    tables["table1"] = table1(df, metrics, report)
    tables["table2"] = table2(df, metrics, report)
    tables["baselines"] = baseline_table(df, results, metrics, report)
    tables["protocol"] = sweep_tables(df, "protocol", metrics, report)
    tables["risk"] = sweep_tables(df, "beta", metrics, report)
    pairs = [("dars", "single_shot")] if set(TABLE1_MODES) <= set(df["mode"]) else []
    ablated = sorted(set(df["mode"]) - set(TABLE1_MODES))
    pairs2 = [("dars", m) for m in ablated] if "dars" in set(df["mode"]) else []
    for kind, todo in (("table1_diff", pairs), ("table2_diff", pairs2 + list(compare))):
        tables[kind] = []
        for a, b in todo:
            try:
                tables[kind] += comparison_tables(df, results, a, b, report, correction=correction,
                                                  resamples_n=resamples, kind=kind)
            except (FileNotFoundError, ValueError) as exc:
                report.notes.append(f"paired comparison {a} - {b} not computed: {exc}")
    tables["budget"], budget_plots = curve_tables(df, "budget", ("tU", "rU"), report)
    tables["budget_diff"] = budget_comparisons(df, results, report, correction=correction, resamples_n=resamples)
    tables["learning_curve"], curve_plots = curve_tables(df, "learning_curve", ("tU", "rU"), report)
    order = ("table1", "table1_diff", "table2", "table2_diff", "baselines", "protocol", "risk",
             "budget", "budget_diff", "learning_curve")
    report.tables = tables = {k: tables[k] for k in order}
    fronts = frontier_data(df, results, frontier_view)
    tables["frontier"], tables["frontier_diff"] = frontier_tables(
        fronts, tuple(budgets), report, results, pairs=pairs + pairs2 + list(compare), correction=correction
    )
    hists = draw_histograms(df, results, hist_metric)

    out_dir.mkdir(parents=True, exist_ok=True)
    report.files += write_tables(tables, out_dir, header)
    long = leaderboard_frame(results)
    report.files.append(atomic_write_text(out_dir / "leaderboard.md", header_md(header) + to_markdown(long) + "\n"))
    report.files.append(write_csv(out_dir / "leaderboard.csv", long, header))

    figures: list[tuple[str, Path]] = []
    kinds = set(PLOT_KINDS) if plots is True else set() if plots is False else set(plots)
    if kinds - set(PLOT_KINDS):
        raise ValueError(f"unknown plot kinds {sorted(kinds - set(PLOT_KINDS))}; choose from {PLOT_KINDS}")
    if kinds:
        def suffix(key: tuple) -> str:
            return "_" + slug(GROUP_FIELDS, key) if n_groups > 1 else ""

        for fr in [f for f in fronts if f["first"]] if "frontier" in kinds else []:
            path = out_dir / safe_name(f"frontier_{fr['column']}{suffix(fr['group'])}.png")
            plot_frontier(
                dict(fr["curves"]), fr["fixed"], path,
                title=f"{fr['column']}: cost vs quality over the lambda grid (view={fr['view']})"
                + (f", data seed {fr['data_seed']}" if len({f['data_seed'] for f in fronts}) > 1 else ""),
            )
            figures.append((f"frontier {fr['column']}" + (f" ({fr['setting']})" if n_groups > 1 else ""), path))
        for h in hists if "hist" in kinds else []:
            path = out_dir / safe_name(f"hist_{h['column']}_{h['router']}{suffix(h['group'])}.png")
            plot_draw_histogram(
                h["values"], path, dars_value=h["dars"],
                title=f"{h['router']} on {h['column']}: {h['metric']} over single-shot draws",
                xlabel=f"test {h['metric']}",
            )
            figures.append((
                f"draw histogram {h['router']} on {h['column']}"
                + (f" ({h['setting']})" if n_groups > 1 else ""), path))
        for kind, todo in (("budget", budget_plots), ("learning_curve", curve_plots)):
            for c in todo if kind in kinds else []:
                path = out_dir / safe_name(
                    f"{kind}_{c['metric']}_{c['column']}_{c['router']}_{slug(('lam', 'beta', 'norm'), c['key'][:3])}.png"
                )
                plot_curves(c["series"], path, title=c["title"], xlabel=c["xlabel"], ylabel=f"test {c['metric']}")
                figures.append((f"{c['title']} ({c['setting']})", path))
        report.files.extend(p for _, p in figures)

    report.text = readme_text(report, paths, figures)
    report.files.append(atomic_write_text(out_dir / "README.md", header_md(header) + report.text + "\n"))
    return report
