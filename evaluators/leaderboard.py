"""Leaderboards from ``results.json`` files.

Two layers:

* :func:`leaderboard_frame` / :func:`to_markdown` / :func:`write_leaderboard`: the long table,
  one row per (router, supervision) run and per baseline (what a sweep writes as
  ``leaderboard.md``). Runs are grouped by *setting* (:func:`setting_key`): dataset (name +
  content hash), cost (lambda, beta, norm) and protocol. Runs of different settings are never
  mixed in one block: each setting gets its own, headed by what it is.
* :func:`build_leaderboards` (``darsbench-leaderboard``): the paper-shaped tables (Table 1,
  Table 2, per-dataset baselines, protocol and risk sweeps, frontier AIQ / quality under
  budgets), the frontier and draw-histogram figures, and the list of missing cells. Columns are
  datasets; a table holds one cost / protocol setting; one dataset name with two contents gets
  two columns. Shapes and conventions: ``docs/analyses_commands.md``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd

from benchmark.data.io import atomic_write_frame, atomic_write_text

COLUMNS = ("rU", "dU", "rQ", "dQ", "cost")
TRUTH_COLUMNS = ("tU",)
BASELINES = ("oracle", "best_fixed", "random", "cheapest", "largest")
#: Folders under a sweep whose results.json files are copies, not runs.
SKIP_DIRS = frozenset({"wandb"})


def find_results(paths: Iterable[str | Path]) -> list[Path]:
    """Every ``results.json`` under the given files or folders, sorted."""
    found: list[Path] = []
    for p in map(Path, paths):
        if p.is_file():
            found.append(p)
        elif p.is_dir():
            # Copies kept by experiment trackers (wandb/offline-run-*/files/results.json) and
            # hidden folders are not runs of their own.
            found.extend(
                f for f in sorted(p.rglob("results.json"))
                if not any(part in SKIP_DIRS or part.startswith(".") for part in f.relative_to(p).parts[:-1])
            )
        else:
            raise FileNotFoundError(f"no such results file or folder: {p}")
    return found


def load_results(paths: Iterable[str | Path]) -> list[dict[str, Any]]:
    out = []
    for f in find_results(paths):
        try:
            res = json.loads(Path(f).read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ValueError(f"{f}:{exc.lineno}: not valid JSON ({exc.msg})") from None
        res["_path"] = str(f)
        out.append(res)
    return out


def setting_key(res: dict[str, Any]) -> tuple:
    d, c, p = res["dataset"], res["cost"], res.get("protocol") or {}
    return (
        d["name"],
        d.get("content_hash"),
        c["lam"],
        c["beta"],
        c["norm"],
        p.get("n_rewrites"),
        p.get("n_decodes"),
    )


def describe_setting(key: tuple) -> str:
    name, h, lam, beta, norm, nr, nd = key
    proto = "full" if nr is None and nd is None else f"{nr or 'all'}x{nd or 'all'}"
    return (
        f"dataset {name} (data {str(h)[:12]}), lambda={lam}, beta={beta}, cost norm={norm}, "
        f"protocol={proto}"
    )


def _router_row(res: dict[str, Any]) -> dict[str, Any]:
    m = res["metrics"]
    row: dict[str, Any] = {"method": res["router"], "supervision": res["supervision"]}
    for col in ("rU", "dU", "rQ", "dQ"):
        row[col], row[col + "_std"] = m[col]["mean"], m[col]["std"]
    # Mean normalised cost over the two views; per-draw cost std of the average is not kept,
    # so the std column is left empty (NaN) rather than guessed.
    row["cost"] = 0.5 * (m["rC"]["mean"] + m["dC"]["mean"])
    row["cost_std"] = np.nan
    for col in TRUTH_COLUMNS:
        if col in m:
            row[col], row[col + "_std"] = m[col]["mean"], m[col]["std"]
    row["n_draws"] = res.get("n_draws", 1)
    row["seed"] = res.get("seed")
    return row


def _baseline_rows(res: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for name in BASELINES:
        b = res["baselines"].get(name)
        if b is None:
            continue
        row: dict[str, Any] = {"method": name, "supervision": "-"}
        for col in ("rU", "dU", "rQ", "dQ"):
            row[col], row[col + "_std"] = b[col], 0.0
        row["cost"] = 0.5 * (b["rC"] + b["dC"])
        row["cost_std"] = 0.0
        for col in TRUTH_COLUMNS:
            if col in b:
                row[col], row[col + "_std"] = b[col], 0.0
        row["n_draws"] = 1
        rows.append(row)
    return rows


def leaderboard_frame(results: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per baseline and per (router, supervision) cell, grouped by setting.

    Several runs of the same cell (e.g. different seeds) are each kept as their own row.
    """
    if not results:
        return pd.DataFrame(columns=["setting", "method", "supervision", *COLUMNS])
    rows: list[dict[str, Any]] = []
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for res in results:
        groups.setdefault(setting_key(res), []).append(res)
    for key, members in groups.items():
        setting = describe_setting(key)
        for row in _baseline_rows(members[0]):
            rows.append({"setting": setting, **row})
        members = sorted(members, key=lambda r: (r["router"], r["supervision"], r.get("seed") or 0))
        for res in members:
            rows.append({"setting": setting, **_router_row(res)})
    frame = pd.DataFrame(rows)
    return frame


