"""Cost-quality frontier: hull, AIQ, budgets, lambda sweep, on hand-computed points.

Points (cost, quality):
  P1 (0.1, 0.5)   cheapest -> hull start
  P2 (0.1, 0.3)   same cost, lower quality -> dropped
  P3 (0.2, 0.55)  below the chord P1-P4 (0.65 at cost 0.2) -> dropped
  P4 (0.3, 0.8)   hull vertex (slopes 1.5 then 0.5: concave)
  P5 (0.4, 0.7)   dominated by P4 -> dropped
  P6 (0.5, 0.9)   cheapest top-quality point -> hull end
  P7 (0.6, 0.9)   same quality, more cost -> dropped
Hull: (0.1, .5) (0.3, .8) (0.5, .9).
Default range [0.1, 0.6]: area 0.2 * (0.5 + 0.8) / 2 = 0.13, 0.2 * (0.8 + 0.9) / 2 = 0.17, flat
0.1 * 0.9 = 0.09 -> 0.39 / 0.5 = 0.78.
"""

from __future__ import annotations

import numpy as np
import pytest

from evaluators.frontier import (
    aiq,
    fixed_model_points,
    frontier_summary,
    lambda_sweep,
    quality_at_budget,
    route_sweep,
    sweep_points,
    upper_hull,
)
from routers.base import Signals

COST = [0.4, 0.1, 0.6, 0.3, 0.2, 0.1, 0.5]  # shuffled on purpose
QUAL = [0.7, 0.3, 0.9, 0.8, 0.55, 0.5, 0.9]


def test_upper_hull_drops_dominated_and_interior_points():
    hc, hq = upper_hull(COST, QUAL)
    np.testing.assert_allclose(hc, [0.1, 0.3, 0.5])
    np.testing.assert_allclose(hq, [0.5, 0.8, 0.9])


def test_upper_hull_collinear_and_single_point():
    hc, hq = upper_hull([0.0, 1.0, 2.0, 3.0], [0.0, 1.0, 2.0, 2.5])  # (1, 1) is on the chord
    np.testing.assert_array_equal(hc, [0.0, 2.0, 3.0])
    np.testing.assert_array_equal(hq, [0.0, 2.0, 2.5])
    hc, hq = upper_hull([0.3], [0.7])
    np.testing.assert_array_equal(hc, [0.3])
    np.testing.assert_array_equal(hq, [0.7])
    # The cheapest point is already the best: one vertex.
    hc, hq = upper_hull([0.1, 0.2], [0.9, 0.4])
    np.testing.assert_array_equal(hc, [0.1])
    np.testing.assert_array_equal(hq, [0.9])


def test_upper_hull_rejects_bad_input():
    with pytest.raises(ValueError, match="not finite"):
        upper_hull([0.1, np.nan], [0.2, 0.3])
    with pytest.raises(ValueError):
        upper_hull([], [])
    with pytest.raises(ValueError):
        upper_hull([0.1, 0.2], [0.3])


def test_aiq_hand_values():
    assert aiq(COST, QUAL) == pytest.approx(0.78)
    # RouterBench style: range from 0; [0, 0.1] contributes 0 -> 0.39 / 0.6.
    assert aiq(COST, QUAL, cost_range=(0.0, 0.6)) == pytest.approx(0.65)
    # Inner range [0.2, 0.4]: R = 0.65, 0.8, 0.85 -> (0.0725 + 0.0825) / 0.2.
    assert aiq(COST, QUAL, cost_range=(0.2, 0.4)) == pytest.approx(0.775)
    # Range entirely left of the cheapest point: nothing reachable.
    assert aiq(COST, QUAL, cost_range=(0.0, 0.05)) == 0.0
    with pytest.raises(ValueError, match="lo <= hi"):
        aiq(COST, QUAL, cost_range=(0.5, 0.2))


