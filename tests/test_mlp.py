"""Tests of the mlp router (docs/spec.md §5): planted signal, determinism, draws, missing targets."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.exceptions import ConvergenceWarning

from routers.mlp import MLPRouter
from supervision.modes import Targets

ROOT = Path(__file__).resolve().parents[1]


def planted(n: int, seed: int) -> tuple[np.ndarray, Targets, np.ndarray]:
    """Feature 0's sign decides whether model 0 or model 1 is best; model 2 is middling."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 6))
    pos = X[:, 0] > 0
    mu_q = np.stack([np.where(pos, 0.9, 0.1), np.where(pos, 0.1, 0.9), np.full(n, 0.5)], axis=1)
    mu_c = np.tile([0.2, 0.3, 0.1], (n, 1))
    sigma = np.tile([0.1, 0.2, 0.0], (n, 1))
    t = Targets("dars", mu_q, mu_c, sigma, True, np.full((n, 3), 25))
    return X, t, np.where(pos, 0, 1)


def test_planted_signal_is_learned():
    X, t, _ = planted(200, 0)
    X_test, _, best = planted(200, 1)
    r = MLPRouter().fit(X, t, lam=0.05, beta=0.2, seed=0)
    pred = r.predict(X_test)
    assert pred.mu_q.shape == (200, 3)
    hit = r.route(X_test, 0.05, 0.2) == best
    assert hit.mean() >= 0.85  # a fixed model gets 0.5
    assert hit[np.abs(X_test[:, 0]) > 0.5].all()  # away from the boundary: always right
    # mu_c and sigma_q are constant per model: the heads learn those constants.
    np.testing.assert_allclose(pred.mu_c.mean(axis=0), [0.2, 0.3, 0.1], atol=0.05)
    np.testing.assert_allclose(pred.sigma_q.mean(axis=0), [0.1, 0.2, 0.0], atol=0.05)


def test_same_seed_same_numbers_other_seed_other_numbers():
    X, t, _ = planted(60, 0)
    kw = dict(hidden=(16,), max_iter=40)
    a = MLPRouter(**kw).fit(X, t, seed=5).predict(X)
    b = MLPRouter(**kw).fit(X, t, seed=5).predict(X)
    c = MLPRouter(**kw).fit(X, t, seed=6).predict(X)
    np.testing.assert_array_equal(a.mu_q, b.mu_q)
    np.testing.assert_array_equal(a.sigma_q, b.sigma_q)
    assert not np.array_equal(a.mu_q, c.mu_q)


def single_shot_targets(n: int, d: int, seed: int) -> tuple[np.ndarray, Targets]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 5))
    shape = (d, n, 3)
    mu_q = (rng.random(shape) < 0.5).astype(float)
    t = Targets("single_shot", mu_q, rng.random(shape), np.zeros(shape), False, np.ones(shape, int))
    return X, t


def test_draws_parallel_equal_sequential_and_one_by_one():
    X, t = single_shot_targets(40, 3, 0)
    kw = dict(hidden=(16,), max_iter=30)
    seq = MLPRouter(n_jobs=1, **kw).fit(X, t, seed=10)
    par = MLPRouter(n_jobs=2, **kw).fit(X, t, seed=10)
    p_seq, p_par = seq.predict(X), par.predict(X)
    assert p_seq.mu_q.shape == (3, 40, 3)
    np.testing.assert_array_equal(p_seq.mu_q, p_par.mu_q)
    np.testing.assert_array_equal(p_seq.mu_c, p_par.mu_c)
    # Draw d is an ordinary fit on that draw's targets with seed + d.
    for d in range(3):
        one = MLPRouter(n_jobs=1, **kw).fit(X, t.draw(d), seed=10 + d).predict(X)
        np.testing.assert_array_equal(p_seq.mu_q[d], one.mu_q)
    np.testing.assert_array_equal(seq.route(X, 0.05, 0.2), par.route(X, 0.05, 0.2))


def test_zero_sigma_target_skips_the_third_head():
    X, t = single_shot_targets(30, 2, 1)
    r = MLPRouter(hidden=(8,), max_iter=20).fit(X, t, seed=0)
    assert len(r.members_) == 2
    assert all(m.heads_["sigma_q"] is None for m in r.members_)
    assert (r.predict(X).sigma_q == 0.0).all()
    X, t, _ = planted(30, 0)
    assert MLPRouter(hidden=(8,), max_iter=20).fit(X, t).members_[0].heads_["sigma_q"] is not None


def test_missing_targets_are_filled_with_a_warning():
    X, t, _ = planted(40, 0)
    mu_q = t.mu_q.copy()
    mu_q[:3, 1] = np.nan
    t = Targets("dars", mu_q, t.mu_c, np.where(np.isnan(mu_q), np.nan, t.sigma_q), True, t.n_obs)
    with pytest.warns(UserWarning, match="3 of 120 .* filled with that model's mean"):
        MLPRouter(hidden=(8,), max_iter=20).fit(X, t)


def test_convergence_is_recorded_not_shown():
    X, t, _ = planted(40, 0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        r = MLPRouter(hidden=(8,), max_iter=3).fit(X, t)
    assert not [w for w in caught if issubclass(w.category, ConvergenceWarning)]
    assert r.fit_report() == [
        {
            "draw": 0,
            "n_iter": {"mu_q": 3, "mu_c": 3, "sigma_q": 3},
            "converged": {"mu_q": False, "mu_c": False, "sigma_q": False},
        }
    ]
    X, t = single_shot_targets(30, 2, 1)
    report = MLPRouter(hidden=(8,), max_iter=500).fit(X, t).fit_report()
    assert [r["draw"] for r in report] == [0, 1]
    assert all(set(r["n_iter"]) == {"mu_q", "mu_c"} for r in report)  # no sigma head


def test_sparse_features():
    X, t, best = planted(200, 0)
    Xs = sp.csr_matrix(np.where(np.abs(X) > 0.5, X, 0.0))
    r = MLPRouter(max_iter=200).fit(Xs, t, seed=0)
    assert r.members_[0].scaler_.with_mean is False
    assert (r.route(Xs, 0.05, 0.2) == best).mean() >= 0.9


def test_config_instantiates_with_spec_defaults():
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    r = instantiate(OmegaConf.load(ROOT / "conf/router/mlp.yaml"))
    assert isinstance(r, MLPRouter)
    assert (r.hidden, r.alpha, r.lr, r.max_iter) == ((128, 64), 1e-4, 1e-3, 800)