def _fmt(mean: float, std: float, n: int) -> str:
    if mean is None or (isinstance(mean, float) and np.isnan(mean)):
        return "-"
    if n and n > 1 and std == std:
        return f"{mean:.4f} ± {std:.4f}"
    return f"{mean:.4f}"


def to_markdown(frame: pd.DataFrame) -> str:
    """Markdown tables, one per setting; single-shot cells as mean ± std over draws."""
    if frame.empty:
        return "(no results)"
    blocks = []
    cols = [c for c in (*COLUMNS, *TRUTH_COLUMNS) if c in frame.columns]
    for setting, sub in frame.groupby("setting", sort=False):
        lines = [f"**{setting}**", ""]
        header = ["method", "supervision", *cols]
        lines.append("| " + " | ".join(header) + " |")
        lines.append("|" + "|".join(["---"] * 2 + ["---:"] * len(cols)) + "|")
        for _, r in sub.iterrows():
            n = int(r.get("n_draws", 1) or 1)
            cells = [str(r["method"]), str(r["supervision"])]
            cells += [_fmt(r.get(c), r.get(c + "_std", 0.0), n) for c in cols]
            lines.append("| " + " | ".join(cells) + " |")
        blocks.append("\n".join(lines))
    note = (
        "\n\nrU / dU: mean utility q - lambda * c~ on the rewrite / decoding test view; rQ / dQ: "
        "mean quality; cost: mean normalised cost over both views; tU: true utility (simulated "
        "data only). Single-shot cells: mean ± std (ddof=0) over draws."
    )
    return "\n\n".join(blocks) + note


def write_leaderboard(paths: Iterable[str | Path], out_dir: str | Path, stem: str = "leaderboard") -> str:
    """Build the leaderboard of every ``results.json`` under ``paths`` into ``out_dir``."""
    results = load_results(paths)
    if not results:
        return ""
    frame = leaderboard_frame(results)
    text = to_markdown(frame)
    out_dir = Path(out_dir)
    atomic_write_text(out_dir / f"{stem}.md", text + "\n")
    atomic_write_frame(out_dir / f"{stem}.csv", frame)
    return text


# =============================================================================================
# Paper-shaped tables (Table 1, Table 2, baselines, protocol / risk sweeps, frontier), plots
# =============================================================================================
#
# Everything below works on the ``results.json`` dicts written by ``benchmark.app.run.run_cell``.
# A *table group* is a set of runs that share the cost and protocol setting (lambda, beta, cost
# norm, protocol); one table never holds two groups. Within a group, the columns are the
# datasets; a dataset is identified by name AND content hash, so two different data sets that
# share a name get two columns (``name@hash``) and a note, never one.

#: Supervision modes in SPEC §4 order (Table 2 rows).
MODE_ORDER = (
    "single_shot", "input_only", "output_only", "dars_no_risk", "dars_rewrite_risk",
    "dars_decode_risk", "dars",
)
#: Routers in SPEC §5 order; other routers follow alphabetically.
ROUTER_ORDER = ("mlp", "knn", "embedllm", "mirt", "rm_softmax", "graphrouter", "avengers_pro")
#: Dataset column order; other datasets follow alphabetically.
DATASET_ORDER = ("gpqa", "math-500", "drop-800", "gpqa_like", "math_like", "drop_like")
#: Protocol row order (rewrites x decodes).
PROTOCOL_ORDER = ("1x1", "1x5", "3x3", "5x1", "5x5", "full")
#: The two modes compared in Table 1: ``router`` (single-shot) and ``router + DARS``.
TABLE1_MODES = ("single_shot", "dars")
#: Rows of the per-dataset baseline block.
PAPER_BASELINES = ("oracle", "best_fixed", "random")
DEFAULT_METRICS = ("rU", "dU")
#: Mean normalised cost budgets of the frontier table.
DEFAULT_BUDGETS = (0.02, 0.05, 0.1, 0.2)
#: Setting fields that define a table group.
GROUP_FIELDS = ("lam", "beta", "norm", "protocol")
MISSING = "—"