def test_aiq_single_point():
    assert aiq([0.3], [0.7]) == pytest.approx(0.7)
    assert aiq([0.3], [0.7], cost_range=(0.3, 0.5)) == pytest.approx(0.7)  # flat to the right
    assert aiq([0.3], [0.7], cost_range=(0.1, 0.5)) == pytest.approx(0.2 * 0.7 / 0.4)
    assert np.isnan(aiq([0.3], [0.7], cost_range=(0.2, 0.2)))


def test_quality_at_budget():
    got = quality_at_budget(COST, QUAL, [0.05, 0.1, 0.2, 0.4, 0.5, 1.0])
    np.testing.assert_allclose(got, [np.nan, 0.5, 0.65, 0.85, 0.9, 0.9])
    assert quality_at_budget(COST, QUAL, 0.3).shape == ()


def test_frontier_summary():
    s = frontier_summary(COST, QUAL, budgets=[0.2])
    assert s["aiq"] == pytest.approx(0.78)
    np.testing.assert_allclose(s["quality_at_budget"], [0.65])
    np.testing.assert_allclose(s["hull_cost"], [0.1, 0.3, 0.5])


# ----------------------------------------------------------------------- sweep helpers
# 3 queries x 2 models. quality / cost per pair:
#   Q0: A (q 1.0, c 0.2)  B (q 0.0, c 0.1)
#   Q1: A (q 0.5, c 0.2)  B (q 1.0, c 0.1)
#   Q2: A (q 1.0, c 0.2)  B (NaN: no observation)
QUALITY = np.array([[1.0, 0.0], [0.5, 1.0], [1.0, np.nan]])
COSTQ = np.array([[0.2, 0.1], [0.2, 0.1], [0.2, np.nan]])


def test_sweep_points_vectorised_over_policies():
    choices = np.array([[0, 0, 0], [0, 1, 0], [1, 1, 0]])  # [L=3, Q]
    c, q = sweep_points(choices, QUALITY, COSTQ)
    # policy 0: q (1 + .5 + 1)/3, c .2; policy 1: q (1 + 1 + 1)/3, c (.2 + .1 + .2)/3;
    # policy 2: q (0 + 1 + 1)/3, c (.1 + .1 + .2)/3
    np.testing.assert_allclose(q, [2.5 / 3, 1.0, 2 / 3])
    np.testing.assert_allclose(c, [0.2, 0.5 / 3, 0.4 / 3])


def test_sweep_points_leaves_out_unobserved_pairs_with_warning():
    with pytest.warns(UserWarning, match="1 routed"):
        c, q = sweep_points(np.array([1, 1, 1]), QUALITY, COSTQ)
    assert q == pytest.approx(0.5) and c == pytest.approx(0.1)  # Q2 left out
    with pytest.raises(ValueError, match="outside"):
        sweep_points(np.array([0, 2, 0]), QUALITY, COSTQ)


def test_fixed_model_points():
    with pytest.warns(UserWarning):
        c, q = fixed_model_points(QUALITY, COSTQ)
    np.testing.assert_allclose(q, [2.5 / 3, 0.5])
    np.testing.assert_allclose(c, [0.2, 0.1])


def test_route_sweep_equals_select_per_lambda():
    rng = np.random.default_rng(1)
    sig = Signals(rng.random((2, 7, 4)), rng.random((2, 7, 4)), rng.random((2, 7, 4)))  # [D, Q, M]
    lams = np.linspace(0.0, 2.0, 9)
    got = route_sweep(sig, lams, 0.2)
    assert got.shape == (9, 2, 7)
    for i, lam in enumerate(lams):
        np.testing.assert_array_equal(got[i], sig.select(lam, 0.2))


