"""Tests of the mlp router (docs/spec.md §5): planted signal, determinism, draws, missing targets,
and the stacked trainer (routers.mlp.fit_mlp_stack) against scikit-learn's MLPRegressor."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.exceptions import ConvergenceWarning

from sklearn.neural_network import MLPRegressor
from threadpoolctl import threadpool_limits

from routers.mlp import N_ITER_NO_CHANGE, TOL, MLPRouter, fit_mlp_stack, init_params
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


@pytest.mark.parametrize("impl", ["vectorised", "sklearn"])
def test_draws_parallel_equal_sequential_and_one_by_one(impl):
    X, t = single_shot_targets(40, 3, 0)
    kw = dict(hidden=(16,), max_iter=30, impl=impl)
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


def test_vectorised_router_equals_sklearn_router_bitwise():
    """Default impl vs the reference: same predictions, epochs and convergence, every draw."""
    X, t, _ = planted(60, 0)
    rng = np.random.default_rng(3)
    X_test = rng.normal(size=(25, 6))
    kw = dict(hidden=(12, 6), max_iter=150)
    vec = MLPRouter(**kw).fit(X, t, seed=4)
    ref = MLPRouter(impl="sklearn", **kw).fit(X, t, seed=4)
    assert "stack_" in vars(vec) and "members_" not in vars(vec)
    for a, b in zip(vars(vec.predict(X_test)).values(), vars(ref.predict(X_test)).values()):
        np.testing.assert_array_equal(a, b)
    assert vec.fit_report() == ref.fit_report()
    Xd, td = single_shot_targets(50, 4, 2)
    vec = MLPRouter(**kw).fit(Xd, td, seed=7)
    ref = MLPRouter(impl="sklearn", **kw).fit(Xd, td, seed=7)
    np.testing.assert_array_equal(vec.predict(Xd).mu_q, ref.predict(Xd).mu_q)
    np.testing.assert_array_equal(vec.predict(Xd).mu_c, ref.predict(Xd).mu_c)
    assert vec.fit_report() == ref.fit_report()
    with pytest.raises(ValueError, match="impl must be one of"):
        MLPRouter(impl="torch").fit(X, t)


def test_zero_sigma_target_skips_the_third_head():
    X, t = single_shot_targets(30, 2, 1)
    r = MLPRouter(hidden=(8,), max_iter=20).fit(X, t, seed=0)
    assert r.net_index_.tolist() == [[0, 1, -1], [2, 3, -1]]  # no sigma_q network
    assert len(r.stack_.n_iter) == 4
    assert (r.predict(X).sigma_q == 0.0).all()
    ref = MLPRouter(hidden=(8,), max_iter=20, impl="sklearn").fit(X, t, seed=0)
    assert len(ref.members_) == 2
    assert all(m.heads_["sigma_q"] is None for m in ref.members_)
    X, t, _ = planted(30, 0)
    assert MLPRouter(hidden=(8,), max_iter=20).fit(X, t).net_index_.tolist() == [[0, 1, 2]]


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
    assert r.scaler_.with_mean is False
    assert (r.route(Xs, 0.05, 0.2) == best).mean() >= 0.9
    # scipy's sparse products per network, as MLPRegressor computes them: bit-identical
    ref = MLPRouter(max_iter=60, impl="sklearn").fit(Xs, t, seed=0)
    np.testing.assert_array_equal(
        MLPRouter(max_iter=60).fit(Xs, t, seed=0).predict(Xs).mu_q, ref.predict(Xs).mu_q
    )


def test_config_instantiates_with_spec_defaults():
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    r = instantiate(OmegaConf.load(ROOT / "conf/router/mlp.yaml"))
    assert isinstance(r, MLPRouter)
    assert (r.hidden, r.alpha, r.lr, r.max_iter, r.impl) == ((128, 64), 1e-4, 1e-3, 800, "vectorised")


# ------------------------------------------------------------------ the stacked trainer
def sklearn_fit(X, y, seed, **kw):
    """The reference: one MLPRegressor, one BLAS thread; returns it and its convergence."""
    est = MLPRegressor(hidden_layer_sizes=kw["hidden"], alpha=kw.get("alpha", 1e-4),
                       learning_rate_init=kw.get("lr", 1e-3), max_iter=kw["max_iter"],
                       random_state=seed)  # fmt: skip
    with threadpool_limits(limits=1), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        est.fit(X, y)
    return est, not any(issubclass(w.category, ConvergenceWarning) for w in caught)


def assert_stack_equals_sklearn(X, Y, seeds, **kw):
    stack = fit_mlp_stack(X, Y, seeds, **kw)
    pred = stack.predict(X)
    for k, seed in enumerate(seeds):
        est, converged = sklearn_fit(X, Y[k], seed, **kw)
        for i, (c, b) in enumerate(zip(est.coefs_, est.intercepts_)):
            np.testing.assert_array_equal(stack.coefs[i][k], c, err_msg=f"net {k} layer {i}")
            np.testing.assert_array_equal(stack.intercepts[i][k], b, err_msg=f"net {k} layer {i}")
        np.testing.assert_array_equal(stack.loss_curves[k], est.loss_curve_)
        assert stack.n_iter[k] == est.n_iter_ and stack.converged[k] == converged
        with threadpool_limits(limits=1):
            np.testing.assert_array_equal(pred[k], est.predict(X).reshape(X.shape[0], -1))
    return stack


def test_stack_equals_sklearn_bitwise_shared_and_distinct_seeds():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 5))
    Y = np.stack([rng.random((40, 3)), (rng.random((40, 3)) < 0.5) * 1.0, rng.random((40, 3))])
    # networks 0 and 1 share seed 3 (two heads of one draw), network 2 has its own
    assert_stack_equals_sklearn(X, Y, [3, 3, 4], hidden=(8, 4), max_iter=60)


def test_stack_equals_sklearn_with_several_batches_and_one_output():
    """n = 230 > 200: two mini-batches per epoch (200 + 30), the sample order carried over
    epochs; one output column (sklearn ravels y)."""
    rng = np.random.default_rng(1)
    X = rng.normal(size=(230, 4))
    Y = rng.random((2, 230, 1))
    assert_stack_equals_sklearn(X, Y, [0, 9], hidden=(6,), max_iter=25, alpha=1e-2, lr=3e-3)


def test_stack_equals_sklearn_on_sparse_features():
    X = sp.random(35, 60, density=0.1, format="csr", random_state=2)
    Y = np.random.default_rng(2).random((2, 35, 2))
    assert_stack_equals_sklearn(X, Y, [5, 6], hidden=(8,), max_iter=20)


def stopping_epoch(curve: np.ndarray) -> int | None:
    """The stopping rule by hand: the first epoch (1-based) after which the loss has failed to
    beat the best loss so far by TOL more than N_ITER_NO_CHANGE epochs in a row."""
    best, count = np.inf, 0
    for epoch, loss in enumerate(curve, start=1):
        count = count + 1 if loss > best - TOL else 0
        best = min(best, loss)
        if count > N_ITER_NO_CHANGE:
            return epoch
    return None


def test_stopping_rule_is_per_network():
    """A network with a constant target plateaus and stops early; one with a large-scale
    target keeps improving by more than TOL and runs to max_iter; both are sklearn's fits."""
    rng = np.random.default_rng(4)
    X = rng.normal(size=(30, 3))
    Y = np.stack([np.full((30, 2), 0.5), 50.0 * X[:, :2] ** 2])
    stack = assert_stack_equals_sklearn(X, Y, [1, 2], hidden=(5,), max_iter=120, lr=1e-2)
    assert stack.n_iter[0] < 120 and stack.converged[0]
    assert stack.n_iter[1] == 120 and not stack.converged[1]
    assert stopping_epoch(stack.loss_curves[0]) == stack.n_iter[0]
    assert stopping_epoch(stack.loss_curves[1]) is None
    # frozen: the stopped network's weights are those of its last epoch, not of epoch 120
    alone = fit_mlp_stack(X, Y[:1], [1], hidden=(5,), max_iter=120, lr=1e-2)
    np.testing.assert_array_equal(alone.coefs[0][0], stack.coefs[0][0])


