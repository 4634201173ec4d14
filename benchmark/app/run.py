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
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmark.data.dataset import DarsDataset, apply_protocol, normalise_costs
from benchmark.data.io import atomic_write_frame, atomic_write_json, atomic_write_npz
from benchmark.features import compute_features
from evaluators import metrics as M
from evaluators import uncertainty as U
from evaluators.baselines import (
    baseline_per_query, baseline_results, cell_intervals, evaluate_policy, policy_per_query,
)
from evaluators.budget import generations_used, training_queries
from evaluators.frontier import FRONTIER_BOOTSTRAP, frontier_aiq, frontier_points, frontier_replicates
from routers.bundle import QueryEncoder, save_bundle
from routers.summary import training_summary
from supervision.modes import make_targets
from supervision.stats import draw_std

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
    save_router: bool = False
    n_train_queries: int | None = None
    train_budget: int | None = None
    bootstrap_resamples: int = U.RESAMPLES
    bootstrap_seed: int = 0
    sampler: str = "darsbench"
    use_context: bool = True


@lru_cache(maxsize=1)
def _versions() -> tuple[tuple[str, str], ...]:
    """Package versions, read once per process (each lookup scans the installed distributions)."""
    names = [
        "darsbench", "numpy", "scipy", "pandas", "scikit-learn", "torch", "lightning",
        "torch-geometric", "hydra-core", "omegaconf", "sentence-transformers", "onnxruntime",
    ]
    out = {"python": sys.version.split()[0], "platform": platform.platform()}
    for n in names:
        try:
            out[n] = metadata.version(n)
        except metadata.PackageNotFoundError:
            continue
    return tuple(out.items())


def package_versions() -> dict[str, str]:
    return dict(_versions())


def _summary(values: np.ndarray) -> dict[str, Any]:
    """Mean and sample std (ddof=1, :func:`supervision.stats.draw_std`) over draws; a
    deterministic mode has one 'draw' (std 0)."""
    v = np.atleast_1d(np.asarray(values, dtype=float))
    return {"mean": float(np.mean(v)), "std": draw_std(v), "n": int(v.size)}


def feature_texts(queries: pd.DataFrame, use_context: bool) -> list[str]:
    """The text each query is featurised from: the query table's ``text`` (context, then
    ``Question: ...``), or with ``use_context=False`` the question alone (the reference code's
    ``--no-context``; a query without a question text gets the empty string)."""
    if use_context:
        return queries["text"].tolist()
    return [q if isinstance(q, str) else "" for q in queries["original_question"].tolist()]