def _ordered(values: Iterable[str], order: tuple[str, ...]) -> list[str]:
    vals = list(dict.fromkeys(values))
    known = [v for v in order if v in vals]
    return known + sorted(v for v in vals if v not in order)


def protocol_label(protocol: dict[str, Any] | None) -> str:
    """``full`` or ``RxD`` (``all`` for an unrestricted axis)."""
    p = protocol or {}
    nr, nd = p.get("n_rewrites"), p.get("n_decodes")
    if nr is None and nd is None:
        return "full"
    return f"{'all' if nr is None else nr}x{'all' if nd is None else nd}"


def _features_name(res: dict[str, Any]) -> str | None:
    target = ((res.get("config") or {}).get("features") or {}).get("_target_")
    return str(target).rsplit(".", 1)[-1] if target else None


def row_label(router: str, mode: str) -> str:
    """Table 1 naming: ``knn`` (single-shot), ``knn + DARS``; other modes in parentheses."""
    if mode == "single_shot":
        return router
    if mode == "dars":
        return f"{router} + DARS"
    return f"{router} ({mode})"


def records_frame(results: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per run: identity, setting, and every metric's mean / std / n.

    ``idx`` points back into ``results``; ``column`` is the dataset's column label (the name,
    or ``name@hash`` where one name has several contents).
    """
    rows = []
    for i, res in enumerate(results):
        d, c = res["dataset"], res["cost"]
        row: dict[str, Any] = {
            "idx": i,
            "path": res.get("_path"),
            "router": str(res["router"]),
            "mode": str(res["supervision"]),
            "dataset": str(d["name"]),
            "content_hash": d.get("content_hash"),
            "lam": float(c["lam"]),
            "beta": float(c["beta"]),
            "norm": str(c["norm"]),
            "protocol": protocol_label(res.get("protocol")),
            "seed": res.get("seed"),
            "n_draws": int(res.get("n_draws") or 1),
            "features": _features_name(res),
            "router_params": res.get("router_params"),
        }
        for k, v in res["metrics"].items():
            row[k], row[k + "_std"], row[k + "_n"] = v["mean"], v["std"], v["n"]
        rows.append(row)
    df = pd.DataFrame(rows)
    if df.empty:
        return df
    hashes = df.groupby("dataset")["content_hash"].nunique(dropna=False)
    df["column"] = [
        f"{n}@{str(h)[:8]}" if hashes[n] > 1 else n for n, h in zip(df["dataset"], df["content_hash"])
    ]
    return df


def _columns(df: pd.DataFrame) -> list[str]:
    base = {c: n for c, n in zip(df["column"], df["dataset"])}
    ordered_names = _ordered(base.values(), DATASET_ORDER)
    return sorted(base, key=lambda c: (ordered_names.index(base[c]), c))


def _describe(fields: tuple[str, ...], key: tuple) -> str:
    names = {"lam": "lambda", "beta": "beta", "norm": "cost norm", "protocol": "protocol"}
    return ", ".join(f"{names[f]}={v}" for f, v in zip(fields, key))


def _slug(fields: tuple[str, ...], key: tuple) -> str:
    short = {"lam": "lam", "beta": "beta", "norm": "", "protocol": ""}
    return "_".join(f"{short[f]}{v}" for f, v in zip(fields, key))


def _groups(df: pd.DataFrame, fields: tuple[str, ...]) -> list[tuple[tuple, pd.DataFrame]]:
    if df.empty:
        return []
    out = [(k if isinstance(k, tuple) else (k,), sub) for k, sub in df.groupby(list(fields), sort=True)]
    return out


@dataclass
class Table:
    """One table block: a numeric frame (CSV) and its markdown (mean ± std cells)."""

    kind: str
    title: str
    setting: str
    frame: pd.DataFrame
    markdown: str


@dataclass
class Report:
    """What :func:`build_leaderboards` found and wrote."""

    tables: dict[str, list[Table]] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    text: str = ""
    n_results: int = 0


def _cell(sub: pd.DataFrame, metric: str) -> dict[str, Any] | None:
    """A table cell from one or several runs of the same (row, dataset).

    Several runs are pooled: the mean of the runs' means, and the std of all their draws taken
    together (equal weight per run): sqrt(mean of within-run variances + variance of the run
    means). ``runs`` says how many were pooled.
    """
    if sub.empty or metric not in sub or sub[metric].isna().all():
        return None
    sub = sub[sub[metric].notna()]
    means = sub[metric].to_numpy(float)
    stds = sub[metric + "_std"].to_numpy(float)
    ns = sub[metric + "_n"].to_numpy(int)
    if len(sub) == 1:
        return {"mean": means[0], "std": stds[0], "n": int(ns[0]), "runs": 1}
    pooled = float(np.sqrt(np.mean(stds**2) + np.var(means)))
    return {"mean": float(means.mean()), "std": pooled, "n": int(ns.sum()), "runs": len(sub)}


def _fmt_cell(cell: dict[str, Any] | None, digits: int = 4) -> str:
    if cell is None or cell["mean"] is None or not np.isfinite(cell["mean"]):
        return MISSING
    text = f"{cell['mean']:.{digits}f}"
    if cell["n"] > 1:
        text += f" ± {cell['std']:.{digits}f}"
    if cell.get("runs", 1) > 1:
        text += "†"
    return text


def _md_table(header: list[str], rows: list[list[str]], n_label_cols: int = 1) -> str:
    lines = ["| " + " | ".join(header) + " |"]
    lines.append("|" + "|".join(["---"] * n_label_cols + ["---:"] * (len(header) - n_label_cols)) + "|")
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _duplicate_note(where: str, sub: pd.DataFrame) -> str:
    differs = [
        f for f in ("seed", "n_draws", "features", "router_params")
        if sub[f].astype(str).nunique() > 1
    ]
    what = ", ".join(f"{f} {sorted(set(sub[f].astype(str)))}" for f in differs) or "identical settings"
    return f"{where}: {len(sub)} runs pooled (†; differ in: {what})"


def _grid(
    sub: pd.DataFrame,
    rows: list[tuple[str, dict[str, Any]]],
    columns: list[str],
    metrics: tuple[str, ...],
    *,
    kind: str,
    title: str,
    setting: str,
    report: Report,
    avg: bool = False,
    row_header: str = "method",
) -> Table:
    """Rows (label, filter) x columns (dataset x metric) of cells; missing cells reported."""
    frame_rows, md_rows = [], []
    for label, filt in rows:
        mask = np.ones(len(sub), dtype=bool)
        for k, v in filt.items():
            mask &= (sub[k] == v).to_numpy()
        rsub = sub[mask]
        frow: dict[str, Any] = {"setting": setting, row_header: label, **filt}
        md = [label]
        per_metric: dict[str, list[float]] = {m: [] for m in metrics}
        row_draws = 0
        for col in columns:
            csub = rsub[rsub["column"] == col]
            if len(csub) > 1:
                report.notes.append(_duplicate_note(f"{title} / {label} / {col}", csub))
            if csub.empty:
                report.missing.append(f"{title} [{setting}]: {label} has no run on {col}")
            for m in metrics:
                cell = _cell(csub, m)
                frow[f"{col} {m}"] = np.nan if cell is None else cell["mean"]
                frow[f"{col} {m} std"] = np.nan if cell is None else cell["std"]
                frow[f"{col} {m} n"] = 0 if cell is None else cell["n"]
                row_draws = max(row_draws, 0 if cell is None else cell["n"])
                md.append(_fmt_cell(cell))
                per_metric[m].append(np.nan if cell is None else cell["mean"])
        if avg:
            all_vals: list[float] = []
            for m in metrics:
                v = np.asarray(per_metric[m], dtype=float)
                a = float(v.mean()) if v.size and np.isfinite(v).all() else np.nan
                frow[f"avg {m}"] = a
                md.append(MISSING if np.isnan(a) else f"{a:.4f}")
                all_vals.extend(v.tolist())
            w = np.asarray(all_vals, dtype=float)
            a = float(w.mean()) if w.size and np.isfinite(w).all() else np.nan
            frow["avg"] = a
            md.append(MISSING if np.isnan(a) else f"{a:.4f}")
        frow["draws"] = row_draws
        frame_rows.append(frow)
        md_rows.append(md)
    header = [row_header] + [f"{c} {m}" for c in columns for m in metrics]
    if avg:
        header += [f"avg {m}" for m in metrics] + ["avg"]
    # Single-shot rows measured over different numbers of draws: say how many, per row.
    if len({f["draws"] for f in frame_rows if f["draws"] > 1}) > 1:
        header.append("draws")
        for f, md in zip(frame_rows, md_rows):
            md.append(str(f["draws"]) if f["draws"] > 1 else MISSING)
        report.notes.append(f"{title} [{setting}]: single-shot rows use different numbers of draws (column 'draws')")
    markdown = f"**{title}** ({setting})\n\n" + _md_table(header, md_rows)
    return Table(kind, title, setting, pd.DataFrame(frame_rows), markdown)


# ------------------------------------------------------------------------------ Table 1
def table1(df: pd.DataFrame, metrics: tuple[str, ...], report: Report) -> list[Table]:
    """Rows ``router`` (single-shot, mean ± std over draws) and ``router + DARS``; columns
    dataset x metric. One table per cost/protocol group. A group gets a Table 1 when it has a
    single-shot run, or when it is the only group (so a sweep whose single-shot cells all
    failed still reports them missing); protocol and beta sweeps of ``dars`` alone are shown in
    their own tables instead.
    """
    groups = _groups(df, GROUP_FIELDS)
    out = []
    for key, sub in groups:
        sub = sub[sub["mode"].isin(TABLE1_MODES)]
        if sub.empty or (len(groups) > 1 and not (sub["mode"] == "single_shot").any()):
            continue
        routers = _ordered(sub["router"], ROUTER_ORDER)
        rows = [(row_label(r, m), {"router": r, "mode": m}) for r in routers for m in TABLE1_MODES]
        out.append(
            _grid(sub, rows, _columns(sub), metrics, kind="table1", title="Table 1",
                  setting=_describe(GROUP_FIELDS, key), report=report)
        )
    return out


# ------------------------------------------------------------------------------ Table 2
def table2(df: pd.DataFrame, metrics: tuple[str, ...], report: Report) -> list[Table]:
    """Supervision ablation: rows = the seven modes (SPEC §4 order), columns dataset x metric
    plus averages over datasets (``avg <metric>``) and over every cell (``avg``). One table per
    router that has at least one mode other than single_shot / dars, per group. An average is
    left empty (—) when a dataset cell of that row is missing.
    """
    out = []
    for key, sub in _groups(df, GROUP_FIELDS):
        ablated = sub[~sub["mode"].isin(TABLE1_MODES)]
        if ablated.empty:
            continue
        columns = _columns(sub)
        for router in _ordered(ablated["router"], ROUTER_ORDER):
            rsub = sub[sub["router"] == router]
            modes = _ordered(list(MODE_ORDER) + list(rsub["mode"]), MODE_ORDER)
            rows = [(m, {"router": router, "mode": m}) for m in modes]
            out.append(
                _grid(rsub, rows, columns, metrics, kind="table2",
                      title=f"Table 2 ({router})", setting=_describe(GROUP_FIELDS, key),
                      report=report, avg=True, row_header="supervision")
            )
    return out


# ------------------------------------------------------------------------- baseline block
def baseline_table(
    df: pd.DataFrame, results: list[dict[str, Any]], metrics: tuple[str, ...], report: Report,
    names: tuple[str, ...] = PAPER_BASELINES,
) -> list[Table]:
    """Per dataset: oracle, best_fixed and random on each metric (one block per lambda / norm;
    the baselines do not depend on beta, the protocol or the router)."""
    out = []
    fields = ("lam", "norm")
    for key, sub in _groups(df, fields):
        setting = _describe(fields, key)
        columns = _columns(sub)
        first = {col: results[int(sub[sub["column"] == col]["idx"].iloc[0])] for col in columns}
        for col in columns:
            vals = {
                json.dumps({n: results[int(i)]["baselines"].get(n, {}).get(m) for n in names for m in metrics})
                for i in sub[sub["column"] == col]["idx"]
            }
            if len(vals) > 1:
                report.notes.append(
                    f"Baselines [{setting}]: runs on {col} disagree on baseline values; "
                    "the first run's are shown"
                )
        frame_rows, md_rows = [], []
        for name in names:
            frow: dict[str, Any] = {"setting": setting, "baseline": name}
            md = [name]
            for col in columns:
                b = first[col]["baselines"].get(name) or {}
                for m in metrics:
                    v = b.get(m)
                    frow[f"{col} {m}"] = np.nan if v is None else float(v)
                    md.append(MISSING if v is None else f"{float(v):.4f}")
            frame_rows.append(frow)
            md_rows.append(md)
        header = ["baseline"] + [f"{c} {m}" for c in columns for m in metrics]
        text = f"**Baselines** ({setting})\n\n" + _md_table(header, md_rows)
        models = []
        for col in columns:
            bf = first[col]["baselines"].get("best_fixed") or {}
            views = ", ".join(f"{p}: {bf[p + '_model']}" for p in ("r", "d") if p + "_model" in bf)
            if views:
                models.append(f"{col} ({views})")
        if models:
            text += "\n\nbest_fixed model: " + "; ".join(models)
        out.append(Table("baselines", "Baselines", setting, pd.DataFrame(frame_rows), text))
    return out


# --------------------------------------------------------------- protocol and risk sweeps
def sweep_tables(
    df: pd.DataFrame, vary: str, metrics: tuple[str, ...], report: Report
) -> list[Table]:
    """Rows = the values of ``vary`` (``protocol`` or ``beta``), per (router, mode) that was run
    under more than one value; the other setting fields are held fixed within a table."""
    if vary not in ("protocol", "beta"):
        raise ValueError(f"vary must be 'protocol' or 'beta', got {vary!r}")
    fields = tuple(f for f in GROUP_FIELDS if f != vary)
    out = []
    for key, sub in _groups(df, fields):
        if sub[vary].nunique() < 2:
            continue
        columns = _columns(sub)
        pairs = sub.groupby(["router", "mode"])[vary].nunique()
        for router in _ordered(sub["router"], ROUTER_ORDER):
            for mode in _ordered(sub[sub["router"] == router]["mode"], MODE_ORDER):
                if pairs.get((router, mode), 0) < 2:
                    continue
                rsub = sub[(sub["router"] == router) & (sub["mode"] == mode)]
                if vary == "protocol":
                    values = _ordered(rsub["protocol"], PROTOCOL_ORDER)
                    rows = [(v, {"protocol": v}) for v in values]
                    title = f"Protocol (rewrites x decodes): {row_label(router, mode)}"
                else:
                    values = sorted(set(rsub["beta"]))
                    rows = [(f"beta={v:g}", {"beta": v}) for v in values]
                    title = f"Risk weight beta: {row_label(router, mode)}"
                out.append(
                    _grid(rsub, rows, columns, metrics, kind=vary, title=title,
                          setting=_describe(fields, key), report=report, row_header=vary)
                )
    return out


# ---------------------------------------------------------------------------- frontier
def _view_points(src: dict[str, Any], view: str) -> tuple[np.ndarray, np.ndarray]:
    """(cost, quality) of a frontier dict or a fixed model's metrics on ``view``."""
    if view == "mean":
        c = 0.5 * (np.asarray(src["rC"], float) + np.asarray(src["dC"], float))
        q = 0.5 * (np.asarray(src["rQ"], float) + np.asarray(src["dQ"], float))
        return c, q
    if view not in ("r", "d"):
        raise ValueError(f"frontier view must be 'mean', 'r' or 'd', got {view!r}")
    return np.asarray(src[view + "C"], float), np.asarray(src[view + "Q"], float)


