"""The official single-shot sampler (issue 15): first draws of a tiny ragged block by hand."""

from __future__ import annotations

import numpy as np
import pytest

from benchmark.data.dataset import ObservationBlock
from supervision.modes import make_targets, single_shot_official


def _block() -> ObservationBlock:
    """Q=2, M=2, V=2, S=2. score = 10q + m + 0.1 * (2v + s) names each observation.

    Present: (q0, m0) all four; (q0, m1) only (v1, s1); (q1, m0) none; (q1, m1) (v0, s1),
    (v1, s0), (v1, s1).
    """
    q, m, v, s = np.indices((2, 2, 2, 2))
    score = 10.0 * q + m + 0.1 * (2 * v + s)
    present = np.zeros((2, 2, 2, 2), dtype=bool)
    present[0, 0] = True
    present[0, 1, 1, 1] = True
    present[1, 1] = [[False, True], [True, True]]
    score = np.where(present, score, np.nan)
    return ObservationBlock(score, score + 100.0, present, np.array([0, 1]), np.array([0, 1]))


def test_first_draws_by_hand():
    # default_rng(42): integers(0, 4) -> 0, then (q0, m1) has one observation: integers(0, 1)
    # consumes nothing, then (q1, m1): integers(0, 3) -> 2.  default_rng(43): 2, then 1.
    t = single_shot_official(_block(), n_draws=2, seed=42)
    nan = np.nan
    expected = np.array([
        [[0.0, 1.3], [nan, 11.3]],   # draw 0: (v0,s0); (v1,s1); none; 3rd present = (v1,s1)
        [[0.2, 1.3], [nan, 11.2]],   # draw 1: 3rd obs = (v1,s0); (v1,s1); none; 2nd = (v1,s0)
    ])
    np.testing.assert_allclose(t.mu_q, expected, equal_nan=True, atol=1e-12)
    np.testing.assert_allclose(t.mu_c, expected + 100.0, equal_nan=True, atol=1e-12)
    assert t.mode == "single_shot" and not t.uses_risk
    np.testing.assert_array_equal(t.n_obs, [[[1, 1], [0, 1]]] * 2)
    np.testing.assert_array_equal(np.isnan(t.sigma_q), np.isnan(expected))
    assert np.nanmax(np.abs(t.sigma_q)) == 0.0


def test_equals_one_integers_call_per_group():
    """The vectorised draw equals the reference loop: one rng.integers per non-empty group."""
    rng = np.random.default_rng(5)
    present = rng.random((7, 3, 2, 3)) < 0.6
    score = np.where(present, rng.random(present.shape), np.nan)
    block = ObservationBlock(score, score * 2, present, np.arange(2), np.arange(3))
    t = make_targets(block, "single_shot", n_draws=4, seed=42, sampler="official")
    for d in range(4):
        g = np.random.default_rng(42 + d)
        for qi in range(7):
            for mi in range(3):
                obs = score[qi, mi].ravel()[present[qi, mi].ravel()]
                if obs.size == 0:
                    assert np.isnan(t.mu_q[d, qi, mi])
                    continue
                assert t.mu_q[d, qi, mi] == obs[int(g.integers(0, obs.size))]


def test_sampler_choice_is_checked_and_default_unchanged():
    b = _block()
    a = make_targets(b, "single_shot", n_draws=3, seed=1)
    c = make_targets(b, "single_shot", n_draws=3, seed=1, sampler="darsbench")
    np.testing.assert_array_equal(a.mu_q, c.mu_q)
    with pytest.raises(ValueError, match="sampler"):
        make_targets(b, "dars", sampler="pandas")


def test_draw_std_is_sample_std():
    from supervision.stats import draw_std

    # {1, 2, 6}: mean 3, squared deviations 4 + 1 + 9 = 14; ddof=1 -> sqrt(7).
    assert draw_std([1.0, 2.0, 6.0]) == pytest.approx(np.sqrt(7.0))
    assert draw_std([0.25]) == 0.0


def test_official_dars_numerics_by_hand():
    # pandas sums a group as first + (pairwise sum of the rest): 0.1 + (0.2 + 0.3) = 0.6 exactly,
    # / 3 -> 0.19999999999999998; darsbench's default sums (0.1 + 0.2) + 0.3 = 0.6000000000000001.
    from supervision.official import file_order_mean_std
    from supervision.stats import masked_mean

    v = np.array([[0.1, 0.2, 0.3]])
    m = np.ones_like(v, dtype=bool)
    mu, sd = file_order_mean_std(v, m)
    assert mu[0] == 0.6 / 3 and masked_mean(v, m, 1)[0] == 0.6000000000000001 / 3 != mu[0]
    # Welford: mean 0.1, 0.15, 0.2; M2 0, 0.1*0.05... sample std of (0.1, 0.2, 0.3) is 0.1
    assert sd[0] == pytest.approx(0.1, abs=1e-15)
    # empty group: NaN; one observation: std 0 (the reference code fills pandas' NaN with 0)
    mu, sd = file_order_mean_std(np.array([[1.0, 2.0], [3.0, 4.0]]), np.array([[False, False], [False, True]]))
    assert np.isnan(mu[0]) and np.isnan(sd[0]) and mu[1] == 4.0 and sd[1] == 0.0


def test_official_dars_numerics_equal_pandas_bit_for_bit():
    """pandas groupby(sort=False).agg(mean, std) over rows in file order == file_order_mean_std."""
    import pandas as pd

    from supervision.official import file_order_mean_std

    rng = np.random.default_rng(0)
    vals = rng.random((300, 25)) * rng.choice([1e-4, 1.0, 3.3], size=(300, 1))
    vals[:60] = rng.integers(0, 2, (60, 25))
    mask = rng.random((300, 25)) > 0.3
    mask[0] = False
    g, k = np.nonzero(mask)
    got = pd.DataFrame({"g": g, "v": vals[g, k]}).groupby("g", sort=False).agg(m=("v", "mean"), s=("v", "std"))
    mu, sd = file_order_mean_std(vals.reshape(20, 15, 25), mask.reshape(20, 15, 25))
    idx = got.index.to_numpy()
    np.testing.assert_array_equal(mu.ravel()[idx], got["m"].to_numpy())
    np.testing.assert_array_equal(sd.ravel()[idx], got["s"].fillna(0.0).to_numpy())
    assert np.isnan(mu.ravel()[0])


def test_make_targets_official_dars_uses_file_order_numerics():
    b = _block()
    t = make_targets(b, "dars", sampler="official")
    d = make_targets(b, "dars")
    # same targets up to summation order; missing pair (q1, m0) NaN in both
    np.testing.assert_allclose(t.mu_q, d.mu_q, atol=1e-12)
    np.testing.assert_allclose(t.sigma_q, d.sigma_q, atol=1e-12)
    assert np.isnan(t.mu_q[1, 0]) and t.n_obs.tolist() == [[4, 1], [0, 3]] and t.uses_risk
    # (q1, m1): observations 11.1, 11.2, 11.3 in file order -> 11.1 + (11.2 + 11.3), / 3
    assert t.mu_q[1, 1] == (11.1 + (11.2 + 11.3)) / 3