def test_initial_weights_are_sklearns_glorot_draws():
    """Per layer: U(-b, b) weights then intercepts, b = sqrt(6 / (fan_in + fan_out)), from
    RandomState(seed) in that order; equal to sklearn's own initialisation."""
    w, b = init_params(np.random.RandomState(7), [3, 3, 2])
    rs = np.random.RandomState(7)
    np.testing.assert_array_equal(w[0], rs.uniform(-1.0, 1.0, (3, 3)))  # sqrt(6 / 6) = 1
    np.testing.assert_array_equal(b[0], rs.uniform(-1.0, 1.0, 3))
    bound = np.sqrt(6.0 / 5.0)
    np.testing.assert_array_equal(w[1], rs.uniform(-bound, bound, (3, 2)))
    np.testing.assert_array_equal(b[1], rs.uniform(-bound, bound, 2))
    assert np.abs(w[1]).max() <= bound
    est = MLPRegressor(hidden_layer_sizes=(3,), random_state=7)
    est._random_state = np.random.RandomState(7)  # what fit() sets before _initialize
    est._initialize(np.zeros((4, 2)), [3, 3, 2], np.float64)
    for mine, theirs in zip(w + b, est.coefs_ + est.intercepts_):
        np.testing.assert_array_equal(mine, theirs)


def test_stack_rejects_bad_targets_and_seeds():
    X = np.zeros((4, 2))
    with pytest.raises(ValueError, match=r"targets must be \[K, 4, m\]"):
        fit_mlp_stack(X, np.zeros((4, 1)), [0])
    with pytest.raises(ValueError, match="NaN or infinite"):
        fit_mlp_stack(X, np.full((1, 4, 1), np.nan), [0])
    with pytest.raises(ValueError, match="2 seeds for 1 networks"):
        fit_mlp_stack(X, np.zeros((1, 4, 1)), [0, 1])