def frontier_data(
    df: pd.DataFrame, results: list[dict[str, Any]], view: str = "mean"
) -> list[dict[str, Any]]:
    """Per group and dataset: the lambda-sweep points of every (router, mode) run that has a
    frontier, and every fixed model's point (``baselines.fixed_models``)."""
    out = []
    for key, sub in _groups(df, GROUP_FIELDS):
        for col in _columns(sub):
            csub = sub[sub["column"] == col]
            curves: dict[str, tuple[np.ndarray, np.ndarray]] = {}
            lams: dict[str, list[float]] = {}
            for router in _ordered(csub["router"], ROUTER_ORDER):
                for mode in _ordered(csub[csub["router"] == router]["mode"], MODE_ORDER):
                    rs = csub[(csub["router"] == router) & (csub["mode"] == mode)]
                    for j, i in enumerate(rs["idx"]):
                        fr = results[int(i)].get("frontier")
                        if not fr:
                            continue
                        label = row_label(router, mode) + ("" if j == 0 else f" #{j + 1}")
                        curves[label] = _view_points(fr, view)
                        lams[label] = list(fr["lams"])
            fixed: dict[str, tuple[float, float]] = {}
            for i in csub["idx"]:
                fm = results[int(i)]["baselines"].get("fixed_models")
                if fm:
                    fixed = {m: tuple(float(x) for x in _view_points(v, view)) for m, v in fm.items()}
                    break
            if curves or fixed:
                out.append({
                    "group": key, "setting": _describe(GROUP_FIELDS, key), "column": col,
                    "curves": curves, "lams": lams, "fixed": fixed, "view": view,
                })
    return out