def decisions_frame(
    data: DarsDataset, decision: Any, per_query: dict[str, np.ndarray] | None = None
) -> pd.DataFrame:
    """Per-query decisions: query_id, draw, chosen model and the router's per-model outputs.

    ``decision.outputs`` names them: predicted ``mu_q``, ``mu_c``, ``sigma_q`` for a signal
    router, routing ``score`` otherwise; one column ``<name>[<model>]`` per model.
    ``per_query`` adds each metric's per-query value (``rU``, ... of the chosen model), what the
    bootstrap and the leaderboard's paired comparisons resample.
    """
    ch = np.atleast_2d(decision.choices)  # [D, Q]
    n_draws, n_q = ch.shape
    models = np.asarray(data.models)
    cols: dict[str, Any] = {
        "query_id": np.tile(data.test_queries["query_id"].astype(str).to_numpy(), n_draws),
        "draw": np.repeat(np.arange(n_draws), n_q),
        "chosen": models[ch.ravel()],
    }
    for name, values in decision.outputs.items():
        arr = np.asarray(values).reshape(n_draws * n_q, -1)
        for j, m in enumerate(models):
            cols[f"{name}[{m}]"] = arr[:, j]
    for k, v in (per_query or {}).items():
        cols[k] = np.broadcast_to(np.atleast_2d(v), (n_draws, n_q)).ravel().astype(float)
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
    train_texts = feature_texts(data.train_queries, spec.use_context)
    n_train = training_queries(train_block, spec.mode, spec.n_train_queries, spec.train_budget)
    if n_train is not None:  # the first n training queries (the simulator draws them i.i.d.)
        train_block = train_block.subset_queries(np.arange(n_train))
        train_texts = train_texts[:n_train]
    targets = make_targets(
        train_block, spec.mode, n_draws=spec.n_draws, seed=spec.seed, sampler=spec.sampler,
        models=data.models,
    )
    beta_eff = targets.effective_beta(spec.beta)
    timings["targets"] = time.perf_counter() - t

    t = time.perf_counter()
    features = compute_features(
        spec.featurizer,
        train_texts,
        feature_texts(data.test_queries, spec.use_context),
        cache_dir=spec.cache_dir,
    )
    X_train, X_test = features
    timings["features"] = time.perf_counter() - t

    t = time.perf_counter()
    spec.router.fit(X_train, targets, lam=spec.lam, beta=spec.beta, seed=spec.seed)
    timings["fit"] = time.perf_counter() - t

    t = time.perf_counter()
    decision = spec.router.decide(X_test, spec.lam, beta_eff)
    choices = decision.choices
    timings["route"] = time.perf_counter() - t

    t = time.perf_counter()
    fit = training_summary(spec.router, X_train, targets, spec.lam, spec.beta)  # per draw
    stats = {p: M.ViewStats.from_block(b) for p, b in data.test_views.items()}
    values, shares = evaluate_policy(data, stats, choices, spec.lam, spec.beta)
    baselines = baseline_results(data, stats, spec.lam, spec.beta)
    for prefix in stats:
        key = prefix + "U"
        values["gap_" + key] = M.gap_closed(
            values[key], baselines["best_fixed"][key], baselines["oracle"][key]
        )
    n_test = data.test_queries.shape[0]
    rs = U.resamples(n_test, targets.n_draws, spec.bootstrap_resamples, spec.bootstrap_seed)
    per_query = policy_per_query(data, stats, choices, spec.lam, spec.beta)
    metric_ci, baseline_ci = cell_intervals(
        per_query, baseline_per_query(data, stats, baselines, spec.lam, spec.beta), rs
    )
    for name, ci in baseline_ci.items():
        baselines[name]["ci"] = ci
    frontier = frontier_reps = None
    if spec.frontier_lams:
        lam_choices = spec.router.route_grid(X_test, spec.frontier_lams, beta_eff, decision)  # [L, (D,) Q]
        frontier = frontier_points(lam_choices, stats, spec.frontier_lams)
        # AIQ re-scored in every bootstrap replicate (same resamples as the metrics' intervals)
        frontier_reps = frontier_replicates(lam_choices, stats, rs)
        frontier["aiq"] = frontier_aiq(frontier, baselines["fixed_models"], frontier_reps)
    timings["evaluate"] = time.perf_counter() - t

    models = list(data.models)
    metrics = {k: {**_summary(v), "ci": metric_ci[k]} for k, v in values.items()}
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
        "sampler": spec.sampler,
        "protocol": {"n_rewrites": spec.n_rewrites, "n_decodes": spec.n_decodes},
        "cost": {"lam": spec.lam, "beta": spec.beta, "beta_effective": beta_eff, "norm": spec.cost_norm},
        "seed": spec.seed,
        "training": {
            "n_queries": int(train_block.n_queries),
            "n_queries_asked": spec.n_train_queries,
            "budget_per_model": spec.train_budget,
            "generations": generations_used(targets.n_obs, targets.n_draws),
            # per-draw fit on the training queries: regret, accuracy, the router's own statistics
            "fit": {k: {**_summary(v), "per_draw": [float(x) for x in v]} for k, v in fit.items()},
        },
        "bootstrap": {
            "resamples": int(spec.bootstrap_resamples), "seed": int(spec.bootstrap_seed),
            "level": U.LEVEL, "interval": "percentile",
            "resampled": "test queries" + (" and draws, independently" if targets.has_draws else ""),
        },
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
    decisions = decisions_frame(data, decision, per_query)
    fmt = spec.decisions_format
    atomic_write_frame(out_dir / f"decisions.{'parquet' if fmt == 'parquet' else 'csv'}", decisions)
    if frontier_reps is not None:  # the leaderboard re-scores AIQ on a shared range from these
        atomic_write_npz(out_dir / FRONTIER_BOOTSTRAP, lams=np.asarray(spec.frontier_lams, dtype=float),
                         models=np.asarray(models, dtype=str), **frontier_reps)
    if spec.save_router:
        encoder = QueryEncoder.fit(spec.featurizer, train_texts)
        meta = {"router_name": spec.router_name, "mode": spec.mode, "seed": spec.seed,
                "cost_norm": spec.cost_norm, "cost_scale": results["dataset"]["cost_scale"],
                "dataset": data.name, "content_hash": data.source.get("content_hash"),
                "beta_user": spec.beta, "versions": results["versions"]}
        save_bundle(out_dir / "router", spec.router, encoder, models, lam=spec.lam,
                    beta=beta_eff, meta=meta)
        results["router_bundle"] = "router"
    atomic_write_json(out_dir / "results.json", results)
    return results
