"""Tests of the knn router (docs/spec.md §5): hand-computed weights, exact matches, sparse, draws, NaN."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from routers.base import Router, SignalRouter
from routers.knn import KNNRouter
from supervision.modes import Targets

ROOT = Path(__file__).resolve().parents[1]


def make_targets(mu_q, mu_c=None, sigma_q=None, mode="dars") -> Targets:
    mu_q = np.asarray(mu_q, dtype=float)
    mu_c = np.zeros_like(mu_q) if mu_c is None else np.asarray(mu_c, dtype=float)
    sigma_q = np.zeros_like(mu_q) if sigma_q is None else np.asarray(sigma_q, dtype=float)
    return Targets(mode, mu_q, mu_c, sigma_q, mode != "single_shot", np.ones(mu_q.shape, int))


# Three training points on a line and two models.
X_LINE = np.array([[0.0], [1.0], [3.0]])
MU_Q_LINE = np.array([[1.0, 0.0], [0.5, 0.5], [0.0, 1.0]])


def test_hand_computed_two_neighbours():
    # x = 0.4: distances 0.4, 0.6, 2.6 -> neighbours 0 and 1 with weights 1/0.4 : 1/0.6 = 0.6 : 0.4.
    r = KNNRouter(k=2, eps=0.0).fit(X_LINE, make_targets(MU_Q_LINE))
    pred = r.predict(np.array([[0.4]]))
    np.testing.assert_allclose(pred.mu_q, [[0.8, 0.2]], atol=1e-12)
    # With the default eps the weights are 1/(d + 1e-8): the same to ~1e-8.
    r = KNNRouter(k=2).fit(X_LINE, make_targets(MU_Q_LINE))
    np.testing.assert_allclose(r.predict(np.array([[0.4]])).mu_q, [[0.8, 0.2]], atol=1e-7)
    # x = 2.5: distances 2.5, 1.5, 0.5 -> neighbours 2 and 1, weights 2 : 2/3 = 0.75 : 0.25.
    np.testing.assert_allclose(
        KNNRouter(k=2, eps=0.0).fit(X_LINE, make_targets(MU_Q_LINE)).predict(np.array([[2.5]])).mu_q,
        [[0.125, 0.875]],
        atol=1e-12,
    )


def test_all_three_signals_use_the_same_weights():
    mu_c = np.array([[0.2], [0.4], [0.9]])
    sigma = np.array([[0.1], [0.3], [0.0]])
    t = make_targets(MU_Q_LINE[:, :1], mu_c, sigma)
    pred = KNNRouter(k=2, eps=0.0).fit(X_LINE, t).predict(np.array([[0.4]]))
    np.testing.assert_allclose(pred.mu_q, [[0.8]], atol=1e-12)
    np.testing.assert_allclose(pred.mu_c, [[0.6 * 0.2 + 0.4 * 0.4]], atol=1e-12)
    np.testing.assert_allclose(pred.sigma_q, [[0.6 * 0.1 + 0.4 * 0.3]], atol=1e-12)


def test_distance_ties_go_to_lower_training_index():
    r = KNNRouter(k=1).fit(X_LINE, make_targets(MU_Q_LINE))
    idx, dist = r.kneighbors(np.array([[0.5], [2.0]]))
    assert idx[:, 0].tolist() == [0, 1]  # 0.5 is equidistant to 0 and 1; 2.0 to 1 and 3
    np.testing.assert_allclose(dist[:, 0], [0.5, 1.0])


def test_exact_match_takes_all_the_weight():
    r = KNNRouter(k=3).fit(X_LINE, make_targets(MU_Q_LINE))
    np.testing.assert_array_equal(r.predict(np.array([[1.0]])).mu_q, [[0.5, 0.5]])
    # Two exact matches (duplicated training query) share the weight equally.
    X = np.array([[0.0], [1.0], [1.0], [3.0]])
    mu_q = np.array([[1.0, 0.0], [0.2, 0.6], [0.6, 0.2], [0.0, 1.0]])
    pred = KNNRouter(k=4).fit(X, make_targets(mu_q)).predict(np.array([[1.0]]))
    np.testing.assert_allclose(pred.mu_q, [[0.4, 0.4]], atol=1e-15)
    # A neighbour within eps counts as an exact match; one just beyond it does not.
    r = KNNRouter(k=3, eps=1e-3).fit(X_LINE, make_targets(MU_Q_LINE))
    np.testing.assert_array_equal(r.predict(np.array([[1.0005]])).mu_q, [[0.5, 0.5]])
    assert r.predict(np.array([[1.002]])).mu_q[0, 0] != 0.5


def test_exact_match_on_high_dimensional_identical_vectors():
    # |x|^2 + |y|^2 - 2 x.y is not exactly 0 in floating point; the direct distance is.
    rng = np.random.default_rng(3)
    X = rng.normal(size=(30, 384)) * 7.3
    mu_q = rng.random((30, 4))
    r = KNNRouter().fit(X, make_targets(mu_q))
    _, dist = r.kneighbors(X)
    assert (dist[:, 0] == 0.0).all()
    np.testing.assert_array_equal(r.predict(X).mu_q, mu_q)


def brute_force(X_train, values, X_test, k, eps):
    """Pure-python reference: values [Q, M] (NaN = missing), returns [n, M]."""
    out = []
    for x in X_test:
        d = sorted((math.dist(x, y), j) for j, y in enumerate(X_train))[:k]
        row = []
        for m in range(values.shape[1]):
            nb = [(dj, j) for dj, j in d if not math.isnan(values[j, m])]
            exact = [(dj, j) for dj, j in nb if dj <= eps]
            use = [(1.0, j) for _, j in exact] if exact else [(1.0 / (dj + eps), j) for dj, j in nb]
            row.append(sum(w * values[j, m] for w, j in use) / sum(w for w, _ in use))
        out.append(row)
    return np.array(out)


@pytest.mark.parametrize("sparse", [False, True])
def test_matches_brute_force(sparse):
    rng = np.random.default_rng(0)
    # Continuous features: no two distances tie mathematically, so the reference's exact
    # arithmetic and the router's floating point rank neighbours alike (ties: tests above).
    X_train = rng.normal(size=(25, 5))
    X_test = np.vstack([rng.normal(size=(10, 5)), X_train[[3, 7]]])
    mu_q = rng.random((25, 3))
    mu_q[rng.random((25, 3)) < 0.2] = np.nan
    expected = brute_force(X_train, mu_q, X_test, k=4, eps=1e-8)
    to = sp.csr_matrix if sparse else np.asarray
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no fallback warning expected here
        r = KNNRouter(k=4).fit(to(X_train), make_targets(mu_q))
        pred = r.predict(to(X_test))
    np.testing.assert_allclose(pred.mu_q, np.clip(expected, 0, 1), rtol=1e-12, atol=1e-12)


def test_sparse_equals_dense():
    rng = np.random.default_rng(1)
    X = rng.random((40, 30)) * (rng.random((40, 30)) < 0.2)
    Xt = rng.random((15, 30)) * (rng.random((15, 30)) < 0.2)
    t = make_targets(rng.random((40, 5)), rng.random((40, 5)), rng.random((40, 5)))
    dense = KNNRouter(k=6).fit(X, t).predict(Xt)
    sparse = KNNRouter(k=6).fit(sp.csr_matrix(X), t).predict(sp.csr_matrix(Xt))
    mixed = KNNRouter(k=6).fit(sp.csr_matrix(X), t).predict(Xt)
    for a, b, c in zip(
        (dense.mu_q, dense.mu_c, dense.sigma_q),
        (sparse.mu_q, sparse.mu_c, sparse.sigma_q),
        (mixed.mu_q, mixed.mu_c, mixed.sigma_q),
    ):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
        np.testing.assert_array_equal(b, c)


def test_draws_batched_equal_one_by_one():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(60, 8))
    Xt = np.vstack([rng.normal(size=(20, 8)), X[:3]])
    D, M = 7, 4
    mu_q = rng.random((D, 60, M))
    mu_q[rng.random(mu_q.shape) < 0.1] = np.nan
    mu_c = np.where(np.isnan(mu_q), np.nan, rng.random((D, 60, M)))
    sigma = np.where(np.isnan(mu_q), np.nan, 0.0)
    t = Targets("single_shot", mu_q, mu_c, sigma, False, (~np.isnan(mu_q)).astype(int))
    batched = KNNRouter(k=5).fit(X, t, seed=3)
    pred = batched.predict(Xt)
    assert pred.mu_q.shape == (D, 23, M)
    # The base class's one-router-per-draw path on the same router.
    seq = KNNRouter(k=5)
    Router._fit_draws(seq, X, t, lam=0.05, beta=0.0, seed=3)
    ref = SignalRouter._predict_draws(seq, Xt).clipped()
    # And each draw fitted as an ordinary non-draw router.
    single = [KNNRouter(k=5).fit(X, t.draw(d)).predict(Xt) for d in range(D)]
    for name in ("mu_q", "mu_c", "sigma_q"):
        np.testing.assert_allclose(getattr(pred, name), getattr(ref, name), rtol=1e-13, atol=1e-15)
        np.testing.assert_allclose(
            getattr(pred, name), np.stack([getattr(s, name) for s in single]), rtol=1e-13, atol=1e-15
        )
    routes = batched.route(Xt, 0.05, 0.0)
    assert routes.shape == (D, 23)
    np.testing.assert_array_equal(routes, np.stack([s.select(0.05, 0.0) for s in single]))


def test_nan_targets_renormalise_over_finite_neighbours():
    mu_q = np.array([[np.nan, 0.0], [0.5, 0.5], [0.0, 1.0]])
    r = KNNRouter(k=2, eps=0.0).fit(X_LINE, make_targets(mu_q))
    # Model 0: only neighbour 1 (d=0.6) is finite -> 0.5. Model 1: 0.6*0 + 0.4*0.5.
    np.testing.assert_allclose(r.predict(np.array([[0.4]])).mu_q, [[0.5, 0.2]], atol=1e-12)
    # An exact match with a NaN target gives way to the other neighbours for that model only.
    pred = KNNRouter(k=2, eps=0.0).fit(X_LINE, make_targets(mu_q)).predict(np.array([[0.0]]))
    np.testing.assert_allclose(pred.mu_q, [[0.5, 0.0]], atol=1e-12)


def test_no_finite_neighbour_falls_back_to_model_mean_with_warning():
    mu_q = np.array([[np.nan, 0.0], [np.nan, 0.5], [0.9, 1.0]])
    r = KNNRouter(k=2).fit(X_LINE, make_targets(mu_q))
    with pytest.warns(UserWarning, match="1 of .* no neighbour with a finite target"):
        pred = r.predict(np.array([[0.4]]))
    assert pred.mu_q[0, 0] == pytest.approx(0.9)  # mean of model 0's finite targets


def test_model_without_any_target_is_an_error():
    mu_q = np.array([[np.nan, 0.0], [np.nan, 0.5], [np.nan, 1.0]])
    with pytest.raises(ValueError, match="model 0 has no training target 'mu_q'"):
        KNNRouter(k=2).fit(X_LINE, make_targets(mu_q))


def test_k_is_capped_at_training_size_with_warning():
    with pytest.warns(UserWarning, match="k=16 exceeds the 3 training queries"):
        r = KNNRouter().fit(X_LINE, make_targets(MU_Q_LINE))
    assert r.k_ == 3
    # All three neighbours: x = 0.4 -> weights 1/0.4, 1/0.6, 1/2.6.
    w = np.array([1 / 0.4, 1 / 0.6, 1 / 2.6]) / (1 / 0.4 + 1 / 0.6 + 1 / 2.6)
    np.testing.assert_allclose(r.predict(np.array([[0.4]])).mu_q[0], w @ MU_Q_LINE, atol=1e-7)


def test_bad_features_are_errors():
    r = KNNRouter(k=2).fit(X_LINE, make_targets(MU_Q_LINE))
    with pytest.raises(ValueError, match="2 feature columns, the router was fitted on 1"):
        r.predict(np.zeros((1, 2)))
    with pytest.raises(ValueError, match="NaN or infinite"):
        r.predict(np.array([[np.nan]]))
    with pytest.raises(ValueError, match="k must be >= 1"):
        KNNRouter(k=0)


def test_config_instantiates_with_spec_defaults():
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    r = instantiate(OmegaConf.load(ROOT / "conf/router/knn.yaml"))
    assert isinstance(r, KNNRouter) and (r.k, r.eps) == (16, 1e-8)
