"""The per-cell shortcuts of issue 16 (README, "Start-up and encoding speed") give the numbers of
the straightforward computations they replace: bootstrap means of many arrays under one BLAS
limit, exact denominators from the count totals, cached resampling counts, the cell's intervals
from shared means, and the dataset a sweep's cells reuse."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf
from threadpoolctl import threadpool_limits

from benchmark.app import sweep as S
from evaluators import uncertainty as U
from evaluators.baselines import cell_intervals


def replicate_means_by_hand(values: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """``[D, B]``: each replicate's queries listed one by one (``np.repeat``), NaN left out."""
    v = np.atleast_2d(values)
    out = np.full((v.shape[0], counts.shape[0]), np.nan)
    for b, row in enumerate(counts):
        pick = np.repeat(np.arange(v.shape[1]), row.astype(int))
        for d in range(v.shape[0]):
            x = v[d, pick]
            x = x[np.isfinite(x)]
            if x.size:
                out[d, b] = x.mean()
    return out


def old_draw_means(values: np.ndarray, rs: U.Resamples) -> np.ndarray:
    """The formulation before issue 16: both products per array, a fresh thread limit each."""
    v = np.atleast_2d(np.asarray(values, dtype=float))
    ok = np.isfinite(v)
    with threadpool_limits(limits=1, user_api="blas"):
        num = np.where(ok, v, 0.0) @ rs.queries.T
        den = ok.astype(float) @ rs.queries.T
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def test_many_arrays_at_once_equal_the_replicates_listed_by_hand():
    rng = np.random.default_rng(0)
    rs = U.resamples(7, 3, 40, seed=2)
    a = rng.random((3, 7))
    a[1, 4] = np.nan  # a missing value: left out of that draw's means
    b = rng.random(7)
    c = np.full((2, 7), np.nan)  # nothing observed: NaN everywhere
    got = U.draw_means_many([a, b, c], rs)
    assert [g.shape for g in got] == [(3, 40), (1, 40), (2, 40)]
    for arr, g in zip([a, b, c], got):
        np.testing.assert_allclose(g, replicate_means_by_hand(arr, rs.queries), rtol=0, atol=1e-15)
        # ... and bit for bit what the two-product formulation gave.
        np.testing.assert_array_equal(g, old_draw_means(arr, rs))
    assert np.isnan(got[2]).all()
    np.testing.assert_array_equal(U.draw_means(a, rs), got[0])


def test_row_totals_are_the_exact_denominators():
    rs = U.resamples(248, 1, 500, seed=0)
    totals = rs.queries.sum(axis=1)
    assert (totals == 248).all()  # integer counts: the float sums are exact
    ones = np.ones((1, 248))
    np.testing.assert_array_equal(ones @ rs.queries.T, totals[None])


