"""Independent audit of darsbench cells and sweeps: recompute the reported numbers from each
cell's own files (results.json config, decisions file, the dataset's raw dense arrays and truth)
with numpy/scipy and the short code below, never the project's evaluators, and compare.

    python bench/audit_results.py <cell or sweep dir>... [--all] [--tol 1e-9]

Checks: cost normalisation; per-query values in the decisions file; rU/rQ/rC/dU/dQ/dC,
chosen_decoding_instability, tU/tQ/t_best (simulated data), gap_rU/gap_dU (mean, std over draws,
per draw); oracle / best_fixed / random / cheapest / largest; every 95% bootstrap interval (same
seed and resamples); the paired differences, p-values and Holm / BH adjustment of a sweep's
leaderboard/*_diff.csv; the training generations per model of experiment=budget cells. Exit 1 on
any difference above --tol. What each check recomputes: README "Independent audit".
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

TIE = 1e-12  # docs/spec.md §3: utilities (and then costs) within 1e-12 are ties


# ------------------------------------------------------------------ small independent helpers
def argbest(u: np.ndarray, c: np.ndarray) -> np.ndarray:
    """argmax of u over the last axis; ties (1e-12) to the lower c, then the first model."""
    u = np.where(np.isnan(u), -np.inf, u)
    tied = u >= u.max(axis=-1, keepdims=True) - TIE
    c = np.where(tied & ~np.isnan(c), c, np.inf)
    return np.argmax(tied & (c <= c.min(axis=-1, keepdims=True) + TIE), axis=-1)


def nanmean(x: np.ndarray, axis) -> np.ndarray:
    ok = np.isfinite(x)
    n = ok.sum(axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, np.where(ok, x, 0.0).sum(axis=axis) / n, np.nan)


def draw_summary(per_draw: np.ndarray) -> tuple[float, float]:
    """Mean and sample std (ddof 1; 0 with one draw) over draws."""
    return float(per_draw.mean()), float(per_draw.std(ddof=1)) if per_draw.size > 1 else 0.0


def counts(rng: np.random.Generator, n: int, b: int) -> np.ndarray:
    return rng.multinomial(n, np.full(n, 1.0 / n), size=b).astype(float)


def replicate_means(v: np.ndarray, wq: np.ndarray, wd: np.ndarray) -> np.ndarray:
    """[B] replicates: per draw the weighted mean over resampled queries (NaN left out), then the
    weighted mean over resampled draws (docs/analyses.md §6)."""
    v = np.atleast_2d(v)
    ok = np.isfinite(v)
    num = np.einsum("bq,dq->db", wq, np.where(ok, v, 0.0))
    den = np.einsum("bq,dq->db", wq, ok.astype(float))
    with np.errstate(invalid="ignore", divide="ignore"):
        m = num / den  # [D, B]
    return combine(m, wd)


def combine(m: np.ndarray, wd: np.ndarray) -> np.ndarray:
    if m.shape[0] == 1:
        return m[0]
    ok = np.isfinite(m)
    w = wd.T * ok
    with np.errstate(invalid="ignore", divide="ignore"):
        return (np.where(ok, m, 0.0) * w).sum(axis=0) / w.sum(axis=0)


def pct(reps: np.ndarray) -> list[float]:
    reps = reps[np.isfinite(reps)]
    return [float(x) for x in np.percentile(reps, [2.5, 97.5])] if reps.size else [np.nan, np.nan]


def point(v: np.ndarray) -> float:
    per_draw = nanmean(np.atleast_2d(v), axis=1)
    return float(np.nanmean(per_draw))


def hull_aiq(c: np.ndarray, q: np.ndarray, hi: float) -> float:
    """AIQ on [0, hi] (docs/spec.md §6): the non-decreasing concave upper hull of the finite
    points (monotone chain after cutting at the cheapest top-quality point), flat beyond its last
    vertex, 0 below its first, trapezoid area / hi; hi <= 0: the best quality."""
    ok = np.isfinite(c) & np.isfinite(q)
    c, q = c[ok], q[ok]
    if not c.size:
        return np.nan
    if hi <= 0:
        return float(q.max())
    pts = sorted(zip(c.tolist(), (-q).tolist()))
    xs, ys = [], []
    for x, y in pts:
        if xs and x == xs[-1]:
            continue
        xs.append(x)
        ys.append(-y)
    top = int(np.argmax(ys))
    h: list[tuple[float, float]] = []
    for p in zip(xs[: top + 1], ys[: top + 1]):
        while len(h) >= 2 and ((h[-1][0] - h[-2][0]) * (p[1] - h[-2][1])
                               - (h[-1][1] - h[-2][1]) * (p[0] - h[-2][0])) >= 0:
            h.pop()
        h.append(p)
    hc, hq = np.array(h).T
    a = max(0.0, hc[0])
    if a >= hi:
        return 0.0
    x = np.concatenate([[a], hc[(hc > a) & (hc < hi)], [hi]])
    y = np.interp(x, hc, hq)
    return float(np.sum(np.diff(x) * (y[1:] + y[:-1]) / 2) / hi)


def holm(p: np.ndarray) -> np.ndarray:
    out = np.full(p.shape, np.nan)
    idx = [i for i in np.argsort(p, kind="stable") if np.isfinite(p[i])]
    m, run = len(idx), 0.0
    for rank, i in enumerate(idx):
        run = max(run, (m - rank) * p[i])
        out[i] = min(run, 1.0)
    return out


def bh(p: np.ndarray) -> np.ndarray:
    out = np.full(p.shape, np.nan)
    idx = [i for i in np.argsort(p, kind="stable") if np.isfinite(p[i])]
    m, run = len(idx), 1.0
    for rank in range(m - 1, -1, -1):
        run = min(run, p[idx[rank]] * m / (rank + 1))
        out[idx[rank]] = min(run, 1.0)
    return out


# ----------------------------------------------------------------------------- the audit
class Audit:
    def __init__(self, tol: float):
        self.tol, self.rows = tol, []

    def cmp(self, where: str, what: str, mine, recorded) -> None:
        a, b = np.asarray(mine, dtype=float).ravel(), np.asarray(recorded, dtype=float).ravel()
        if a.shape != b.shape:
            self.rows.append((where, what, float("nan"), float("nan"), float("inf")))
            return
        both_nan = np.isnan(a) & np.isnan(b)
        d = np.where(both_nan, 0.0, np.abs(a - b))
        d = np.where(np.isnan(d), np.inf, d)
        i = int(np.argmax(d)) if d.size else 0
        self.rows.append((where, what, a[i] if a.size else np.nan, b[i] if b.size else np.nan,
                          float(d.max()) if d.size else 0.0))

    def fail(self, where: str, what: str) -> None:
        self.rows.append((where, what, np.nan, np.nan, float("inf")))


def load_raw(cfg: dict):
    """The cell's dataset with raw costs, through its config's source (data stage only)."""
    d = dict(cfg["dataset"])
    mod, cls = d.pop("_target_").rsplit(".", 1)
    return getattr(importlib.import_module(mod), cls)(**d).load(cfg.get("cache_dir"))


def read_decisions(folder: Path) -> pd.DataFrame:
    for name in ("decisions.parquet", "decisions.csv"):
        if (folder / name).is_file():
            f = folder / name
            return pd.read_parquet(f) if f.suffix == ".parquet" else pd.read_csv(f)
    raise FileNotFoundError(f"{folder}: no decisions file")


def audit_cell(folder: Path, au: Audit, store: dict) -> None:
    res = json.loads((folder / "results.json").read_text())
    res["_folder"] = str(folder)
    cfg = res["config"]
    where = f"{folder.name.split('_', 1)[0]}: {res['router']} {res['supervision']} {res['dataset']['name']}"
    lam, beta, norm = float(res["cost"]["lam"]), float(res["cost"]["beta"]), res["cost"]["norm"]
    data = load_raw(cfg)
    if data.source.get("content_hash") != res["dataset"]["content_hash"]:
        au.fail(where, "dataset content hash differs from the recorded one")
        return
    models = list(res["dataset"]["models"])
    if list(data.models) != models:
        au.fail(where, "pool order")
        return

    # cost normalisation over train + both test views (docs/spec.md §3)
    blocks = (data.train, data.test_rewrite, data.test_decoding)
    allc = np.concatenate([b.cost[b.present] for b in blocks])
    lo, hi = allc.min(), allc.max()
    off, scale = {"minmax": (lo, hi - lo if hi > lo else 1.0), "max": (0.0, hi if hi > 0 else 1.0),
                  "none": (0.0, 1.0)}[norm]
    cs = res["dataset"]["cost_scale"]
    au.cmp(where, "cost_scale offset/scale", [off, scale], [cs["offset"], cs["scale"]])

    def view(b):
        p = b.present
        q = np.where(p, b.score, np.nan)
        c = np.where(p, (b.cost - off) / scale, np.nan)
        return nanmean(q.reshape(*q.shape[:2], -1), 2), nanmean(c.reshape(*c.shape[:2], -1), 2)

    views = {"r": view(data.test_rewrite), "d": view(data.test_decoding)}
    dq = np.where(data.test_decoding.present, data.test_decoding.score, np.nan)
    dq = dq.reshape(*dq.shape[:2], -1)
    n_dec = np.isfinite(dq).sum(axis=2)
    with np.errstate(invalid="ignore"):
        spread = np.where(n_dec > 1, np.nanstd(dq, axis=2, ddof=1), np.where(n_dec == 1, 0.0, np.nan))

    # the router's choices, [D, Q] in the data's test-query order
    dec = read_decisions(folder)
    ids = data.test_queries["query_id"].astype(str).to_numpy()
    n_draws = int(dec["draw"].max()) + 1
    dec = dec.sort_values("draw", kind="stable")
    if (dec["query_id"].astype(str).to_numpy().reshape(n_draws, -1) != ids).any():
        au.fail(where, "decisions query order differs from the data's")
        return
    ch = pd.Categorical(dec["chosen"], categories=models).codes.reshape(n_draws, -1)
    if (ch < 0).any():
        au.fail(where, "decisions name a model outside the pool")
        return
    qi = np.arange(ids.size)

    def policy(choice):  # per-query values of a policy [..., Q]
        out = {}
        for p, (q, c) in views.items():
            out[p + "U"], out[p + "Q"], out[p + "C"] = (q - lam * c)[qi, choice], q[qi, choice], c[qi, choice]
        out["chosen_decoding_instability"] = spread[qi, choice]
        if truth is not None:
            out["tU"], out["tQ"] = tu[qi, choice], truth.mu_q[qi, choice]
            out["t_best"] = (choice == tbest).astype(float)
        return out

    truth = data.test_truth
    if truth is not None:
        tmc = (truth.mu_c - off) / scale
        tu = truth.mu_q - lam * tmc - beta * truth.sigma_q
        tbest = argbest(tu, tmc)
    mine = policy(ch)
    for k, v in mine.items():
        if k in dec:
            au.cmp(where, f"decisions column {k}", v.ravel(), dec[k].to_numpy(float))

    # baselines, on each view's own means (docs/spec.md §5)
    base: dict[str, dict[str, np.ndarray]] = {"oracle": {}, "best_fixed": {}, "random": {}}
    for p, (q, c) in views.items():
        u = q - lam * c
        orc = argbest(u, c)
        bf = int(argbest(nanmean(u, 0), nanmean(c, 0)))
        au.cmp(where, f"best_fixed {p}_model", models.index(res["baselines"]["best_fixed"][p + "_model"]), bf)
        for k, arr in (("U", u), ("Q", q), ("C", c)):
            base["oracle"][p + k] = arr[qi, orc]
            base["best_fixed"][p + k] = arr[qi, bf]
            base["random"][p + k] = nanmean(arr, 1)
    tr = np.where(data.train.present, (data.train.cost - off) / scale, np.nan)
    mean_train_c = nanmean(nanmean(tr.reshape(*tr.shape[:2], -1), 2), 0)  # over queries of pair means
    cheapest = int(np.flatnonzero(mean_train_c <= mean_train_c.min() + TIE)[0])
    sizes = data.model_table["params_b"].to_numpy(float) if "params_b" in data.model_table else None
    largest = (int(np.argmax(sizes)) if sizes is not None and np.isfinite(sizes).all()
               else int(np.flatnonzero(mean_train_c >= mean_train_c.max() - TIE)[0]))
    for name, m in (("cheapest", cheapest), ("largest", largest)):
        au.cmp(where, f"{name} model", models.index(res["baselines"][name]["model"]), m)
        base[name] = policy(np.full(ids.size, m))
    if truth is not None:
        base["oracle"].update(tU=tu[qi, tbest], tQ=truth.mu_q[qi, tbest], t_best=np.ones(ids.size))
        tf = int(argbest(tu.mean(0), tmc.mean(0)))
        base["best_fixed"].update(tU=tu[:, tf], tQ=truth.mu_q[:, tf], t_best=(tbest == tf).astype(float))
        base["random"].update(tU=tu.mean(1), tQ=truth.mu_q.mean(1))

    # point values
    per_draw = {k: nanmean(v, 1) for k, v in mine.items()}
    for p in ("r", "d"):
        bfv, orv = nanmean(base["best_fixed"][p + "U"], 0), nanmean(base["oracle"][p + "U"], 0)
        per_draw["gap_" + p + "U"] = (per_draw[p + "U"] - bfv) / (orv - bfv)
    for k, rec in res["metrics"].items():
        if k not in per_draw:
            au.fail(where, f"metric {k} has no independent recomputation")
            continue
        m, s = draw_summary(per_draw[k])
        au.cmp(where, f"{k} mean", m, rec["mean"])
        au.cmp(where, f"{k} std", s, rec["std"])
        if res.get("per_draw"):
            au.cmp(where, f"{k} per_draw", per_draw[k], res["per_draw"][k])
    for name, vals in base.items():
        for k, v in vals.items():
            if k in res["baselines"][name]:
                au.cmp(where, f"{name} {k}", nanmean(v, 0), res["baselines"][name][k])

    # bootstrap intervals: the same seed and resample count as recorded
    boot = res["bootstrap"]
    rng = np.random.default_rng(int(boot["seed"]))
    wq = counts(rng, ids.size, int(boot["resamples"]))
    wd = counts(rng, n_draws, int(boot["resamples"])) if n_draws > 1 else np.ones((wq.shape[0], 1))
    for k, rec in res["metrics"].items():
        if k.startswith("gap_"):
            p = k[4]
            bfr = replicate_means(base["best_fixed"][p + "U"], wq, wd)
            orr = replicate_means(base["oracle"][p + "U"], wq, wd)
            v = np.atleast_2d(mine[p + "U"])
            ok = np.isfinite(v)
            m = (np.einsum("bq,dq->db", wq, np.where(ok, v, 0.0)) / np.einsum("bq,dq->db", wq, ok * 1.0))
            with np.errstate(invalid="ignore", divide="ignore"):
                gap = np.where(np.abs(orr - bfr) < 1e-15, np.nan, (m - bfr) / (orr - bfr))
            reps = combine(gap, wd)
        else:
            reps = replicate_means(mine[k], wq, wd)
        au.cmp(where, f"{k} ci", pct(reps), rec["ci"])
    for name, vals in base.items():
        for k, v in vals.items():
            if k in res["baselines"][name].get("ci", {}):
                au.cmp(where, f"{name} {k} ci", pct(replicate_means(v, wq, np.ones((wq.shape[0], 1)))),
                       res["baselines"][name]["ci"][k])

    # routing from the decisions' predicted signals, the lambda sweep and AIQ (signal routers)
    mode = res["supervision"]
    beta_eff = 0.0 if mode in ("single_shot", "dars_no_risk") else beta
    au.cmp(where, "beta_effective", beta_eff, res["cost"]["beta_effective"])
    if all(f"mu_q[{m}]" in dec for m in models):
        sig = {k: dec[[f"{k}[{m}]" for m in models]].to_numpy(float).reshape(n_draws, ids.size, -1)
               for k in ("mu_q", "mu_c", "sigma_q")}

        def route(lm: float) -> np.ndarray:
            return argbest(sig["mu_q"] - lm * sig["mu_c"] - beta_eff * sig["sigma_q"], sig["mu_c"])

        au.cmp(where, "chosen = argmax of the decisions' signals", route(lam), ch)
        if res.get("frontier"):
            audit_frontier(where, res, au, route, views, qi, wq, wd)

    # training generations actually used (experiment=budget / learning_curve cells)
    t = res["training"]
    pr = res["protocol"]
    pres = data.train.present[:, :, : pr["n_rewrites"] or None, : pr["n_decodes"] or None]
    if mode == "input_only":
        pres = pres[:, :, data.train.view_ids[: pres.shape[2]] >= 0, :1]
    elif mode == "output_only":
        vi = data.train.view_ids[: pres.shape[2]]
        pres = pres[:, :, [int(np.flatnonzero(vi < 0)[0]) if (vi < 0).any() else int(np.flatnonzero(vi >= 0)[0])]]
    per_pair = pres.sum(axis=(2, 3))
    g = 1 if mode == "single_shot" else int(per_pair.max())
    n = t["n_queries"]
    if t.get("budget_per_model") is not None:
        au.cmp(where, "training queries = B / generations per pair", t["budget_per_model"] / g, n)
    used = (per_pair[:n] > 0) if mode == "single_shot" else per_pair[:n]
    by_model = used.sum(axis=0)
    au.cmp(where, "training generations total", by_model.sum(), t["generations"]["total"])
    if t.get("budget_per_model") is not None:
        au.cmp(where, "training generations of every model = B", by_model,
               np.full(len(models), t["budget_per_model"]))
    store[folder.resolve()] = {"res": res, "values": mine, "n_draws": n_draws, "by_model": by_model}


def audit_frontier(where, res, au, route, views, qi, wq, wd) -> None:
    """Lambda-sweep points re-routed from the decisions' signals, AIQ of the router and of the
    fixed models on [0, hi] per view, and their bootstrap intervals (same resamples)."""
    fr = res["frontier"]
    chl = np.stack([route(float(lm)) for lm in fr["lams"]])  # [L, D, Q]
    pts, reps = {}, {}
    models = list(res["dataset"]["models"])
    ones = np.ones((wq.shape[0], 1))
    for p, (q, c) in views.items():
        qs, cs = q[qi, chl], c[qi, chl]
        bad = ~(np.isfinite(qs) & np.isfinite(cs))
        qs, cs = np.where(bad, np.nan, qs), np.where(bad, np.nan, cs)
        pts[p] = (nanmean(cs, 2).mean(axis=1), nanmean(qs, 2).mean(axis=1),
                  nanmean(c, 0), nanmean(q, 0))
        au.cmp(where, f"frontier {p}C", pts[p][0], fr[p + "C"])
        au.cmp(where, f"frontier {p}Q", pts[p][1], fr[p + "Q"])
        au.cmp(where, f"fixed_models {p}C/{p}Q", np.r_[pts[p][2], pts[p][3]],
               [res["baselines"]["fixed_models"][m][p + k] for k in "CQ" for m in models])
        reps[p] = (np.stack([replicate_means(x, wq, wd) for x in cs]),
                   np.stack([replicate_means(x, wq, wd) for x in qs]),
                   np.stack([replicate_means(c[:, j], wq, ones) for j in range(len(models))]),
                   np.stack([replicate_means(q[:, j], wq, ones) for j in range(len(models))]))
    npz = Path(res["_folder"]) / "frontier_bootstrap.npz"
    if npz.is_file():  # the stored replicates the leaderboard re-scores AIQ differences from
        with np.load(npz) as z:
            for p in ("r", "d"):
                for k, mine in zip(("C", "Q", "fixed_C", "fixed_Q"), reps[p]):
                    key = k.replace("fixed_", "fixed_" + p) if k.startswith("fixed") else p + k
                    au.cmp(where, f"frontier_bootstrap.npz {key}", mine, z[key])
    pts["mean"] = tuple((a + b) / 2 for a, b in zip(pts["r"], pts["d"]))
    reps["mean"] = tuple((a + b) / 2 for a, b in zip(reps["r"], reps["d"]))

    def score(rc, rq, fc, fq):
        hi = max(np.nanmax(rc), np.nanmax(fc))
        return hull_aiq(rc, rq, hi), hull_aiq(fc, fq, hi), hi

    for view, rec in fr["aiq"].items():
        r_aiq, f_aiq, hi = score(*pts[view])
        au.cmp(where, f"AIQ {view} router / fixed / hi", [r_aiq, f_aiq, hi],
               [rec["aiq"], rec["fixed_aiq"], rec["cost_range"][1]])
        rc, rq, fc, fq = reps[view]
        boot = np.array([score(rc[:, b], rq[:, b], fc[:, b], fq[:, b])[:2] for b in range(rc.shape[1])])
        au.cmp(where, f"AIQ {view} ci", pct(boot[:, 0]), rec["ci"])
        au.cmp(where, f"AIQ {view} fixed ci", pct(boot[:, 1]), rec["fixed_ci"])


# ------------------------------------------------------------------- paired comparisons
def protocol_label(p: dict) -> str:
    nr, nd = p.get("n_rewrites"), p.get("n_decodes")
    return "full" if nr is None and nd is None else f"{'all' if nr is None else nr}x{'all' if nd is None else nd}"


def setting_of(res: dict) -> dict[str, str]:
    t = res["training"]
    train = (f"B={t['budget_per_model']}" if t.get("budget_per_model") is not None else
             f"n={t['n_queries_asked']}" if t.get("n_queries_asked") is not None else "all")
    c = res["cost"]
    return {"lambda": str(float(c["lam"])), "beta": str(float(c["beta"])), "cost norm": str(c["norm"]),
            "protocol": protocol_label(res["protocol"]), "training set": train}


def paired(a: np.ndarray, b: np.ndarray, resamples: int, seed: int) -> dict[str, float]:
    a, b = np.atleast_2d(a), np.atleast_2d(b)
    rng = np.random.default_rng(seed)
    wq = counts(rng, a.shape[1], resamples)
    ones = np.ones((resamples, 1))
    wa = counts(rng, a.shape[0], resamples) if a.shape[0] > 1 else ones
    wb = wa if b.shape[0] == a.shape[0] else (counts(rng, b.shape[0], resamples) if b.shape[0] > 1 else ones)
    reps = replicate_means(a, wq, wa) - replicate_means(b, wq, wb)
    lo, hi = pct(reps)
    r = reps[np.isfinite(reps)]
    p = min(1.0, 2 * min((1 + (r <= 0).sum()) / (r.size + 1), (1 + (r >= 0).sum()) / (r.size + 1)))
    return {"diff": point(a) - point(b), "low": lo, "high": hi, "p": p}


def audit_diffs(sweep: Path, cells: list[dict], au: Audit) -> None:
    for csv in sorted((sweep / "leaderboard").glob("*_diff.csv")):
        if csv.name.startswith("frontier"):
            continue  # AIQ replicates: not re-derived here
        frame = pd.read_csv(csv, comment="#")
        if frame.empty:
            continue
        budget = "arm" in frame
        mine = []
        for _, row in frame.iterrows():
            want = dict(kv.split("=", 1) for kv in str(row["setting"]).split(", "))
            name, _, h = str(row["dataset"]).partition("@")

            def match(c, arm):
                r = c["res"]
                s = setting_of(r)
                label = r["supervision"] if s["protocol"] == "full" else f"{r['supervision']} {s['protocol']}"
                return (r["router"] == row["router"] and r["dataset"]["name"] == name
                        and str(r["dataset"]["content_hash"]).startswith(h)
                        and all(s.get(k, v) == v for k, v in want.items())
                        and (label == arm if budget else r["supervision"] == arm)
                        and (not budget or s["training set"] == f"B={row['budget']}"))

            arm_a, arm_b = (row["arm"], row["reference"]) if budget else (row["a"], row["b"])
            A = [c for c in cells if match(c, arm_a)]
            B = {(c["res"]["seed"], c["res"]["dataset"]["content_hash"]): c for c in cells if match(c, arm_b)}
            pairs = [(a, B[k]) for a in A if (k := (a["res"]["seed"], a["res"]["dataset"]["content_hash"])) in B]
            where = f"{csv.name}: {row['router']} {row['dataset']} {row['metric']} {arm_a}-{arm_b}"
            if budget:
                where += f" B={row['budget']}"
            if len(pairs) != int(row["pairs"]):
                au.fail(where, f"{len(pairs)} matched run pairs, recorded {row['pairs']}")
                mine.append(np.nan)
                continue
            m = row["metric"]
            ds = []
            for a, b in pairs:
                bo = a["res"]["bootstrap"]
                ds.append(paired(a["values"][m], b["values"][m], int(bo["resamples"]), int(bo["seed"])))
            if len(ds) == 1:
                r = ds[0]
            else:
                d = np.array([x["diff"] for x in ds])
                half = stats.t.ppf(0.975, d.size - 1) * d.std(ddof=1) / np.sqrt(d.size)
                p = (1.0 if d[0] == 0 else 0.0) if np.all(d == d[0]) else stats.ttest_1samp(d, 0.0).pvalue
                r = {"diff": d.mean(), "low": d.mean() - half, "high": d.mean() + half, "p": p}
            for k in ("diff", "low", "high", "p"):
                au.cmp(where, k, r[k], row[k])
            mine.append(r["p"])
        frame["_p"] = mine
        # one correction family per table: a budget table is one (dataset, router); a comparison
        # file holds one table per compared pair of modes (each heading says "over the N cells")
        fam = ["setting", "dataset", "router"] if budget else ["setting", "a", "b"]
        for key, g in frame.groupby(fam, sort=False):
            adj = (holm if g["correction"].iloc[0] == "holm" else bh)(g["_p"].to_numpy(float))
            label = f"{csv.name} {' / '.join(map(str, key))}"
            au.cmp(label, f"{g['correction'].iloc[0]} adjusted p", adj, g["p_adjusted"].to_numpy(float))
            au.cmp(label, "significant at 0.05", adj < 0.05, g["significant"].astype(bool).to_numpy())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dirs", nargs="+", type=Path, help="cell folders (with results.json) or sweep folders")
    ap.add_argument("--tol", type=float, default=1e-9, help="largest accepted absolute difference")
    ap.add_argument("--all", action="store_true", help="print every compared quantity")
    args = ap.parse_args(argv)
    au, store = Audit(args.tol), {}
    for d in args.dirs:
        found = sorted(p.parent for p in d.rglob("results.json")) if not (d / "results.json").is_file() else [d]
        if not found:
            print(f"{d}: no results.json", file=sys.stderr)
            return 2
        for cell in found:
            try:
                audit_cell(cell, au, store)
            except Exception as exc:  # an audit that cannot recompute a cell fails it, by name
                au.fail(cell.name[:60], f"cannot recompute: {type(exc).__name__}: {exc}")
        if (d / "leaderboard").is_dir():
            audit_diffs(d, [store[c.resolve()] for c in found if c.resolve() in store], au)
    rows = pd.DataFrame(au.rows, columns=["where", "quantity", "recomputed", "recorded", "abs_diff"])
    headline = rows["quantity"].str.contains(r"^(?:rU|dU|tU) (?:mean|ci)$|^(?:oracle|best_fixed|random) (?:rU|tU)$"
                                          r"|^(?:diff|p)$|adjusted|generations")
    show = rows if args.all else rows[headline | (rows["abs_diff"] > args.tol)]
    with pd.option_context("display.max_rows", None, "display.width", 200, "display.max_colwidth", 70):
        print(show.to_string(index=False, float_format=lambda x: f"{x:.10g}"))
    bad = rows[rows["abs_diff"] > args.tol]
    n_cells = len(store)
    print(f"\naudited {n_cells} cell(s), {len(rows)} comparisons; max |recomputed - recorded| = "
          f"{rows['abs_diff'].max():.3g}; {len(bad)} above {args.tol:g}")
    return 1 if len(bad) else 0


if __name__ == "__main__":
    sys.exit(main())
