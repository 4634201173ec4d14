"""Baselines (oracle, best fixed, random, cheapest, largest, every fixed model) and the metrics of
one routing policy on every test view. Definitions: docs/analyses.md, section "Baselines"."""

from __future__ import annotations

from typing import Any

import numpy as np

from benchmark.data.dataset import DarsDataset
from evaluators import metrics as M
from evaluators import uncertainty as U


def evaluate_policy(
    data: DarsDataset,
    stats: dict[str, M.ViewStats],
    choices: np.ndarray,
    lam: float,
    beta: float,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Metrics ``rU, rQ, rC, dU, dQ, dC``, ``chosen_decoding_instability`` (+ ``tU, tQ, t_best``
    on simulated data) and shares."""
    values: dict[str, np.ndarray] = {}
    shares: dict[str, np.ndarray] = {}
    for prefix, vs in stats.items():
        res = M.evaluate_choices(vs, choices, lam)
        for k in M.VIEW_METRICS:
            values[prefix + k] = res[k]
        shares[prefix] = res["share"]
    values["chosen_decoding_instability"] = M.chosen_decoding_instability(data.test_decoding, choices)
    if data.test_truth is not None:
        values.update(M.true_utility(data.test_truth, choices, lam, beta))
    return values, shares


def baseline_results(
    data: DarsDataset, stats: dict[str, M.ViewStats], lam: float, beta: float
) -> dict[str, dict[str, Any]]:
    """oracle, best_fixed, random, cheapest and largest on every view (docs/spec.md §5)."""
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


def policy_per_query(
    data: DarsDataset, stats: dict[str, M.ViewStats], choices: np.ndarray, lam: float, beta: float
) -> dict[str, np.ndarray]:
    """:func:`evaluate_policy`'s metrics per query (``[..., Q]`` like ``choices``)."""
    out: dict[str, np.ndarray] = {}
    for prefix, vs in stats.items():
        out.update({prefix + k: v for k, v in M.per_query(vs, choices, lam).items()})
    out["chosen_decoding_instability"] = M.chosen_decoding_spread(data.test_decoding, choices)
    if data.test_truth is not None:
        out.update(M.true_per_query(data.test_truth, choices, lam, beta))
    return out


def baseline_per_query(
    data: DarsDataset,
    stats: dict[str, M.ViewStats],
    baselines: dict[str, dict[str, Any]],
    lam: float,
    beta: float,
) -> dict[str, dict[str, np.ndarray]]:
    """Per-query values ``[Q]`` behind every metric of oracle, best_fixed, random, cheapest and
    largest, as :func:`baseline_results` chose them (their means are those results)."""
    models = list(data.models)
    n_test = data.test_queries.shape[0]
    out: dict[str, dict[str, np.ndarray]] = {"oracle": {}, "best_fixed": {}, "random": {}}
    with np.errstate(invalid="ignore"):
        for prefix, vs in stats.items():
            orc = M.per_query(vs, M.oracle_choices(vs, lam), lam)
            bf_model = models.index(baselines["best_fixed"][prefix + "_model"])
            bf = M.per_query(vs, np.full(n_test, bf_model), lam)
            per_model = {"U": vs.u(lam), "Q": vs.q, "C": vs.c}
            for k in M.VIEW_METRICS:
                out["oracle"][prefix + k] = orc[k]
                out["best_fixed"][prefix + k] = bf[k]
                v = per_model[k]
                ok = np.isfinite(v)
                n = ok.sum(axis=1)
                out["random"][prefix + k] = np.where(
                    n > 0, np.where(ok, v, 0.0).sum(axis=1) / np.maximum(n, 1), np.nan
                )
    for name in ("cheapest", "largest"):
        m = models.index(baselines[name]["model"])
        out[name] = policy_per_query(data, stats, np.full(n_test, m), lam, beta)
    if data.test_truth is not None:
        truth = data.test_truth
        out["oracle"].update(M.true_per_query(truth, M.true_oracle_choices(truth, lam, beta), lam, beta))
        t_fixed = models.index(baselines["best_fixed"]["t_model"])
        out["best_fixed"].update(M.true_per_query(truth, np.full(n_test, t_fixed), lam, beta))
        u = M.utility(truth.mu_q, truth.mu_c, truth.sigma_q, lam, beta)
        out["random"]["tU"] = u.mean(axis=1)
        out["random"]["tQ"] = truth.mu_q.mean(axis=1)
    return out


def cell_intervals(
    router: dict[str, np.ndarray],
    baselines: dict[str, dict[str, np.ndarray]],
    rs: U.Resamples,
    level: float = U.LEVEL,
) -> tuple[dict[str, list[float]], dict[str, dict[str, list[float]]]]:
    """Bootstrap intervals of every router metric (including ``gap_<p>U``) and every baseline
    metric of one cell, all from the same resamples ``rs``.

    The gap closed is ``(U - U_best_fixed) / (U_oracle - U_best_fixed)`` per draw in every
    replicate, the three means taken on the same resampled queries, then averaged over the
    resampled draws (as the metric averages it over draws).
    """
    # Every array's per-draw replicate means in one pass (one BLAS set-up), reused by the gaps.
    arrays = {(None, k): v for k, v in router.items()}
    arrays.update({(name, k): v for name, vals in baselines.items() for k, v in vals.items()})
    means = dict(zip(arrays, U.draw_means_many(list(arrays.values()), rs)))

    def iv(key: tuple[str | None, str]) -> list[float]:
        return list(U.percentile_interval(U.combine_draws(means[key], rs), level))

    router_iv = {k: iv((None, k)) for k in router}
    base_iv = {name: {k: iv((name, k)) for k in vals} for name, vals in baselines.items()}
    for key in [k for k in router if k.endswith("U") and k[:-1] in ("r", "d")]:
        per_draw = means[(None, key)]  # [D, B]
        bf = means[("best_fixed", key)][0]
        orc = means[("oracle", key)][0]
        span = orc - bf
        with np.errstate(invalid="ignore", divide="ignore"):
            gap = np.where(np.abs(span) < 1e-15, np.nan, (per_draw - bf) / span)
        router_iv["gap_" + key] = list(U.percentile_interval(U.combine_draws(gap, rs), level))
    return router_iv, base_iv