def frontier_tables(
    fronts: list[dict[str, Any]], budgets: tuple[float, ...], report: Report
) -> list[Table]:
    """AIQ and quality under cost budgets per (router, mode), next to the fixed models' hull.

    AIQ uses one cost range per dataset and group: ``[0, largest cost]`` over every curve and
    fixed model drawn (RouterBench's convention), so the rows of a table are comparable.
    """
    from evaluators.frontier import aiq, quality_at_budget, upper_hull

    out = []
    for fr in fronts:
        pts = dict(fr["curves"])
        if fr["fixed"]:
            fc = np.array([c for c, _ in fr["fixed"].values()])
            fq = np.array([q for _, q in fr["fixed"].values()])
            pts["fixed models (hull)"] = (fc, fq)
        finite = [c[np.isfinite(c) & np.isfinite(q)] for c, q in pts.values()]
        hi = max((float(c.max()) for c in finite if c.size), default=np.nan)
        rows, md_rows = [], []
        for label, (c, q) in pts.items():
            ok = np.isfinite(c) & np.isfinite(q)
            if not ok.any():
                report.notes.append(f"Frontier {fr['column']}: {label} has no finite point")
                continue
            hc, _ = upper_hull(c[ok], q[ok])
            a = aiq(c[ok], q[ok], (0.0, hi)) if hi > 0 else float(np.max(q[ok]))
            qb = quality_at_budget(c[ok], q[ok], np.asarray(budgets, float)) if budgets else []
            row = {"setting": fr["setting"], "dataset": fr["column"], "method": label,
                   "view": fr["view"], "aiq": a, "n_points": int(ok.sum()),
                   "hull_vertices": int(hc.size), "min_cost": float(c[ok].min()),
                   "max_quality": float(q[ok].max())}
            for b, v in zip(budgets, qb):
                row[f"Q@{b:g}"] = float(v)
            rows.append(row)
            md_rows.append(
                [label, f"{a:.4f}"] + [MISSING if not np.isfinite(v) else f"{v:.4f}" for v in qb]
                + [f"{row['min_cost']:.4f}", f"{row['max_quality']:.4f}"]
            )
        header = ["method", "AIQ"] + [f"Q@cost<={b:g}" for b in budgets] + ["min cost", "max Q"]
        title = f"Frontier {fr['column']}"
        text = (
            f"**{title}** ({fr['setting']}; view={fr['view']}; AIQ over cost [0, {hi:.4f}])\n\n"
            + _md_table(header, md_rows)
        )
        out.append(Table("frontier", title, fr["setting"], pd.DataFrame(rows), text))
    return out


