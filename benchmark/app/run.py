"""One benchmark cell: dataset x features x router x supervision x cost setting.

:func:`run_cell` is the whole job behind ``darsbench``: load and normalise the data, build the
supervision targets, compute (cached) features, fit the router, route the test queries, evaluate
on both held-out views next to the baselines, re-route under the lambda grid for the
cost-quality frontier, and write ``results.json`` plus the per-query decisions, atomically.
"""

from __future__ import annotations

import platform
import sys
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmark.data.dataset import DarsDataset, apply_protocol, normalise_costs
from benchmark.data.io import atomic_write_frame, atomic_write_json
from benchmark.features import compute_features
from evaluators import metrics as M
from evaluators.frontier import route_sweep, sweep_points
from supervision.modes import make_targets

RESULTS_SCHEMA = "darsbench.results/1"


@dataclass
class CellSpec:
    """Everything one cell needs, already instantiated from the config."""

    source: Any
    featurizer: Any
    router: Any
    router_name: str
    mode: str
    n_draws: int
    lam: float
    beta: float
    cost_norm: str
    seed: int
    n_rewrites: int | None = None
    n_decodes: int | None = None
    frontier_lams: list[float] = field(default_factory=list)
    cache_dir: Path | None = None
    decisions_format: str = "parquet"


def package_versions() -> dict[str, str]:
    names = [
        "darsbench", "numpy", "scipy", "pandas", "scikit-learn", "torch", "lightning",
        "torch-geometric", "hydra-core", "omegaconf", "sentence-transformers",
    ]
    out = {"python": sys.version.split()[0], "platform": platform.platform()}
    for n in names:
        try:
            out[n] = metadata.version(n)
        except metadata.PackageNotFoundError:
            continue
    return out


def _summary(values: np.ndarray) -> dict[str, Any]:
    """Mean and std (ddof=0) over draws; a deterministic mode has one 'draw'."""
    v = np.atleast_1d(np.asarray(values, dtype=float))
    return {"mean": float(np.mean(v)), "std": float(np.std(v)), "n": int(v.size)}


