"""Leaderboard tables from the records frame: the long table of every run, Table 1, Table 2,
the baseline block, protocol / risk sweeps, the frontier table (AIQ from
:mod:`evaluators.frontier`) and paired comparisons of two supervision modes. Shapes: docs/analyses.md, section "Leaderboards"."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from evaluators import uncertainty as U
from evaluators.frontier import (
    FRONTIER_BOOTSTRAP, compare_aiq_replicates, compare_curves, fixed_replicates, view_points,
)
from evaluators.leaderboard.records import (
    GROUP_FIELDS,
    MODE_ORDER,
    PROTOCOL_ORDER,
    ROUTER_ORDER,
    columns,
    describe,
    groups,
    ordered,
    per_query_values,
    records_frame,
    row_label,
)
from evaluators.leaderboard.render import (
    COLUMNS,
    MISSING,
    TRUTH_COLUMNS,
    Report,
    Table,
    fmt,
    fmt_diff,
    md_table,
)

#: Baseline rows of the long table.
BASELINES = ("oracle", "best_fixed", "random", "cheapest", "largest")
#: The two modes compared in Table 1: ``router`` (single-shot) and ``router + DARS``.
TABLE1_MODES = ("single_shot", "dars")
#: Rows of the per-dataset baseline block.
PAPER_BASELINES = ("oracle", "best_fixed", "random")


# ------------------------------------------------------------------------ the long table
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
        for col, (lo, hi) in (b.get("ci") or {}).items():
            if col in row:
                row[col + "_low"], row[col + "_high"] = lo, hi
        rows.append(row)
    return rows


def _run_row(rec: dict[str, Any]) -> dict[str, Any]:
    row: dict[str, Any] = {"method": rec["router"], "supervision": rec["mode"]}
    for col in ("rU", "dU", "rQ", "dQ"):
        row[col], row[col + "_std"] = rec[col], rec[col + "_std"]
    # Mean normalised cost over the two views; the per-draw std of that average is not kept,
    # so its std is left empty (NaN) rather than guessed.
    row["cost"] = 0.5 * (rec["rC"] + rec["dC"])
    row["cost_std"] = np.nan
    for col in TRUTH_COLUMNS:
        if col in rec and np.isfinite(rec[col]):
            row[col], row[col + "_std"] = rec[col], rec[col + "_std"]
    row["n_draws"] = rec["n_draws"]
    row["seed"] = rec["seed"]
    for col in ("rU", "dU", "rQ", "dQ", *TRUTH_COLUMNS):
        if col in row and col + "_low" in rec:
            row[col + "_low"], row[col + "_high"] = rec[col + "_low"], rec[col + "_high"]
    return row


def leaderboard_frame(results: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per baseline and per run, in blocks by setting (dataset and cost / protocol).

    Several runs of the same cell (e.g. different seeds) are each kept as their own row.
    """
    if not results:
        return pd.DataFrame(columns=["setting", "method", "supervision", *COLUMNS])
    df = records_frame(results)
    rows: list[dict[str, Any]] = []
    for setting, sub in df.groupby("setting", sort=False):
        rows += [{"setting": setting, **r} for r in _baseline_rows(results[int(sub["idx"].iloc[0])])]
        sub = sub.assign(_seed=sub["seed"].fillna(0)).sort_values(
            ["router", "mode", "_seed"], kind="stable"
        )
        rows += [{"setting": setting, **_run_row(r)} for r in sub.to_dict("records")]
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------- cells
def cell(sub: pd.DataFrame, metric: str) -> dict[str, Any] | None:
    """A table cell from one or several runs (seeds) of the same (row, dataset).

    One run: its mean, std over draws and bootstrap interval (``low``, ``high``). Several runs:
    the mean of the runs' means with a Student-t 95% interval across runs
    (:func:`evaluators.uncertainty.seed_interval`), and the std of all their draws taken
    together (equal weight per run): sqrt(mean of within-run variances + variance of the run
    means). ``runs`` says how many were aggregated, ``n`` how many draws in all, ``draws`` the
    most draws of one run.
    """
    if sub.empty or metric not in sub or sub[metric].isna().all():
        return None
    sub = sub[sub[metric].notna()]
    means = sub[metric].to_numpy(float)
    stds = sub[metric + "_std"].to_numpy(float)
    ns = sub[metric + "_n"].to_numpy(int)
    if len(sub) == 1:
        lo = float(sub[metric + "_low"].iloc[0]) if metric + "_low" in sub else np.nan
        hi = float(sub[metric + "_high"].iloc[0]) if metric + "_high" in sub else np.nan
        return {"mean": means[0], "std": stds[0], "n": int(ns[0]), "runs": 1, "low": lo, "high": hi,
                "draws": int(ns[0])}
    pooled = float(np.sqrt(np.mean(stds**2) + np.var(means)))
    si = U.seed_interval(means)
    return {"mean": float(means.mean()), "std": pooled, "n": int(ns.sum()), "runs": len(sub),
            "low": si["low"], "high": si["high"], "draws": int(ns.max())}


def fmt_cell(c: dict[str, Any] | None) -> str:
    if c is None:
        return MISSING
    return fmt(c["mean"], c["std"], c["n"], c.get("runs", 1), c.get("low"), c.get("high"))