# ------------------------------------------------------------------------------- plots
def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)


def draw_histograms(
    df: pd.DataFrame, results: list[dict[str, Any]], metric: str = "rU"
) -> list[dict[str, Any]]:
    """Per group, router and dataset with a single-shot run: its per-draw ``metric`` values and
    the ``dars`` run's value (None when there is no dars run of that cell)."""
    out = []
    for key, sub in _groups(df, GROUP_FIELDS):
        for col in _columns(sub):
            csub = sub[sub["column"] == col]
            for router in _ordered(csub["router"], ROUTER_ORDER):
                ss = csub[(csub["router"] == router) & (csub["mode"] == "single_shot")]
                if ss.empty:
                    continue
                per_draw = (results[int(ss["idx"].iloc[0])].get("per_draw") or {}).get(metric)
                if not per_draw:
                    continue
                dars = _cell(csub[(csub["router"] == router) & (csub["mode"] == "dars")], metric)
                out.append({
                    "group": key, "setting": _describe(GROUP_FIELDS, key), "column": col,
                    "router": router, "values": list(per_draw),
                    "dars": None if dars is None else dars["mean"], "metric": metric,
                })
    return out


# ------------------------------------------------------------------------------ writer
def _header_md(header: Iterable[str]) -> str:
    lines = [f"<!-- {h.replace('-->', '-- >')} -->" for h in header]
    return "\n".join(lines) + ("\n" if lines else "")