def test_cached_counts_equal_a_fresh_generator_in_any_order(monkeypatch):
    def fresh(q: int, d: int, b: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng(seed)
        wq = U._counts(rng, q, b)
        return wq, (U._counts(rng, d, b) if d > 1 else np.ones((b, 1)))

    # the one-draw sequence first (a prefix), then the longer one, then the prefix again
    for q, d, seed in [(20, 1, 5), (20, 6, 5), (20, 1, 5), (9, 3, 1), (20, 6, 6)]:
        rs = U.resamples(q, d, 30, seed)
        wq, wd = fresh(q, d, 30, seed)
        np.testing.assert_array_equal(rs.queries, wq)
        np.testing.assert_array_equal(rs.draws, wd)
        assert not rs.queries.flags.writeable  # shared between cells: nobody may write into it
    # Sequences too large for the cache are drawn afresh: the same numbers, writable, not kept.
    cached = U._count_prefix.cache_info().currsize
    with monkeypatch.context() as m:
        m.setattr(U, "_CACHE_BYTES", 0)
        rs = U.resamples(20, 6, 30, 5)
    wq, wd = fresh(20, 6, 30, 5)
    np.testing.assert_array_equal(rs.queries, wq)
    np.testing.assert_array_equal(rs.draws, wd)
    assert rs.queries.flags.writeable and U._count_prefix.cache_info().currsize == cached
    # The paired bootstrap draws its own sequence (queries, then arm a's draws, then b's).
    x = np.random.default_rng(4).random((6, 20))
    y = np.random.default_rng(5).random((2, 20))
    rng = np.random.default_rng(3)
    wq, wa, wb = U._counts(rng, 20, 50), U._counts(rng, 6, 50), U._counts(rng, 2, 50)
    reps = U.replicates(x, U.Resamples(wq, wa)) - U.replicates(y, U.Resamples(wq, wb))
    r = U.paired_difference(x, y, resamples_n=50, seed=3)
    assert (r["low"], r["high"]) == U.percentile_interval(reps)
    assert r["p"] == U.p_value(reps)


def test_cell_intervals_equal_one_interval_per_metric():
    rng = np.random.default_rng(1)
    rs = U.resamples(15, 4, 200, seed=0)
    router = {"rU": rng.random((4, 15)), "rQ": rng.random((4, 15)), "dU": rng.random((4, 15))}
    router["rQ"][2, 3] = np.nan
    names = ("oracle", "best_fixed", "random")
    base = {n: {k: rng.random(15) for k in ("rU", "dU")} for n in names}
    base["oracle"] = {k: v + 1.0 for k, v in base["oracle"].items()}  # oracle above best fixed
    router_iv, base_iv = cell_intervals(router, base, rs)
    for k, v in router.items():
        assert router_iv[k] == list(U.interval(v, rs))
        # by hand: per-draw means of the listed queries, then the draws' counts as weights
        per_draw = replicate_means_by_hand(v, rs.queries)
        reps = (per_draw * rs.draws.T).sum(axis=0) / rs.draws.sum(axis=1)
        np.testing.assert_allclose(router_iv[k], U.percentile_interval(reps), rtol=0, atol=1e-12)
    for n in names:
        for k, v in base[n].items():
            assert base_iv[n][k] == list(U.interval(v, rs))
    # the gap closed, replicate by replicate, from the per-draw means
    for key in ("rU", "dU"):
        per_draw = replicate_means_by_hand(router[key], rs.queries)
        bf = replicate_means_by_hand(base["best_fixed"][key], rs.queries)[0]
        orc = replicate_means_by_hand(base["oracle"][key], rs.queries)[0]
        gap = (per_draw - bf) / (orc - bf)
        reps = (gap * rs.draws.T).sum(axis=0) / rs.draws.sum(axis=1)
        np.testing.assert_allclose(router_iv["gap_" + key], U.percentile_interval(reps), atol=1e-12)


def test_a_sweeps_cells_reuse_the_dataset_read_last(tmp_path):
    def cfg(n_train: int):
        return OmegaConf.create({
            "cache_dir": str(tmp_path / "cache"),
            "dataset": {"_target_": "benchmark.data.sources.SyntheticSource", "preset": "default",
                        "overrides": {"n_train": n_train, "n_test": 10}},
        })

    S._LAST_DATASET.clear()
    first = S.load_dataset(cfg(20))
    assert S.load_dataset(cfg(20)) is first  # same config and cache folder: not read again
    other = S.load_dataset(cfg(24))
    assert other is not first and other.train.n_queries == 24
    again = S.load_dataset(cfg(20))  # one entry only: read again, same content
    assert again is not first and again.source["content_hash"] == first.source["content_hash"]
    np.testing.assert_array_equal(again.train.score, first.train.score)
    # a data file edited since: read again
    data_file = Path(again.source["paths"][0])
    stat = data_file.stat()
    os.utime(data_file, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert S.load_dataset(cfg(20)) is not again
    S.release_dataset()
    assert S._LAST_DATASET == []


@pytest.mark.parametrize("bad", [0, -1])
def test_counts_of_nothing_are_an_error(bad):
    with pytest.raises(ValueError, match="cannot resample"):
        U.resamples(bad, 1, 10, seed=0)