def _duplicate_note(where: str, sub: pd.DataFrame) -> str | None:
    """A note on runs aggregated into one cell, unless they are seed replicates."""
    differs = [
        f for f in ("seed", "data_seed", "n_draws", "features", "router_params")
        if sub[f].astype(str).nunique() > 1
    ]
    if differs and set(differs) <= {"seed", "data_seed"}:
        return None
    what = ", ".join(f"{f} {sorted(set(sub[f].astype(str)))}" for f in differs) or "identical settings"
    return f"{where}: {len(sub)} runs aggregated (n={len(sub)}; differ in: {what})"


def grid(
    sub: pd.DataFrame,
    rows: list[tuple[str, dict[str, Any]]],
    cols: list[str],
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
        for col in cols:
            csub = rsub[rsub["column"] == col]
            note = _duplicate_note(f"{title} / {label} / {col}", csub) if len(csub) > 1 else None
            if note:
                report.notes.append(note)
            if csub.empty:
                report.missing.append(f"{title} [{setting}]: {label} has no run on {col}")
            for m in metrics:
                c = cell(csub, m)
                frow[f"{col} {m}"] = np.nan if c is None else c["mean"]
                frow[f"{col} {m} std"] = np.nan if c is None else c["std"]
                frow[f"{col} {m} n"] = 0 if c is None else c["n"]
                frow[f"{col} {m} low"] = np.nan if c is None else c["low"]
                frow[f"{col} {m} high"] = np.nan if c is None else c["high"]
                frow[f"{col} {m} runs"] = 0 if c is None else c["runs"]
                row_draws = max(row_draws, 0 if c is None else c["draws"])
                md.append(fmt_cell(c))
                per_metric[m].append(np.nan if c is None else c["mean"])
        if avg:
            all_vals: list[float] = []
            for m in metrics:
                v = np.asarray(per_metric[m], dtype=float)
                a = float(v.mean()) if v.size and np.isfinite(v).all() else np.nan
                frow[f"avg {m}"] = a
                md.append(fmt(a))
                all_vals.extend(v.tolist())
            w = np.asarray(all_vals, dtype=float)
            a = float(w.mean()) if w.size and np.isfinite(w).all() else np.nan
            frow["avg"] = a
            md.append(fmt(a))
        frow["draws"] = row_draws
        frame_rows.append(frow)
        md_rows.append(md)
    header = [row_header] + [f"{c} {m}" for c in cols for m in metrics]
    if avg:
        header += [f"avg {m}" for m in metrics] + ["avg"]
    # Single-shot rows measured over different numbers of draws: say how many, per row.
    if len({f["draws"] for f in frame_rows if f["draws"] > 1}) > 1:
        header.append("draws")
        for f, md in zip(frame_rows, md_rows):
            md.append(str(f["draws"]) if f["draws"] > 1 else MISSING)
        report.notes.append(f"{title} [{setting}]: single-shot rows use different numbers of draws (column 'draws')")
    markdown = f"**{title}** ({setting})\n\n" + md_table(header, md_rows)
    return Table(kind, title, setting, pd.DataFrame(frame_rows), markdown)


# ------------------------------------------------------------------------------ Table 1
def table1(df: pd.DataFrame, metrics: tuple[str, ...], report: Report) -> list[Table]:
    """Rows ``router`` (single-shot, mean ± std over draws) and ``router + DARS``; columns
    dataset x metric. One table per cost/protocol group. A group gets a Table 1 when it has a
    single-shot run, or when it is the only group (so a sweep whose single-shot cells all
    failed still reports them missing); protocol and beta sweeps of ``dars`` alone are shown in
    their own tables instead.
    """
    grouped = groups(df, GROUP_FIELDS)
    out = []
    for key, sub in grouped:
        sub = sub[sub["mode"].isin(TABLE1_MODES)]
        if sub.empty or (len(grouped) > 1 and not (sub["mode"] == "single_shot").any()):
            continue
        routers = ordered(sub["router"], ROUTER_ORDER)
        rows = [(row_label(r, m), {"router": r, "mode": m}) for r in routers for m in TABLE1_MODES]
        out.append(
            grid(sub, rows, columns(sub), metrics, kind="table1", title="Table 1",
                 setting=describe(GROUP_FIELDS, key), report=report)
        )
    return out


# ------------------------------------------------------------------------------ Table 2
def table2(df: pd.DataFrame, metrics: tuple[str, ...], report: Report) -> list[Table]:
    """Supervision ablation: rows = the seven modes (:data:`MODE_ORDER`), columns dataset x
    metric plus averages over datasets (``avg <metric>``) and over every cell (``avg``). One
    table per router that has at least one mode other than single_shot / dars, per group. An
    average is left empty (—) when a dataset cell of that row is missing.
    """
    out = []
    for key, sub in groups(df, GROUP_FIELDS):
        ablated = sub[~sub["mode"].isin(TABLE1_MODES)]
        if ablated.empty:
            continue
        cols = columns(sub)
        for router in ordered(ablated["router"], ROUTER_ORDER):
            rsub = sub[sub["router"] == router]
            modes = ordered(list(MODE_ORDER) + list(rsub["mode"]), MODE_ORDER)
            rows = [(m, {"router": router, "mode": m}) for m in modes]
            out.append(
                grid(rsub, rows, cols, metrics, kind="table2",
                     title=f"Table 2 ({router})", setting=describe(GROUP_FIELDS, key),
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
    for key, sub in groups(df, fields):
        setting = describe(fields, key)
        cols = columns(sub)
        # One run per distinct data content (seed replicates of the column); baselines depend
        # on the data, lambda and the cost norm only (tU also on beta).
        per_col = {
            col: [results[int(i)] for i in sub[sub["column"] == col].drop_duplicates("content_hash")["idx"]]
            for col in cols
        }
        first = {col: runs[0] for col, runs in per_col.items()}
        for col in cols:
            for content_hash, csub in sub[sub["column"] == col].groupby("content_hash", dropna=False):
                vals = {
                    json.dumps({n: results[int(i)]["baselines"].get(n, {}).get(m) for n in names for m in metrics})
                    for i in csub["idx"]
                }
                if len(vals) > 1:
                    report.notes.append(
                        f"Baselines [{setting}]: runs on {col} (data {str(content_hash)[:12]}) disagree "
                        "on baseline values; the first run's are shown"
                    )
        frame_rows, md_rows = [], []
        for name in names:
            frow: dict[str, Any] = {"setting": setting, "baseline": name}
            md = [name]
            for col in cols:
                for m in metrics:
                    found = [(r["baselines"].get(name) or {}) for r in per_col[col]]
                    vals = np.array([np.nan if b.get(m) is None else float(b[m]) for b in found])
                    if len(found) == 1:
                        lo, hi = (found[0].get("ci") or {}).get(m, (np.nan, np.nan))
                        c = {"mean": vals[0], "low": lo, "high": hi, "runs": 1}
                    else:
                        si = U.seed_interval(vals)
                        c = {"mean": si["mean"], "low": si["low"], "high": si["high"], "runs": si["n"]}
                    frow[f"{col} {m}"] = c["mean"]
                    frow[f"{col} {m} low"], frow[f"{col} {m} high"] = c["low"], c["high"]
                    frow[f"{col} {m} runs"] = c["runs"]
                    md.append(fmt(c["mean"], runs=c["runs"], low=c["low"], high=c["high"]))
            frame_rows.append(frow)
            md_rows.append(md)
        header = ["baseline"] + [f"{c} {m}" for c in cols for m in metrics]
        text = f"**Baselines** ({setting})\n\n" + md_table(header, md_rows)
        models = []
        for col in cols:
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
    for key, sub in groups(df, fields):
        if sub[vary].nunique() < 2:
            continue
        cols = columns(sub)
        pairs = sub.groupby(["router", "mode"])[vary].nunique()
        for router in ordered(sub["router"], ROUTER_ORDER):
            for mode in ordered(sub[sub["router"] == router]["mode"], MODE_ORDER):
                if pairs.get((router, mode), 0) < 2:
                    continue
                rsub = sub[(sub["router"] == router) & (sub["mode"] == mode)]
                if vary == "protocol":
                    values = ordered(rsub["protocol"], PROTOCOL_ORDER)
                    rows = [(v, {"protocol": v}) for v in values]
                    title = f"Protocol (rewrites x decodes): {row_label(router, mode)}"
                else:
                    values = sorted(set(rsub["beta"]))
                    rows = [(f"beta={v:g}", {"beta": v}) for v in values]
                    title = f"Risk weight beta: {row_label(router, mode)}"
                out.append(
                    grid(rsub, rows, cols, metrics, kind=vary, title=title,
                         setting=describe(fields, key), report=report, row_header=vary)
                )
    return out


# ---------------------------------------------------------------------------- frontier
def frontier_data(
    df: pd.DataFrame, results: list[dict[str, Any]], view: str = "mean"
) -> list[dict[str, Any]]:
    """Per group, dataset and *instance*: the lambda-sweep points of every (router, mode) run
    that has a frontier, and every fixed model's point (``baselines.fixed_models``).

    An instance is the runs on one data content with one router seed (e.g. one simulator seed
    of a sweep over ``dataset.seed``); its curves share one cost range and one set of bootstrap
    resamples. ``runs`` maps each curve's label to its run, ``pair`` to its (router, mode);
    ``first`` marks the first instance of a dataset (the one plotted).
    """
    out = []
    for key, sub in groups(df, GROUP_FIELDS):
        for col in columns(sub):
            csub = sub[sub["column"] == col]
            inst = csub.assign(_data=csub["data_seed"].astype(str), _seed=csub["seed"].astype(str),
                               _hash=csub["content_hash"].astype(str))
            for n_inst, ((_, _, _), isub) in enumerate(inst.groupby(["_data", "_hash", "_seed"], sort=True)):
                curves: dict[str, tuple[np.ndarray, np.ndarray]] = {}
                lams: dict[str, list[float]] = {}
                runs: dict[str, int] = {}
                pair: dict[str, tuple[str, str]] = {}
                for router in ordered(isub["router"], ROUTER_ORDER):
                    for mode in ordered(isub[isub["router"] == router]["mode"], MODE_ORDER):
                        rs = isub[(isub["router"] == router) & (isub["mode"] == mode)]
                        for j, i in enumerate(rs["idx"]):
                            fr = results[int(i)].get("frontier")
                            if not fr:
                                continue
                            label = row_label(router, mode) + ("" if j == 0 else f" #{j + 1}")
                            curves[label] = view_points(fr, view)
                            lams[label] = list(fr["lams"])
                            runs[label] = int(i)
                            pair[label] = (router, mode)
                fixed: dict[str, tuple[float, float]] = {}
                for i in isub["idx"]:
                    fm = results[int(i)]["baselines"].get("fixed_models")
                    if fm:
                        fixed = {m: tuple(float(x) for x in view_points(v, view)) for m, v in fm.items()}
                        break
                if curves or fixed:
                    out.append({
                        "group": key, "setting": describe(GROUP_FIELDS, key), "column": col,
                        "curves": curves, "lams": lams, "fixed": fixed, "view": view, "runs": runs,
                        "pair": pair, "first": n_inst == 0, "data_seed": isub["data_seed"].iloc[0],
                        "seed": isub["seed"].iloc[0],
                    })
    return out


def _frontier_replicates(
    fr: dict[str, Any], results: list[dict[str, Any]], report: Report
) -> dict[str, np.ndarray]:
    """Every curve's AIQ in every bootstrap replicate of one instance (:data:`FIXED_LABEL`
    too), from the runs' ``frontier_bootstrap.npz``; ``{}`` (with a note) when a run has no
    such file or the runs were resampled differently (so their replicates do not pair)."""
    if not fr["runs"]:
        return {}
    where = f"Frontier {fr['column']} (data seed {fr['data_seed']}, seed {fr['seed']})"
    arrays: dict[str, dict[str, np.ndarray]] = {}
    settings = set()
    for label, i in fr["runs"].items():
        res = results[i]
        path = Path(res["_path"]).parent / FRONTIER_BOOTSTRAP
        if not path.is_file():
            report.notes.append(f"{where}: no AIQ intervals ({path} missing: run made before they were added)")
            return {}
        boot = res.get("bootstrap") or {}
        settings.add((boot.get("resamples"), boot.get("seed"), res["dataset"]["n_test_queries"]))
        with np.load(path, allow_pickle=False) as z:
            arrays[label] = {k: z[k] for k in z.files}
    if len(settings) > 1:
        report.notes.append(f"{where}: runs bootstrapped with different (resamples, seed, test queries) "
                            f"{sorted(map(str, settings))}; no AIQ intervals")
        return {}
    view = fr["view"]
    curves = {label: view_points(a, view) for label, a in arrays.items()}
    if fr["fixed"]:
        curves[FIXED_LABEL] = view_points(fixed_replicates(next(iter(arrays.values()))), view)
    return compare_aiq_replicates(curves)


#: Row label of the fixed models' hull in the frontier table.
FIXED_LABEL = "fixed models (hull)"


def frontier_tables(
    fronts: list[dict[str, Any]],
    budgets: tuple[float, ...],
    report: Report,
    results: list[dict[str, Any]] | None = None,
    *,
    pairs: list[tuple[str, str]] = (),
    correction: str = "holm",
    alpha: float = 0.05,
) -> tuple[list[Table], list[Table]]:
    """AIQ (with its 95% interval) and quality under cost budgets per (router, mode), next to the
    fixed models' hull, on one cost range per instance (:func:`frontier_data`,
    :func:`evaluators.frontier.compare_curves`); and the paired AIQ differences of ``pairs``
    of modes (``a - b`` per router).

    One instance per dataset: the AIQ's percentile interval from re-scoring every bootstrap
    replicate (the range re-derived per replicate) and, for a pair, the paired bootstrap of
    the difference (same query resamples; p-value :func:`evaluators.uncertainty.p_value`).
    Several instances (seeds): mean over them with a Student-t interval and, for a pair, a
    one-sample t-test across the per-instance differences; ``(n=k)`` says how many. The
    correction (``holm`` or ``bh``) runs over every cell of a difference table.
    """
    if correction not in U.CORRECTIONS:
        raise ValueError(f"correction must be one of {sorted(U.CORRECTIONS)}, got {correction!r}")
    by_col: dict[tuple, list[tuple[dict[str, Any], dict[str, dict[str, Any]]]]] = {}
    for fr in fronts:
        pts = dict(fr["curves"])
        if fr["fixed"]:
            fc = np.array([c for c, _ in fr["fixed"].values()])
            fq = np.array([q for _, q in fr["fixed"].values()])
            pts[FIXED_LABEL] = (fc, fq)
        hi, summary = compare_curves(pts, budgets)
        reps = _frontier_replicates(fr, results, report) if results is not None else {}
        scores = {}
        for label, s in summary.items():
            if s is None:
                report.notes.append(f"Frontier {fr['column']}: {label} has no finite point")
                continue
            scores[label] = {**s, "hi": hi, "reps": reps.get(label)}
        by_col.setdefault((fr["group"], fr["column"]), []).append((fr, scores))

    tables, diff_rows = [], {}
    for (key, col), insts in by_col.items():
        fr0 = insts[0][0]
        labels = list(dict.fromkeys(lab for _, sc in insts for lab in sc))
        rows, md_rows = [], []
        agg: dict[str, list[dict[str, Any]]] = {lab: [sc[lab] for _, sc in insts if lab in sc] for lab in labels}
        for label in labels:
            got = agg[label]
            vals = np.array([g["aiq"] for g in got])
            if len(got) == 1:
                lo, hi_ci = U.percentile_interval(got[0]["reps"]) if got[0]["reps"] is not None else (np.nan, np.nan)
                mean = float(vals[0])
            else:
                si = U.seed_interval(vals)
                mean, lo, hi_ci = si["mean"], si["low"], si["high"]
            qb = np.mean([g["quality_at_budget"] for g in got], axis=0)
            row = {"setting": fr0["setting"], "dataset": col, "method": label, "view": fr0["view"],
                   "aiq": mean, "aiq_low": lo, "aiq_high": hi_ci, "runs": len(got),
                   "n_points": got[0]["n_points"], "hull_vertices": float(np.mean([g["hull_vertices"] for g in got])),
                   "min_cost": float(np.mean([g["min_cost"] for g in got])),
                   "max_quality": float(np.mean([g["max_quality"] for g in got]))}
            for b, v in zip(budgets, qb):
                row[f"Q@{b:g}"] = float(v)
            rows.append(row)
            md_rows.append(
                [label, fmt(mean, runs=len(got), low=lo, high=hi_ci)] + [fmt(v) for v in qb]
                + [fmt(row["min_cost"]), fmt(row["max_quality"])]
            )
        his = [sc[next(iter(sc))]["hi"] for _, sc in insts if sc]
        rng = (f"AIQ over cost [0, {his[0]:.4f}]" if len(insts) == 1 and his else
               f"AIQ over cost [0, largest cost] of each of {len(insts)} instances (data / router seeds); "
               "(n=k): mean over k with a Student-t 95% interval; other columns: means")
        title = f"Frontier {col}"
        text = f"**{title}** ({fr0['setting']}; view={fr0['view']}; {rng})\n\n" + md_table(
            ["method", "AIQ"] + [f"Q@cost<={b:g}" for b in budgets] + ["min cost", "max Q"], md_rows)
        tables.append(Table("frontier", title, fr0["setting"], pd.DataFrame(rows), text))
        for mode_a, mode_b in pairs:
            for router in ordered([fr["pair"][lab][0] for fr, _ in insts for lab in fr["pair"]], ROUTER_ORDER):
                la, lb = row_label(router, mode_a), row_label(router, mode_b)
                both = [(sc[la], sc[lb]) for _, sc in insts if la in sc and lb in sc]
                if not both:
                    continue
                d = np.array([a["aiq"] - b["aiq"] for a, b in both])
                if len(both) == 1:
                    a, b = both[0]
                    if a["reps"] is not None and b["reps"] is not None:
                        r = a["reps"] - b["reps"]
                        lo, hi_ci = U.percentile_interval(r)
                        p = U.p_value(r)
                    else:
                        lo = hi_ci = p = np.nan
                    res = {"diff": float(d[0]), "low": lo, "high": hi_ci, "p": p, "pairs": 1,
                           "method": "paired bootstrap"}
                else:
                    si = U.seed_interval(d)
                    res = {"diff": si["mean"], "low": si["low"], "high": si["high"], "p": U.seed_test(d),
                           "pairs": len(both), "method": "t across seeds"}
                diff_rows.setdefault(key, []).append({
                    "setting": fr0["setting"], "router": router, "dataset": col, "metric": "AIQ",
                    "view": fr0["view"], "a": mode_a, "b": mode_b, **res})
    diffs = []
    for key, rows in diff_rows.items():
        frame = pd.DataFrame(rows)
        frame["p_adjusted"] = U.CORRECTIONS[correction](frame["p"].to_numpy(float))
        frame["significant"] = frame["p_adjusted"] < alpha
        frame["correction"] = correction
        cols = list(dict.fromkeys(frame["dataset"]))
        pair_names = list(dict.fromkeys(zip(frame["a"], frame["b"])))
        md_rows = []
        for router in ordered(frame["router"], ROUTER_ORDER):
            for a, b in pair_names:
                md = [router if len(pair_names) == 1 else f"{router}: {a} - {b}"]
                for c in cols:
                    hit = frame[(frame["router"] == router) & (frame["dataset"] == c)
                                & (frame["a"] == a) & (frame["b"] == b)]
                    md.append(MISSING if hit.empty else fmt_diff(
                        hit["diff"].iloc[0], hit["low"].iloc[0], hit["high"].iloc[0], hit["p"].iloc[0],
                        bool(hit["significant"].iloc[0])))
                if any(x != MISSING for x in md[1:]):
                    md_rows.append(md)
        name = "Holm" if correction == "holm" else "Benjamini-Hochberg"
        what = " and ".join(f"{a} - {b}" for a, b in pair_names)
        setting = frame["setting"].iloc[0]
        heading = (f"**Paired AIQ difference {what}** ({setting}; view={frame['view'].iloc[0]}; 95% intervals; "
                   f"* : adjusted p < {alpha:g}, {name} over the {len(frame)} cells of this table)")
        diffs.append(Table("frontier_diff", f"AIQ {what}", setting, frame,
                           heading + "\n\n" + md_table(["router"] + [f"{c} AIQ" for c in cols], md_rows)))
    return tables, diffs


# ------------------------------------------------------------------------- histograms
def draw_histograms(
    df: pd.DataFrame, results: list[dict[str, Any]], metric: str = "rU"
) -> list[dict[str, Any]]:
    """Per group, router and dataset with a single-shot run: its per-draw ``metric`` values and
    the ``dars`` run's value (None when there is no dars run of that cell)."""
    out = []
    for key, sub in groups(df, GROUP_FIELDS):
        for col in columns(sub):
            csub = sub[sub["column"] == col]
            for router in ordered(csub["router"], ROUTER_ORDER):
                ss = csub[(csub["router"] == router) & (csub["mode"] == "single_shot")]
                if ss.empty:
                    continue
                per_draw = (results[int(ss["idx"].iloc[0])].get("per_draw") or {}).get(metric)
                if not per_draw:
                    continue
                dars = cell(csub[(csub["router"] == router) & (csub["mode"] == "dars")], metric)
                out.append({
                    "group": key, "setting": describe(GROUP_FIELDS, key), "column": col,
                    "router": router, "values": list(per_draw),
                    "dars": None if dars is None else dars["mean"], "metric": metric,
                })
    return out


# ------------------------------------------------------------------ paired comparisons
#: Metrics of the paired comparisons (tU only where the runs have it: simulated data).
COMPARE_METRICS = ("rU", "dU", "tU")


def _pair_runs(a: pd.DataFrame, b: pd.DataFrame) -> list[tuple[int, int]]:
    """Runs of two arms matched by (router seed, data content): each pair shares its test set."""
    def key(x: pd.DataFrame) -> pd.DataFrame:
        return x.assign(_k=x["seed"].astype(str) + "|" + x["content_hash"].astype(str))

    m = key(a).merge(key(b), on="_k", suffixes=("_a", "_b"))
    return list(zip(m["idx_a"].astype(int), m["idx_b"].astype(int)))


def paired_comparison(
    results: list[dict[str, Any]], pairs: list[tuple[int, int]], metric: str,
    cache: dict[int, tuple[np.ndarray, dict[str, np.ndarray]]], resamples_n: int | None = None,
) -> dict[str, Any] | None:
    """``metric(a) - metric(b)`` over matched runs, from their per-query decisions.

    One pair: the paired bootstrap of :func:`evaluators.uncertainty.paired_difference` (same
    test queries for both arms; single-shot draws resampled too), with the resamples and seed
    recorded in run ``a``'s results. Several pairs (seeds): the mean of the per-pair differences
    with a Student-t interval and a one-sample t-test across pairs (the seed is the unit).
    """
    diffs = []
    for ia, ib in pairs:
        for i in (ia, ib):
            if i not in cache:
                have = [k for k in COMPARE_METRICS if k in results[i]["metrics"]]
                cache[i] = per_query_values(results[i], have)
        (qa, va), (qb, vb) = cache[ia], cache[ib]
        if metric not in va or metric not in vb:
            return None
        if not np.array_equal(qa, qb):
            raise ValueError(
                f"{results[ia]['_path']} and {results[ib]['_path']} are matched but test different queries"
            )
        boot = results[ia].get("bootstrap") or {}
        diffs.append(U.paired_difference(
            va[metric], vb[metric], resamples_n=int(resamples_n or boot.get("resamples", U.RESAMPLES)),
            seed=int(boot.get("seed", 0)),
        ))
    if not diffs:
        return None
    if len(diffs) == 1:
        return {**diffs[0], "pairs": 1, "method": "paired bootstrap"}
    d = np.array([x["diff"] for x in diffs])
    si = U.seed_interval(d)
    return {"diff": si["mean"], "low": si["low"], "high": si["high"], "p": U.seed_test(d),
            "pairs": len(diffs), "method": "t across seeds"}


def _resamples(results: list[dict[str, Any]], runs: pd.DataFrame, resamples_n: int | None) -> int:
    """The bootstrap resamples behind a table's paired comparisons (the override, else the first run's)."""
    boot = results[int(runs["idx"].iloc[0])].get("bootstrap") or {}
    return int(resamples_n or boot.get("resamples", U.RESAMPLES))


def holm_floor_note(frame: pd.DataFrame, resamples: int, correction: str, alpha: float) -> str | None:
    """A note when Holm cannot mark any single-seed cell of a table: a paired-bootstrap p-value is
    at least ``2 / (B + 1)`` (:func:`evaluators.uncertainty.p_value`), so Holm's first step needs
    ``m * 2 / (B + 1) < alpha`` over the table's ``m`` cells. None when that holds, under BH, or
    when every cell is a t-test across seeds (continuous p-values)."""
    m = int(frame["p"].notna().sum())
    floor = 2.0 / (resamples + 1.0)
    if correction != "holm" or not (frame["pairs"] == 1).any() or m * floor < alpha:
        return None
    return (f"Holm over {m} cells cannot mark a single-seed difference significant at {alpha:g}: with "
            f"{resamples} bootstrap resamples the smallest p-value is 2/(B+1) = {floor:.2g}; set "
            f"bootstrap.resamples to at least {int(np.floor(2 * m / alpha))} (or --resamples), or use --correction bh")


def comparison_tables(
    df: pd.DataFrame,
    results: list[dict[str, Any]],
    mode_a: str,
    mode_b: str,
    report: Report,
    *,
    routers: list[str] | None = None,
    correction: str = "holm",
    alpha: float = 0.05,
    resamples_n: int | None = None,
    kind: str = "comparison",
) -> list[Table]:
    """Per group: ``mode_a - mode_b`` per router x dataset x metric (rU, dU, tU), each with its
    interval and p-value; ``*`` marks cells significant at ``alpha`` after ``correction``
    (``holm`` or ``bh``) over every cell of the table."""
    if correction not in U.CORRECTIONS:
        raise ValueError(f"correction must be one of {sorted(U.CORRECTIONS)}, got {correction!r}")
    out = []
    cache: dict[int, tuple[np.ndarray, dict[str, np.ndarray]]] = {}
    for key, sub in groups(df, GROUP_FIELDS):
        cols = columns(sub)
        names = ordered(sub["router"], ROUTER_ORDER) if routers is None else routers
        metrics = [m for m in COMPARE_METRICS if m in sub and sub[m].notna().any()]
        rows = []
        for router in names:
            for col in cols:
                rs = sub[(sub["router"] == router) & (sub["column"] == col)]
                pairs = _pair_runs(rs[rs["mode"] == mode_a], rs[rs["mode"] == mode_b])
                if not pairs:
                    continue
                for m in metrics:
                    r = paired_comparison(results, pairs, m, cache, resamples_n)
                    if r is not None:
                        rows.append({"setting": describe(GROUP_FIELDS, key), "router": router,
                                     "dataset": col, "metric": m, "a": mode_a, "b": mode_b, **r})
        if not rows:
            continue
        frame = pd.DataFrame(rows)
        frame["p_adjusted"] = U.CORRECTIONS[correction](frame["p"].to_numpy(float))
        frame["significant"] = frame["p_adjusted"] < alpha
        frame["correction"] = correction
        note = holm_floor_note(frame, _resamples(results, sub, resamples_n), correction, alpha)
        if note:
            report.notes.append(f"{mode_a} - {mode_b} [{describe(GROUP_FIELDS, key)}]: {note}")
        header = ["router"] + [f"{c} {m}" for c in cols for m in metrics]
        md_rows = []
        for router in [r for r in names if r in set(frame["router"])]:
            md = [router]
            for c in cols:
                for m in metrics:
                    hit = frame[(frame["router"] == router) & (frame["dataset"] == c) & (frame["metric"] == m)]
                    if hit.empty:
                        md.append(MISSING)
                        continue
                    h = hit.iloc[0]
                    md.append(fmt_diff(h["diff"], h["low"], h["high"], h["p"], bool(h["significant"])))
            md_rows.append(md)
        name = "Holm" if correction == "holm" else "Benjamini-Hochberg"
        heading = (
            f"**Paired difference {mode_a} - {mode_b}** ({describe(GROUP_FIELDS, key)}; 95% intervals; "
            f"* : adjusted p < {alpha:g}, {name} over the {len(frame)} cells of this table)"
        )
        out.append(Table(kind, f"{mode_a} - {mode_b}", describe(GROUP_FIELDS, key), frame,
                         heading + "\n\n" + md_table(header, md_rows)))
    return out


# ---------------------------------------------------------- budget and learning curves
def _arm_label(mode: str, protocol: str) -> str:
    return mode if protocol == "full" else f"{mode} {protocol}"


def curve_tables(
    df: pd.DataFrame, kind: str, metrics: tuple[str, ...], report: Report
) -> tuple[list[Table], list[dict[str, Any]]]:
    """Budget (``kind="budget"``: runs with a generation budget, one line per supervision arm
    mode x protocol, x = budget per model) or learning-curve tables (``kind="learning_curve"``:
    runs on the first n training queries, one line per mode, x = n), per cost setting, dataset
    and router; one table per metric, cells aggregated over seeds like every other cell.
    Returns the tables and the plot series ``{label: (x, mean, low, high)}`` of each."""
    prefix = "B=" if kind == "budget" else "n="
    sub = df[df["train"].str.startswith(prefix)]
    if sub.empty:
        return [], []
    sub = sub.assign(
        x=sub["train"].str[len(prefix):].astype(int),
        line=[_arm_label(m, p) if kind == "budget" else m for m, p in zip(sub["mode"], sub["protocol"])],
    )
    fields = ("lam", "beta", "norm") if kind == "budget" else ("lam", "beta", "norm", "protocol")
    xname = "budget (generations per model)" if kind == "budget" else "training queries"
    row_key = "arm" if kind == "budget" else "supervision"
    tables, plots = [], []
    for key, g in groups(sub, fields):
        setting = describe(fields, key)
        for col in columns(g):
            for router in ordered(g[g["column"] == col]["router"], ROUTER_ORDER):
                rs = g[(g["column"] == col) & (g["router"] == router)]
                xs = sorted(set(rs["x"]))
                lines = ordered(rs["line"], tuple(_arm_label(m, p) for m in MODE_ORDER for p in PROTOCOL_ORDER))
                for m in metrics:
                    if m not in rs or rs[m].isna().all():
                        continue
                    frame_rows, md_rows, series = [], [], {}
                    for line in lines:
                        frow: dict[str, Any] = {"setting": setting, "dataset": col, "router": router,
                                                "metric": m, row_key: line}
                        md = [line]
                        pts = []
                        for x in xs:
                            cs = rs[(rs["line"] == line) & (rs["x"] == x)]
                            c = cell(cs, m)
                            if c is None:
                                report.missing.append(f"{kind} [{setting}] {col} {router}: {line} has no run at {x}")
                            frow[f"{x}"] = np.nan if c is None else c["mean"]
                            frow[f"{x} low"] = np.nan if c is None else c["low"]
                            frow[f"{x} high"] = np.nan if c is None else c["high"]
                            frow[f"{x} runs"] = 0 if c is None else c["runs"]
                            if kind == "budget" and not cs.empty:
                                frow[f"{x} generations"] = float(cs["generations"].iloc[0])
                                frow[f"{x} queries"] = int(cs["train_queries"].iloc[0])
                            md.append(fmt_cell(c))
                            pts.append((x, np.nan, np.nan, np.nan) if c is None else (x, c["mean"], c["low"], c["high"]))
                        frame_rows.append(frow)
                        md_rows.append(md)
                        series[line] = tuple(np.array(v, dtype=float) for v in zip(*pts))
                    title = f"{'Equal budget' if kind == 'budget' else 'Learning curve'}: {m}, {router} on {col}"
                    header = [row_key] + [f"{prefix}{x}" for x in xs]
                    text = f"**{title}** ({setting})\n\n" + md_table(header, md_rows)
                    tables.append(Table(kind, title, setting, pd.DataFrame(frame_rows), text))
                    plots.append({"key": key, "column": col, "router": router, "metric": m,
                                  "series": series, "title": title, "xlabel": xname, "setting": setting})
    return tables, plots


def budget_comparisons(
    df: pd.DataFrame, results: list[dict[str, Any]], report: Report, *, metric: str = "tU",
    reference: str = "single_shot", correction: str = "holm", alpha: float = 0.05,
    resamples_n: int | None = None,
) -> list[Table]:
    """At each budget: every arm minus the ``reference`` arm on ``metric``, paired over the same
    test queries (and the reference's draws), per cost setting, dataset and router; the
    correction runs over every cell of the table (arms x budgets)."""
    sub = df[df["train"].str.startswith("B=")]
    if sub.empty or metric not in sub:
        return []
    sub = sub.assign(x=sub["train"].str[2:].astype(int),
                     line=[_arm_label(m, p) for m, p in zip(sub["mode"], sub["protocol"])])
    fields = ("lam", "beta", "norm")
    out = []
    cache: dict[int, tuple[np.ndarray, dict[str, np.ndarray]]] = {}
    for key, g in groups(sub, fields):
        setting = describe(fields, key)
        for col in columns(g):
            for router in ordered(g[g["column"] == col]["router"], ROUTER_ORDER):
                rs = g[(g["column"] == col) & (g["router"] == router)]
                xs = sorted(set(rs["x"]))
                lines = [ln for ln in ordered(rs["line"], ()) if ln != reference]
                rows = []
                for line in lines:
                    for x in xs:
                        at = rs[rs["x"] == x]
                        pairs = _pair_runs(at[at["line"] == line], at[at["line"] == reference])
                        r = paired_comparison(results, pairs, metric, cache, resamples_n) if pairs else None
                        if r is not None:
                            rows.append({"setting": setting, "dataset": col, "router": router, "metric": metric,
                                         "arm": line, "budget": x, "reference": reference, **r})
                if not rows:
                    continue
                frame = pd.DataFrame(rows)
                frame["p_adjusted"] = U.CORRECTIONS[correction](frame["p"].to_numpy(float))
                frame["significant"] = frame["p_adjusted"] < alpha
                frame["correction"] = correction
                note = holm_floor_note(frame, _resamples(results, rs, resamples_n), correction, alpha)
                if note:
                    report.notes.append(f"budget, {router} on {col} [{setting}]: {note}")
                md_rows = []
                for line in lines:
                    md = [line]
                    for x in xs:
                        hit = frame[(frame["arm"] == line) & (frame["budget"] == x)]
                        md.append(MISSING if hit.empty else fmt_diff(
                            hit["diff"].iloc[0], hit["low"].iloc[0], hit["high"].iloc[0], hit["p"].iloc[0],
                            bool(hit["significant"].iloc[0])))
                    md_rows.append(md)
                name = "Holm" if correction == "holm" else "Benjamini-Hochberg"
                title = f"Equal budget, paired: {metric} of each arm minus {reference}, {router} on {col}"
                text = (f"**{title}** ({setting}; * : adjusted p < {alpha:g}, {name} over the "
                        f"{len(frame)} cells)\n\n" + md_table(["arm"] + [f"B={x}" for x in xs], md_rows))
                out.append(Table("budget_diff", title, setting, frame, text))
    return out