def _write_csv(path: Path, frame: pd.DataFrame, header: Iterable[str]) -> Path:
    lines = "".join(f"# {h}\n" for h in header)
    return atomic_write_text(path, lines + frame.to_csv(index=False))


def build_leaderboards(
    paths: Iterable[str | Path],
    out_dir: str | Path,
    *,
    metrics: tuple[str, ...] = DEFAULT_METRICS,
    budgets: tuple[float, ...] = DEFAULT_BUDGETS,
    frontier_view: str = "mean",
    hist_metric: str = "rU",
    header: Iterable[str] = (),
    plots: bool = True,
) -> Report:
    """Every ``results.json`` under ``paths`` -> paper-shaped tables, plots and a summary.

    Writes into ``out_dir``: ``README.md`` (everything: the tables, the missing cells, the
    notes, links to the plots), ``table1``, ``table2``, ``baselines``, ``protocol``, ``risk``
    and ``frontier`` as ``.md`` + ``.csv`` (those that apply), ``leaderboard.md/.csv`` (the
    long table of every run), ``frontier_<dataset>.png`` and ``hist_<dataset>_<router>.png``.
    ``header`` lines go first in every text file (markdown comments / ``#`` lines in CSV; read
    the CSVs with ``pandas.read_csv(path, comment="#")``).
    """
    header = list(header)
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
    n_groups = len(_groups(df, GROUP_FIELDS))
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
    fronts = frontier_data(df, results, frontier_view)
    tables["frontier"] = frontier_tables(fronts, tuple(budgets), report)
    hists = draw_histograms(df, results, hist_metric)

    out_dir.mkdir(parents=True, exist_ok=True)
    head = _header_md(header)
    for kind, tabs in tables.items():
        if not tabs:
            continue
        text = "\n\n".join(t.markdown for t in tabs)
        report.files.append(atomic_write_text(out_dir / f"{kind}.md", head + text + "\n"))
        frame = pd.concat([t.frame for t in tabs], ignore_index=True)
        report.files.append(_write_csv(out_dir / f"{kind}.csv", frame, header))
    long = leaderboard_frame(results)
    report.files.append(atomic_write_text(out_dir / "leaderboard.md", head + to_markdown(long) + "\n"))
    report.files.append(_write_csv(out_dir / "leaderboard.csv", long, header))

    figures: list[tuple[str, Path]] = []
    if plots:
        from evaluators.plots import plot_draw_histogram, plot_frontier

        suffix = (lambda key: "_" + _slug(GROUP_FIELDS, key)) if n_groups > 1 else (lambda key: "")
        for fr in fronts:
            path = out_dir / _safe(f"frontier_{fr['column']}{suffix(fr['group'])}.png")
            plot_frontier(
                {k: v for k, v in fr["curves"].items()}, fr["fixed"], path,
                title=f"{fr['column']}: cost vs quality over the lambda grid (view={fr['view']})",
            )
            figures.append((f"frontier {fr['column']}" + (f" ({fr['setting']})" if n_groups > 1 else ""), path))
        for h in hists:
            path = out_dir / _safe(f"hist_{h['column']}_{h['router']}{suffix(h['group'])}.png")
            plot_draw_histogram(
                h["values"], path, dars_value=h["dars"],
                title=f"{h['router']} on {h['column']}: {h['metric']} over single-shot draws",
                xlabel=f"test {h['metric']}",
            )
            figures.append((
                f"draw histogram {h['router']} on {h['column']}"
                + (f" ({h['setting']})" if n_groups > 1 else ""), path))
        report.files.extend(p for _, p in figures)

    parts = [f"# Leaderboard\n\n{len(results)} runs from: " + ", ".join(f"`{p}`" for p in map(str, paths))]
    titles = {
        "table1": "Table 1: single-shot vs DARS",
        "table2": "Table 2: supervision ablation",
        "baselines": "Baselines per dataset",
        "protocol": "Protocol study",
        "risk": "Risk weight study",
        "frontier": "Cost-quality frontier",
    }
    for kind, tabs in tables.items():
        if tabs:
            parts.append(f"## {titles[kind]}\n\n" + "\n\n".join(t.markdown for t in tabs))
    if figures:
        parts.append("## Figures\n\n" + "\n".join(f"- {t}: ![]({p.name})" for t, p in figures))
    parts.append(
        "## Missing cells\n\n"
        + ("\n".join(f"- {m}" for m in report.missing) if report.missing else "none")
    )
    if report.notes:
        parts.append("## Notes\n\n" + "\n".join(f"- {n}" for n in dict.fromkeys(report.notes)))
    parts.append(
        "rU / dU: mean utility q - lambda * c~ of the chosen model on the rewrite / decoding test "
        "view (SPEC §6). Single-shot cells: mean ± std (ddof=0) over draws. † : several runs "
        "pooled (see notes). — : no run. Table 2 avg columns: mean over datasets (avg: over every "
        "cell of the row). Frontier: points re-routed under the lambda grid without retraining, "
        "AIQ = area under the non-decreasing upper hull over [0, largest cost] / width; Q@cost<=b: "
        "hull quality at mean normalised cost b (— : no point that cheap)."
    )
    report.text = "\n\n".join(parts)
    report.files.append(atomic_write_text(out_dir / "README.md", head + report.text + "\n"))
    return report
