"""Tests of the rm_softmax router (docs/spec.md §5): regret loss, lambda conditioning, interface."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from benchmark.data.dataset import ObservationBlock
from routers.base import SignalRouter
from routers.rm_softmax import RMSoftmaxNet, RMSoftmaxRouter
from supervision.modes import Targets, make_targets

# Two topics, three models with normalised costs 1, 0.5, 0. Quality per topic:
#   A: 0.93 0.90 0.87  -> best at lam = 0: model 0; at lam = 0.1: u = .83 .85 .87 -> model 2
#   B: 0.87 0.93 0.90  -> best at lam = 0: model 1; at lam = 0.1: u = .77 .88 .90 -> model 2
QUALITY = np.array([[0.93, 0.90, 0.87], [0.87, 0.93, 0.90]])
COST = np.array([1.0, 0.5, 0.0])


def lambda_problem(n_train=200, n_test=60, d=8, seed=0):
    """Deterministic observations (every score equals the pair's quality)."""
    rng = np.random.default_rng(seed)

    def features(n):
        topic = rng.integers(0, 2, n)
        X = rng.normal(0.0, 0.2, (n, d))
        X[np.arange(n), topic] += 1.0
        return X, topic

    X_train, t_train = features(n_train)
    X_test, t_test = features(n_test)
    shape = (n_train, 3, 2, 2)
    score = np.broadcast_to(QUALITY[t_train][:, :, None, None], shape).copy()
    cost = np.broadcast_to(COST[None, :, None, None], shape).copy()
    block = ObservationBlock(score, cost, np.ones(shape, bool), np.arange(2), np.arange(2))
    return X_train, X_test, t_test, make_targets(block, "dars")


@pytest.fixture(scope="module")
def fitted():
    X_train, X_test, t_test, targets = lambda_problem()
    router = RMSoftmaxRouter().fit(X_train, targets, lam=0.05, beta=0.2, seed=0)  # the defaults of docs/spec.md
    return router, X_test, t_test


def test_decision_follows_the_cost_term(fitted):
    router, X_test, t_test = fitted
    at_zero = router.route(X_test, 0.0, 0.2)
    # lam = 0: the better model of the topic (0 for A, 1 for B).
    assert np.mean(at_zero == t_test) >= 0.95
    # lam = 0.1, the top of the training grid: cost dominates, the cheapest model everywhere.
    assert np.mean(router.route(X_test, 0.1, 0.2) == 2) >= 0.95


def test_lambda_outside_the_grid_is_extrapolated_with_a_warning(fitted):
    router, X_test, _ = fitted
    router.warned_lam_ = False
    with pytest.warns(UserWarning, match="outside the training grid"):
        far = router.route(X_test, 10.0, 0.2)
    # Here the network keeps the trend of the grid: everything goes to the cheapest model.
    assert np.mean(far == 2) >= 0.95


def test_interface(fitted):
    router, X_test, _ = fitted
    assert router.predicts_signals is False
    assert not isinstance(router, SignalRouter)
    s = router.scores(X_test, 0.05, 0.2)
    assert s.shape == (len(X_test), 3)
    np.testing.assert_allclose(s.sum(axis=1), 1.0, atol=1e-12)
    np.testing.assert_array_equal(s.argmax(axis=1), router.route(X_test, 0.05, 0.2))
    with pytest.warns(UserWarning, match="beta=0.2"):
        router.route(X_test, 0.05, 0.0)


def test_regret_loss_by_hand():
    # perf = mu_q - beta * sigma = [0.8, 0.6]; cost [1, 0]; grid [0, 0.5].
    # lam 0: u = [0.8, 0.6], regret [0, 0.2]; lam 0.5: u = [0.3, 0.6], regret [0.3, 0].
    mu_q = np.array([[0.9, 0.6, np.nan]])
    sigma = np.array([[0.5, 0.0, np.nan]])
    mu_c = np.array([[1.0, 0.0, np.nan]])  # model 2: no target, out of the softmax
    t = Targets("dars", mu_q, mu_c, sigma, True, np.ones((1, 3), int))
    router = RMSoftmaxRouter(hidden=(2,), lam_grid_min=0.0, lam_grid_max=0.5, lam_grid_size=2)
    data = router._draw_data(t, beta=0.2)
    examples = router._examples(data, np.arange(1))
    assert examples.tolist() == [[0, 0], [0, 1]]
    for temperature in (1.0, 2.0):
        net = RMSoftmaxNet(1, 3, hidden=(2,), temperature=temperature, lam_scale=2.0)
        with torch.no_grad():
            for p in net.parameters():
                p.zero_()
            net.body[-1][-1].bias.copy_(torch.tensor([0.0, math.log(3.0), 5.0]))
        z = np.array([0.0, math.log(3.0)]) / temperature
        p = np.exp(z) / np.exp(z).sum()
        expected = (p[1] * 0.2 + p[0] * 0.3) / 2  # 0.1125 at temperature 1
        with torch.no_grad():
            loss = net.loss(torch.zeros(1, 1), data, examples, None)
        assert float(loss) == pytest.approx(expected, rel=1e-6)


def test_ties_go_to_pool_order_and_unseen_models_never_win():
    X_train, X_test, _, targets = lambda_problem(n_train=20, n_test=5)
    mu_c = targets.mu_c.copy()
    mu_c[:, 0] = np.nan  # model 0 has no cost target: its utility is never defined
    t = Targets("dars", targets.mu_q, mu_c, targets.sigma_q, True, targets.n_obs)
    router = RMSoftmaxRouter(hidden=(4,), training={"epochs": 1}).fit(X_train, t, seed=0)
    net = router.nets_[0]
    assert net.available.tolist() == [False, True, True]
    with torch.no_grad():
        for p in net.parameters():
            p.zero_()  # every logit 0: a tie between the available models
    assert router.route(X_test, 0.05, 0.2).tolist() == [1] * 5
    assert np.isneginf(router.logits(X_test, 0.05)[:, 0]).all()


def test_single_shot_draws_shapes():
    X_train, X_test, _, _ = lambda_problem(n_train=20, n_test=5)
    rng = np.random.default_rng(0)
    shape = (20, 3, 2, 2)
    block = ObservationBlock(
        rng.random(shape), rng.random(shape), np.ones(shape, bool), np.arange(2), np.arange(2)
    )
    targets = make_targets(block, "single_shot", n_draws=2, seed=0)
    router = RMSoftmaxRouter(hidden=(4,), training={"epochs": 1}).fit(X_train, targets, beta=0.2, seed=0)
    assert router.fit_beta_ == 0.0  # single_shot has no risk term
    assert router.route(X_test, 0.05, 0.0).shape == (2, 5)
    assert router.scores(X_test, 0.05, 0.0).shape == (2, 5, 3)
