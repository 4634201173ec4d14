"""Tests of the avengers_pro router (docs/spec.md §5): cluster means, top-k averaging, draws, signal."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.cluster import KMeans

from routers.avengers_pro import AvengersProRouter
from supervision.modes import Targets

ROOT = Path(__file__).resolve().parents[1]

# Cluster A: the first three points (centroid (1/3, 1/3)); cluster B: the last one.
X_TWO = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [10.0, 10.0]])
MU_Q_TWO = np.array([[1.0, 0.0], [0.5, 0.5], [0.9, 0.1], [0.0, 1.0]])
MU_C_TWO = np.array([[0.1, 0.4], [0.2, 0.4], [0.3, 0.4], [0.9, 0.0]])


def dars(mu_q, mu_c=None, sigma=None) -> Targets:
    mu_q = np.asarray(mu_q, dtype=float)
    mu_c = np.zeros_like(mu_q) if mu_c is None else np.asarray(mu_c, dtype=float)
    sigma = np.zeros_like(mu_q) if sigma is None else np.asarray(sigma, dtype=float)
    return Targets("dars", mu_q, mu_c, sigma, True, np.ones(mu_q.shape, int))


def test_hand_computed_top1_is_the_cluster_mean():
    r = AvengersProRouter(n_clusters=2, top_k=1).fit(X_TWO, dars(MU_Q_TWO, MU_C_TWO))
    assert sorted(r.cluster_sizes_.tolist()) == [1, 3]
    pred = r.predict(np.array([[0.2, 0.2], [9.0, 9.5]]))
    np.testing.assert_allclose(pred.mu_q, [[0.8, 0.2], [0.0, 1.0]], atol=1e-15)
    np.testing.assert_allclose(pred.mu_c, [[0.2, 0.4], [0.9, 0.0]], atol=1e-15)


def test_top_k_takes_the_plain_mean_of_cluster_means():
    r = AvengersProRouter(n_clusters=2, top_k=2).fit(X_TWO, dars(MU_Q_TWO))
    # Plain mean of (0.8, 0.2) and (0, 1) -- not the size-weighted (0.6, 0.4).
    np.testing.assert_allclose(r.predict(np.array([[0.2, 0.2]])).mu_q, [[0.4, 0.6]], atol=1e-15)


def test_nearest_clusters_are_ordered_by_centroid_distance():
    r = AvengersProRouter(n_clusters=2, top_k=2).fit(X_TWO, dars(MU_Q_TWO))
    near = r.nearest_clusters(np.array([[0.0, 0.0], [10.0, 9.0]]))
    centres = r.kmeans_.cluster_centers_
    assert np.allclose(centres[near[0, 0]], [1 / 3, 1 / 3])
    assert np.allclose(centres[near[1, 0]], [10, 10])


def test_nan_targets_are_skipped_in_cluster_and_query_means():
    mu_q = MU_Q_TWO.copy()
    mu_q[1, 0] = np.nan  # cluster A, model 0: mean of 1.0 and 0.9
    mu_q[3, 1] = np.nan  # cluster B has no finite target for model 1
    r = AvengersProRouter(n_clusters=2, top_k=2).fit(X_TWO, dars(mu_q))
    pred = r.predict(np.array([[0.2, 0.2]]))
    # Model 0: plain mean of 0.95 and 0.0; model 1: only cluster A's 0.2.
    np.testing.assert_allclose(pred.mu_q, [[0.475, 0.2]], atol=1e-15)
    # top_k = 1 near B: B has nothing for model 1 -> the model's training mean, with a warning.
    r1 = AvengersProRouter(n_clusters=2, top_k=1).fit(X_TWO, dars(mu_q))
    with pytest.warns(UserWarning, match="1 of .* no nearest cluster with a finite target"):
        pred = r1.predict(np.array([[10.0, 10.0]]))
    np.testing.assert_allclose(pred.mu_q, [[0.0, (0.0 + 0.5 + 0.1) / 3]], atol=1e-15)


def single_shot(X: np.ndarray, d: int, seed: int) -> Targets:
    rng = np.random.default_rng(seed)
    shape = (d, X.shape[0], 4)
    mu_q = (rng.random(shape) < 0.5).astype(float)
    missing = rng.random(shape) < 0.1
    mu_q[missing] = np.nan
    mu_c = np.where(missing, np.nan, rng.random(shape))
    sigma = np.where(missing, np.nan, 0.0)
    return Targets("single_shot", mu_q, mu_c, sigma, False, (~missing).astype(int))


def test_draws_batched_equal_one_by_one_and_cluster_once(monkeypatch):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(80, 6))
    Xt = rng.normal(size=(30, 6))
    t = single_shot(X, 6, 1)
    calls = []
    real_fit = KMeans.fit
    monkeypatch.setattr(KMeans, "fit", lambda self, *a, **k: calls.append(1) or real_fit(self, *a, **k))
    batched = AvengersProRouter(n_clusters=8, n_init=3).fit(X, t, seed=4)
    assert len(calls) == 1  # one clustering for all six draws
    pred = batched.predict(Xt)
    assert pred.mu_q.shape == (6, 30, 4)
    ones = [AvengersProRouter(n_clusters=8, n_init=3).fit(X, t.draw(d), seed=4).predict(Xt) for d in range(6)]
    for name in ("mu_q", "mu_c", "sigma_q"):
        np.testing.assert_allclose(
            getattr(pred, name), np.stack([getattr(o, name) for o in ones]), rtol=1e-14, atol=1e-15
        )
    np.testing.assert_array_equal(
        batched.route(Xt, 0.05, 0.0), np.stack([o.select(0.05, 0.0) for o in ones])
    )


def blobs(n_per: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Four well-separated blobs; blob b's queries are best served by model b."""
    rng = np.random.default_rng(seed)
    centres = np.array([[0, 0, 0], [8, 0, 0], [0, 8, 0], [0, 0, 8]], dtype=float)
    label = np.repeat(np.arange(4), n_per)
    return centres[label] + rng.normal(size=(4 * n_per, 3)), label