def test_lambda_sweep_hand_case():
    # Predicted signals equal to the truth; beta 0. Q0: A wins for lam < 10 (1 - .2 lam vs
    # -.1 lam); Q1: B always (1 - .1 lam > .5 - .2 lam); Q2: B predicted worse (q 0, c 1).
    sig = Signals(
        np.array([[1.0, 0.0], [0.5, 1.0], [1.0, 0.0]]),
        np.array([[0.2, 0.1], [0.2, 0.1], [0.2, 1.0]]),
        np.zeros((3, 2)),
    )
    c, q = lambda_sweep(sig, [0.0, 20.0], 0.0, QUALITY, COSTQ)
    # lam 0: A B A -> q 1, c .5/3; lam 20: Q0 B (-2 > -4) B A -> q 2/3, c .4/3
    np.testing.assert_allclose(q, [1.0, 2 / 3])
    np.testing.assert_allclose(c, [0.5 / 3, 0.4 / 3])


# ---------------------------------------------------------------- bootstrap of AIQ
from evaluators import uncertainty as U  # noqa: E402
from evaluators.frontier import (  # noqa: E402
    aiq_batch,
    compare_aiq_replicates,
    compare_curves,
    frontier_aiq,
    frontier_points,
    frontier_replicates,
    sweep_replicates,
)
from evaluators.metrics import ViewStats  # noqa: E402


def test_aiq_batch_equals_aiq_row_by_row():
    rng = np.random.default_rng(3)
    rows_c, rows_q, los, his, want = [], [], [], [], []
    for _ in range(200):
        c = np.round(rng.random(7), 1)  # rounding makes ties of cost and quality
        q = np.round(rng.random(7), 1)
        k = rng.integers(1, 8)
        c[k:], q[k:] = np.nan, np.nan  # fewer points in some rows
        lo = float(rng.choice([0.0, 0.3]))
        hi = lo + float(rng.choice([0.0, 0.2, 1.0]))
        rows_c.append(c), rows_q.append(q), los.append(lo), his.append(hi)
        want.append(aiq(c[:k], q[:k], (lo, hi)))
    got = aiq_batch(np.array(rows_c), np.array(rows_q), np.array(los), np.array(his))
    np.testing.assert_allclose(got, want, atol=1e-12, rtol=0)


def test_aiq_batch_hand_value_and_empty_row():
    # hull (0, .2) (.5, .6) (1, .7): area .5 * .4 + .5 * .65 = 0.525 over [0, 1]
    got = aiq_batch([[0.0, 0.5, 1.0, 0.6], [np.nan] * 4], [[0.2, 0.6, 0.7, 0.5], [np.nan] * 4], 0.0, 1.0)
    assert got[0] == pytest.approx(0.525, abs=1e-15)
    assert np.isnan(got[1])


# Three models whose cost is the same on every query (0, 0.5, 1): the cost axis of every
# bootstrap replicate is fixed, only the qualities move.
COSTS = np.array([0.0, 0.5, 1.0])


