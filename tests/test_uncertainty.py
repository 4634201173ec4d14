"""Bootstrap intervals, paired differences, multiple-comparison corrections and intervals across
seeds (evaluators/uncertainty.py) on small cases whose answers are known by hand."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as st

from evaluators import uncertainty as U


def test_constant_difference_gives_a_zero_width_interval():
    rng = np.random.default_rng(0)
    b = rng.normal(size=50)
    r = U.paired_difference(b + 0.3, b, resamples_n=500, seed=1)
    assert r["diff"] == pytest.approx(0.3, abs=1e-12)
    assert r["low"] == pytest.approx(0.3, abs=1e-12) and r["high"] == pytest.approx(0.3, abs=1e-12)
    assert r["p"] == pytest.approx(2 / 501)  # every replicate > 0: the smallest p 500 resamples give
    # The same with single-shot draws: every draw is b + 0.3, so resampling draws changes nothing.
    r = U.paired_difference(np.stack([b + 0.3] * 4), b, resamples_n=500, seed=1)
    assert r["high"] - r["low"] == pytest.approx(0.0, abs=1e-12)


def test_identical_arms_give_p_one_and_a_zero_interval():
    x = np.random.default_rng(3).normal(size=(3, 40))
    # Paired over queries and over draws (same number of draws): every replicate is exactly 0.
    r = U.paired_difference(x, x.copy(), resamples_n=300, seed=0)
    assert (r["diff"], r["low"], r["high"], r["p"]) == (0.0, 0.0, 0.0, 1.0)
    r = U.paired_difference(x[0], x[0].copy(), resamples_n=300, seed=0)
    assert (r["diff"], r["low"], r["high"], r["p"]) == (0.0, 0.0, 0.0, 1.0)
    # A single-shot arm against a one-draw arm: its draws are resampled on their own, so the
    # spread over draws widens the interval.
    r = U.paired_difference(x, x.mean(axis=0), resamples_n=300, seed=0)
    assert r["diff"] == pytest.approx(0.0, abs=1e-12) and r["high"] > r["low"]


def test_normal_sample_interval_close_to_the_analytic_one():
    x = np.random.default_rng(7).normal(loc=1.0, scale=2.0, size=400)
    lo, hi = U.interval(x, U.resamples(400, 1, 4000, seed=0))
    half = 1.959964 * x.std(ddof=1) / np.sqrt(x.size)
    assert lo == pytest.approx(x.mean() - half, abs=0.1 * half)
    assert hi == pytest.approx(x.mean() + half, abs=0.1 * half)


def test_draws_are_resampled_with_the_queries():
    # Two draws, constant over queries (0 and 1): query resampling adds nothing; resampling the
    # two draws gives means 0, 0.5, 1 with probabilities 1/4, 1/2, 1/4.
    x = np.stack([np.zeros(30), np.ones(30)])
    rs = U.resamples(30, 2, 4000, seed=0)
    reps = U.replicates(x, rs)
    assert set(np.round(reps, 12)) == {0.0, 0.5, 1.0}
    assert np.mean(reps == 0.5) == pytest.approx(0.5, abs=0.03)
    assert U.percentile_interval(reps) == (0.0, 1.0)


def test_identity_resample_is_the_metric_and_nan_is_left_out():
    x = np.array([[1.0, np.nan, 3.0, 4.0], [2.0, 2.0, np.nan, np.nan]])
    ident = U.Resamples(np.ones((1, 4)), np.ones((1, 2)))
    # Per draw: mean(1, 3, 4) = 8/3 and mean(2, 2) = 2; then the mean over draws.
    assert U.replicates(x, ident)[0] == pytest.approx((8 / 3 + 2) / 2)
    assert U.point_estimate(x) == pytest.approx((8 / 3 + 2) / 2)


def test_resamples_are_seeded_and_sum_to_the_sizes():
    a, b = U.resamples(20, 5, 50, seed=4), U.resamples(20, 5, 50, seed=4)
    assert np.array_equal(a.queries, b.queries) and np.array_equal(a.draws, b.draws)
    assert (a.queries.sum(axis=1) == 20).all() and (a.draws.sum(axis=1) == 5).all()
    assert not np.array_equal(a.queries, U.resamples(20, 5, 50, seed=5).queries)


def test_p_value_formula():
    reps = np.array([-1.0, 1.0, 2.0, 3.0])  # one of four at or below 0
    assert U.p_value(reps) == pytest.approx(2 * (1 + 1) / 5)


def test_holm_and_benjamini_hochberg_on_a_hand_computed_list():
    p = np.array([0.01, np.nan, 0.04, 0.03, 0.005])
    # Holm (m = 4): sorted 0.005*4 = 0.02, 0.01*3 = 0.03, 0.03*2 = 0.06, 0.04*1 = 0.04 -> running
    # max 0.02, 0.03, 0.06, 0.06.
    np.testing.assert_allclose(U.holm(p), [0.03, np.nan, 0.06, 0.06, 0.02])
    # BH: p * 4 / rank = 0.02, 0.02, 0.04, 0.04 -> running min from the top: the same.
    np.testing.assert_allclose(U.benjamini_hochberg(p), [0.02, np.nan, 0.04, 0.04, 0.02])
    assert U.holm(np.array([0.5, 0.6])).tolist() == [1.0, 1.0]  # capped at 1


def test_seed_interval_and_test():
    r = U.seed_interval([1.0, 2.0, 3.0])
    half = st.t.ppf(0.975, 2) * 1.0 / np.sqrt(3)  # s = 1
    assert (r["mean"], r["n"]) == (2.0, 3)
    assert r["low"] == pytest.approx(2 - half) and r["high"] == pytest.approx(2 + half)
    assert r["high"] - r["low"] == pytest.approx(2 * 2.4841377, rel=1e-6)
    assert np.isnan(U.seed_interval([0.4])["low"])
    assert U.seed_test([0.0, 0.0, 0.0]) == 1.0
    assert U.seed_test([0.1, -0.1, 0.2]) == pytest.approx(st.ttest_1samp([0.1, -0.1, 0.2], 0).pvalue)


def test_shape_errors_are_clear():
    with pytest.raises(ValueError, match="30 and 20 test queries"):
        U.paired_difference(np.zeros(30), np.zeros(20))
    with pytest.raises(ValueError, match="resamples must be >= 1"):
        U.resamples(10, 1, 0)