def evaluate_policy(
    data: DarsDataset,
    stats: dict[str, M.ViewStats],
    choices: np.ndarray,
    lam: float,
    beta: float,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Metrics ``rU, rQ, rC, dU, dQ, dC`` (+ ``tU, tQ, t_best`` on simulated data) and shares."""
    values: dict[str, np.ndarray] = {}
    shares: dict[str, np.ndarray] = {}
    for prefix, vs in stats.items():
        res = M.evaluate_choices(vs, choices, lam)
        for k in M.VIEW_METRICS:
            values[prefix + k] = res[k]
        shares[prefix] = res["share"]
    if data.test_truth is not None:
        values.update(M.true_utility(data.test_truth, choices, lam, beta))
    return values, shares


def baseline_results(
    data: DarsDataset, stats: dict[str, M.ViewStats], lam: float, beta: float
) -> dict[str, dict[str, Any]]:
    """oracle, best_fixed, random, cheapest and largest on every view (SPEC §5)."""
    models = list(data.models)
    out: dict[str, dict[str, Any]] = {}
    per_view: dict[str, dict[str, dict]] = {"oracle": {}, "best_fixed": {}, "random": {}}
    for prefix, vs in stats.items():
        orc = M.evaluate_choices(vs, M.oracle_choices(vs, lam), lam)
        bf_model = M.best_fixed_choice(vs, lam)
        bf = M.evaluate_choices(vs, np.full(vs.q.shape[0], bf_model), lam)
        rnd = M.random_metrics(vs, lam)
        for name, res in (("oracle", orc), ("best_fixed", bf), ("random", rnd)):
            for k in M.VIEW_METRICS:
                per_view[name][prefix + k] = float(res[k])
            per_view[name][prefix + "_share"] = dict(zip(models, map(float, res["share"])))
        per_view["best_fixed"][prefix + "_model"] = models[bf_model]
    out.update(per_view)
    # Every fixed model's (quality, cost) on each view: the reference points of the frontier.
    # One vectorised pass: policy j routes every query to model j.
    n_test = data.test_queries.shape[0]
    every_model = np.repeat(np.arange(len(models))[:, None], n_test, axis=1)  # [M, Q]
    fixed_models: dict[str, dict[str, float]] = {m: {} for m in models}
    for prefix, vs in stats.items():
        res = M.evaluate_choices(vs, every_model, lam)
        for k in M.VIEW_METRICS:
            for j, m in enumerate(models):
                fixed_models[m][prefix + k] = float(res[k][j])
    out["fixed_models"] = fixed_models
    # cheapest / largest are properties of the data, not of the supervision mode, protocol or
    # seed: mean normalised cost over ALL training observations (the leaderboard shows one
    # baseline row per setting, whichever cell it comes from).
    mu_c_train = M.masked_mean(data.train.cost, data.train.present, (2, 3))
    params = data.model_table["params_b"].to_numpy(float) if "params_b" in data.model_table else None
    for name, m in (
        ("cheapest", M.cheapest_choice(mu_c_train)),
        ("largest", M.largest_choice(params, mu_c_train)),
    ):
        vals, shares = evaluate_policy(data, stats, np.full(n_test, m), lam, beta)
        res = {k: float(v) for k, v in vals.items()}
        res["model"] = models[m]
        out[name] = res
    if data.test_truth is not None:
        truth = data.test_truth
        best = M.true_oracle_choices(truth, lam, beta)
        out["oracle"].update({k: float(v) for k, v in M.true_utility(truth, best, lam, beta).items()})
        u = M.utility(truth.mu_q, truth.mu_c, truth.sigma_q, lam, beta)
        t_fixed = int(M.select_models(u.mean(axis=0), truth.mu_c.mean(axis=0)))
        tf = M.true_utility(truth, np.full(n_test, t_fixed), lam, beta)
        out["best_fixed"].update({k: float(v) for k, v in tf.items()})
        out["best_fixed"]["t_model"] = models[t_fixed]
        out["random"]["tU"] = float(u.mean())
        out["random"]["tQ"] = float(truth.mu_q.mean())
    return out


def frontier_points(
    router: Any,
    X_test: Any,
    signals: Any | None,
    stats: dict[str, M.ViewStats],
    lams: list[float],
    beta: float,
) -> dict[str, Any] | None:
    """Re-route under each lambda without retraining; (cost, quality) per view and lambda.

    Routers that predict the three signals are re-scored from ``signals``; the others are asked
    to route again at each lambda. For single-shot draws the points are averaged over draws.
    """
    if not lams:
        return None
    out: dict[str, Any] = {"lams": [float(x) for x in lams]}
    if signals is not None:
        choices = route_sweep(signals, lams, beta)  # [L, (D,) Q]
    else:
        choices = np.stack([router.route(X_test, lam, beta) for lam in lams])
    for prefix, vs in stats.items():
        cost, qual = sweep_points(choices, vs.q, vs.c)  # [L] or [L, D]
        if cost.ndim == 2:
            cost, qual = cost.mean(axis=1), qual.mean(axis=1)
        out[prefix + "C"] = cost.astype(float).tolist()
        out[prefix + "Q"] = qual.astype(float).tolist()
    return out


def decisions_frame(
    data: DarsDataset,
    choices: np.ndarray,
    signals: Any | None,
    scores: np.ndarray | None = None,
) -> pd.DataFrame:
    """Per-query decisions: query_id, draw, chosen model and predicted signals per model.

    Routers without signals (``rm_softmax``) give their per-model routing ``scores`` instead.
    """
    ch = np.atleast_2d(choices)  # [D, Q]
    n_draws, n_q = ch.shape
    models = np.asarray(data.models)
    cols: dict[str, Any] = {
        "query_id": np.tile(data.test_queries["query_id"].astype(str).to_numpy(), n_draws),
        "draw": np.repeat(np.arange(n_draws), n_q),
        "chosen": models[ch.ravel()],
    }
    if signals is not None:
        for sig_name in ("mu_q", "mu_c", "sigma_q"):
            arr = getattr(signals, sig_name).reshape(n_draws * n_q, -1)
            for j, m in enumerate(models):
                cols[f"{sig_name}[{m}]"] = arr[:, j]
    if scores is not None:
        arr = np.asarray(scores).reshape(n_draws * n_q, -1)
        for j, m in enumerate(models):
            cols[f"score[{m}]"] = arr[:, j]
    return pd.DataFrame(cols)


def run_cell(
    spec: CellSpec, out_dir: Path, config: dict | None = None, *,
    data: DarsDataset | None = None, extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Run one cell and write ``results.json`` + ``decisions.<fmt>`` into ``out_dir``.

    ``data``: the source's dataset when already loaded (raw costs); ``extra``: more top-level
    entries of results.json (the sweep's fingerprint and cell, benchmark/app/sweep.py).
    """
    out_dir = Path(out_dir)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()

    raw = data if data is not None else spec.source.load(spec.cache_dir)
    data = normalise_costs(raw, spec.cost_norm)
    timings["load"] = time.perf_counter() - t0

    t = time.perf_counter()
    train_block = apply_protocol(data.train, spec.n_rewrites, spec.n_decodes)
    targets = make_targets(train_block, spec.mode, n_draws=spec.n_draws, seed=spec.seed)
    beta_eff = targets.effective_beta(spec.beta)
    timings["targets"] = time.perf_counter() - t

    t = time.perf_counter()
    features = compute_features(
        spec.featurizer,
        data.train_queries["text"].tolist(),
        data.test_queries["text"].tolist(),
        cache_dir=spec.cache_dir,
    )
    X_train, X_test = features
    timings["features"] = time.perf_counter() - t

    t = time.perf_counter()
    spec.router.fit(X_train, targets, lam=spec.lam, beta=spec.beta, seed=spec.seed)
    timings["fit"] = time.perf_counter() - t

    t = time.perf_counter()
    signals = spec.router.predict(X_test) if getattr(spec.router, "predicts_signals", True) else None
    choices = signals.select(spec.lam, beta_eff) if signals is not None else spec.router.route(
        X_test, spec.lam, beta_eff
    )
    timings["route"] = time.perf_counter() - t

    t = time.perf_counter()
    stats = {p: M.ViewStats.from_block(b) for p, b in data.test_views.items()}
    values, shares = evaluate_policy(data, stats, choices, spec.lam, spec.beta)
    baselines = baseline_results(data, stats, spec.lam, spec.beta)
    for prefix in stats:
        key = prefix + "U"
        values["gap_" + key] = M.gap_closed(
            values[key], baselines["best_fixed"][key], baselines["oracle"][key]
        )
    frontier = frontier_points(spec.router, X_test, signals, stats, spec.frontier_lams, beta_eff)
    timings["evaluate"] = time.perf_counter() - t

    models = list(data.models)
    metrics = {k: _summary(v) for k, v in values.items()}
    per_draw = {k: np.atleast_1d(v).astype(float).tolist() for k, v in values.items()} if targets.has_draws else None
    share_summary = {
        p: dict(zip(models, np.atleast_2d(s).mean(axis=0).astype(float).tolist()))
        for p, s in shares.items()
    }
    timings["total"] = time.perf_counter() - t0
    results = {
        "schema": RESULTS_SCHEMA,
        "dataset": {
            "name": data.name,
            "models": models,
            "n_train_queries": int(data.train.n_queries),
            "n_test_queries": int(data.test_queries.shape[0]),
            "train_observations": data.train.n_observations,
            "test_observations": {p: b.n_observations for p, b in data.test_views.items()},
            "content_hash": data.source.get("content_hash"),
            "cost_scale": vars(data.cost_scale) if data.cost_scale else None,
            "simulated": data.test_truth is not None,
        },
        "router": spec.router_name,
        "router_params": repr(spec.router),
        "supervision": spec.mode,
        "n_draws": targets.n_draws,
        "protocol": {"n_rewrites": spec.n_rewrites, "n_decodes": spec.n_decodes},
        "cost": {"lam": spec.lam, "beta": spec.beta, "beta_effective": beta_eff, "norm": spec.cost_norm},
        "seed": spec.seed,
        "metrics": metrics,
        "per_draw": per_draw,
        "shares": share_summary,
        "baselines": baselines,
        "frontier": frontier,
        "timings_s": timings,
        # "hit": read from cache_dir (in a sweep, built before the cells started); "computed": encoded here
        "features_cache": "hit" if features.from_cache else "computed",
        "versions": package_versions(),
        "config": config,
        **(extra or {}),
    }
    scores = None
    if signals is None and hasattr(spec.router, "scores"):
        scores = spec.router.scores(X_test, spec.lam)
    decisions = decisions_frame(data, choices, signals, scores)
    fmt = spec.decisions_format
    atomic_write_frame(out_dir / f"decisions.{'parquet' if fmt == 'parquet' else 'csv'}", decisions)
    atomic_write_json(out_dir / "results.json", results)
    return results