def _block(n_q: int = 12, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.random((n_q, 3)), np.broadcast_to(COSTS, (n_q, 3)).copy()


def test_sweep_replicates_are_the_points_of_the_resampled_queries_and_draws():
    q, c = _block()
    rng = np.random.default_rng(1)
    choices = rng.integers(0, 3, size=(4, 5, 12))  # [L, D, Q]
    rs = U.resamples(12, 5, resamples=6, seed=2)
    mc, mq = sweep_replicates(choices, q, c, rs)
    assert mc.shape == mq.shape == (4, 6)
    for b in range(6):  # the explicit resampled dataset: repeat queries and draws by their counts
        qi = np.repeat(np.arange(12), rs.queries[b].astype(int))
        di = np.repeat(np.arange(5), rs.draws[b].astype(int))
        ch = choices[:, di][:, :, qi]  # [L, D', Q']
        want_c, want_q = sweep_points(ch, q[qi], c[qi])  # [L, D']
        np.testing.assert_allclose(mc[:, b], want_c.mean(axis=1), atol=1e-12)
        np.testing.assert_allclose(mq[:, b], want_q.mean(axis=1), atol=1e-12)


def test_aiq_replicates_rescore_each_resample_on_its_own_range():
    q, c = _block()
    choices = np.array([[0] * 12, [1] * 12, [2] * 12, [0, 1, 2] * 4])  # 4 policies
    rs = U.resamples(12, 1, resamples=5, seed=4)
    reps = compare_aiq_replicates({"a": sweep_replicates(choices, q, c, rs)})["a"]
    for b in range(5):
        qi = np.repeat(np.arange(12), rs.queries[b].astype(int))
        pc, pq = sweep_points(choices[:, qi], q[qi], c[qi])
        _, point = compare_curves({"a": (pc, pq)})
        assert reps[b] == pytest.approx(point["a"]["aiq"], abs=1e-12)


def test_constant_aiq_difference_gives_a_zero_width_interval():
    # Arm b gains 0.1 quality on every query and model; the costs never move and the
    # cheapest point costs 0, so every replicate's AIQ differs by exactly 0.1.
    q, c = _block()
    choices = np.array([[0] * 12, [1] * 12, [2] * 12])
    rs = U.resamples(12, 1, resamples=400, seed=0)
    reps = compare_aiq_replicates({"a": sweep_replicates(choices, q, c, rs),
                                   "b": sweep_replicates(choices, q + 0.1, c, rs)})
    d = reps["b"] - reps["a"]
    np.testing.assert_allclose(d, 0.1, atol=1e-12)
    lo, hi = U.percentile_interval(d)
    assert hi - lo == pytest.approx(0.0, abs=1e-12) and lo == pytest.approx(0.1, abs=1e-12)
    assert U.p_value(d) == pytest.approx(2 / 401)


def test_identical_arms_give_p_one_and_a_zero_interval():
    q, c = _block()
    choices = np.random.default_rng(5).integers(0, 3, size=(3, 4, 12))
    rs = U.resamples(12, 4, resamples=300, seed=1)
    reps = compare_aiq_replicates({"a": sweep_replicates(choices, q, c, rs),
                                   "b": sweep_replicates(choices, q, c, rs)})
    d = reps["a"] - reps["b"]
    assert U.p_value(d) == 1.0
    assert U.percentile_interval(d) == (0.0, 0.0)


def test_frontier_aiq_point_is_compare_curves_and_interval_brackets_it():
    q, c = _block(n_q=40, seed=7)
    stats = {"r": ViewStats(q=q, c=c), "d": ViewStats(q=q[:, ::-1].copy(), c=c)}
    lam_choices = np.random.default_rng(2).integers(0, 3, size=(5, 40))
    points = frontier_points(lam_choices, stats, [0.0, 0.1, 0.2, 0.5, 1.0])
    fixed = {m: {k: float(v) for k, v in zip(("rC", "rQ", "dC", "dQ"),
                                             (COSTS[j], q[:, j].mean(), COSTS[j], q[:, ::-1][:, j].mean()))}
             for j, m in enumerate("xyz")}
    rs = U.resamples(40, 1, resamples=500, seed=0)
    reps = frontier_replicates(lam_choices, stats, rs)
    assert reps["rC"].shape == (5, 500) and reps["fixed_rC"].shape == (3, 500)
    out = frontier_aiq(points, fixed, reps)
    fixed_r = (np.array([fixed[m]["rC"] for m in "xyz"]), np.array([fixed[m]["rQ"] for m in "xyz"]))
    hi, want = compare_curves({"router": (points["rC"], points["rQ"]), "fixed": fixed_r})
    assert out["r"]["aiq"] == pytest.approx(want["router"]["aiq"], abs=1e-12)
    assert out["r"]["fixed_aiq"] == pytest.approx(want["fixed"]["aiq"], abs=1e-12)
    assert out["r"]["cost_range"] == [0.0, pytest.approx(hi)]
    for view in ("r", "d", "mean"):
        lo, up = out[view]["ci"]
        assert lo <= out[view]["aiq"] <= up and up - lo > 0