@pytest.mark.parametrize("sparse", [False, True])
def test_planted_signal_with_defaults(sparse):
    X, label = blobs(50, 0)
    Xt, label_t = blobs(25, 1)
    mu_q = np.where(np.arange(4)[None, :] == label[:, None], 0.9, 0.3)
    if sparse:
        X, Xt = sp.csr_matrix(np.maximum(X, 0)), sp.csr_matrix(np.maximum(Xt, 0))
    r = AvengersProRouter().fit(X, dars(mu_q, np.full_like(mu_q, 0.5)), seed=0)
    assert r.kmeans_.n_clusters == 32 and r.top_k_ == 3
    assert (r.route(Xt, 0.05, 0.2) == label_t).mean() >= 0.95


def test_caps_warn():
    with pytest.warns(UserWarning, match="n_clusters=32 exceeds the 4 training queries"):
        r = AvengersProRouter(top_k=2).fit(X_TWO, dars(MU_Q_TWO))
    assert r.kmeans_.n_clusters == 4 and r.top_k_ == 2
    # Every query is its own cluster: top_k = 1 returns the nearest query's targets.
    with pytest.warns(UserWarning, match="n_clusters"):
        r = AvengersProRouter(top_k=1).fit(X_TWO, dars(MU_Q_TWO))
    np.testing.assert_allclose(r.predict(X_TWO).mu_q, MU_Q_TWO, atol=1e-15)
    # Duplicated queries: fewer distinct points than clusters; empty clusters are never used.
    X = np.repeat(X_TWO[[0, 3]], 3, axis=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = AvengersProRouter(n_clusters=4, top_k=4).fit(X, dars(np.repeat(MU_Q_TWO[[0, 3]], 3, axis=0)))
    assert sorted(r.cluster_sizes_.tolist()) == [0, 0, 3, 3] and r.top_k_ == 2
    # Both non-empty clusters, plain mean; the empty ones (NaN means) never enter.
    np.testing.assert_allclose(r.predict(X).mu_q, 0.5, atol=1e-15)


def test_config_instantiates_with_spec_defaults():
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    r = instantiate(OmegaConf.load(ROOT / "conf/router/avengers_pro.yaml"))
    assert isinstance(r, AvengersProRouter)
    assert (r.n_clusters, r.n_init, r.max_iter, r.top_k) == (32, 10, 300, 3)
