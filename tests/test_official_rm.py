"""Official RM recipe (issue 15): lambda-major rows and labels, the classification and softmax
losses on hand-computed 2-model cases, initialisation, fit statistics, routing."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from routers.official.rm_softmax import OfficialRMRouter, rm_loss, rm_rows
from supervision.modes import Targets


def _targets(mu_q, mu_c, sigma=None, models=("m_a", "m_b")):
    mu_q, mu_c = np.asarray(mu_q, float), np.asarray(mu_c, float)
    sigma = np.zeros_like(mu_q) if sigma is None else np.asarray(sigma, float)
    return Targets("dars", mu_q, mu_c, sigma, True, np.ones(mu_q.shape, np.int64), tuple(models))


def test_rows_are_lambda_major_with_argmax_labels():
    f = np.array([[1.0, 2.0], [3.0, 4.0]])
    perf = np.array([[0.9, 0.5], [0.2, 0.3]])
    cost = np.array([[0.8, 0.1], [0.0, 0.0]])
    x, labels, u = rm_rows(f, perf, cost, np.array([0.0, 1.0]))
    # rows: (q0, lam 0), (q1, lam 0), (q0, lam 1), (q1, lam 1)
    np.testing.assert_array_equal(x, [[1, 2, 0], [3, 4, 0], [1, 2, 1], [3, 4, 1]])
    np.testing.assert_allclose(u, [[0.9, 0.5], [0.2, 0.3], [0.1, 0.4], [0.2, 0.3]], atol=1e-7)
    assert labels.tolist() == [0, 1, 1, 1]
    # a tie goes to the first column
    assert rm_rows(f[:1], [[0.5, 0.5]], [[0.0, 0.0]], np.array([0.0]))[1].tolist() == [0]


def test_classification_and_softmax_losses_by_hand():
    logits = torch.tensor([[0.0, math.log(3.0)], [0.0, math.log(3.0)]])  # softmax (1/4, 3/4)
    u = torch.tensor([[0.9, 0.5], [0.2, 0.3]])
    labels = torch.tensor([0, 1])
    # cross-entropy: (-log 1/4 - log 3/4) / 2
    ce = rm_loss(logits, labels, u, "classification", 1.0)
    assert float(ce) == pytest.approx((math.log(4) + math.log(4 / 3)) / 2, rel=1e-6)
    # expected regret: row 0 regrets (0, 0.4) -> 0.75 * 0.4 = 0.3; row 1 (0.1, 0) -> 0.025
    sm = rm_loss(logits, labels, u, "softmax", 1.0)
    assert float(sm) == pytest.approx((0.3 + 0.025) / 2, rel=1e-6)
    # temperature 2: softmax(z / 2) = (1 / (1 + sqrt 3), sqrt 3 / (1 + sqrt 3))
    p1 = math.sqrt(3) / (1 + math.sqrt(3))
    assert float(rm_loss(logits, labels, u, "softmax", 2.0)) == pytest.approx((p1 * 0.4 + (1 - p1) * 0.1) / 2, rel=1e-6)
    with pytest.raises(ValueError, match="loss"):
        OfficialRMRouter(loss="hinge")


def test_lambda_grid_and_init_order():
    r = OfficialRMRouter()
    np.testing.assert_allclose(r.lambdas(0.05), np.linspace(0, 0.1, 11), atol=1e-8)
    np.testing.assert_allclose(r.lambdas(0.2), np.linspace(0, 0.2, 11), atol=1e-8)
    X = np.random.default_rng(0).normal(size=(6, 3))
    q = np.random.default_rng(1).random((6, 2))
    fitted = OfficialRMRouter(hidden=(4,), epochs=0).fit(X, _targets(q, q), seed=42)
    net = fitted.members_[0].net_
    torch.manual_seed(42)
    l1, l2 = nn.Linear(4, 4), nn.Linear(4, 2)  # [features, lambda] -> 4 -> 2 models
    assert torch.equal(net[0].weight, l1.weight) and torch.equal(net[2].weight, l2.weight)


def test_classification_fit_stats_and_routing_on_a_two_model_case():
    # Query feature x: model a is best for x < 0, model b for x > 0, at every lambda (costs 0).
    X = np.linspace(-1, 1, 10)[:, None]
    mu_q = np.where(X < 0, [[0.9, 0.1]], [[0.1, 0.9]])
    r = OfficialRMRouter(loss="classification", hidden=(16,), epochs=60, batch_size=16, lr=1e-2)
    r.fit(X, _targets(mu_q, np.zeros_like(mu_q)), lam=0.05, seed=0)
    assert r.route(X, 0.05, 0.0).tolist() == [0] * 5 + [1] * 5
    stats = r.members_[0].fit_stats_
    # stats over the 110 (query, lambda) rows: all labels learnt, no regret
    assert stats["train_target_accuracy"] == 1.0 and stats["train_avg_regret"] == 0.0
    assert len(r.members_[0].train_loss_) == 60 and stats["train_loss"] == r.members_[0].train_loss_[-1]
    p = r.scores(X, 0.05, 0.0)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-6)
    # another seed: the same decisions here, other weights
    other = OfficialRMRouter(loss="classification", hidden=(16,), epochs=60, batch_size=16, lr=1e-2)
    other.fit(X, _targets(mu_q, np.zeros_like(mu_q)), lam=0.05, seed=1)
    assert not np.array_equal(other.scores(X, 0.05, 0.0), p)
    again = OfficialRMRouter(loss="classification", hidden=(16,), epochs=60, batch_size=16, lr=1e-2)
    np.testing.assert_array_equal(again.fit(X, _targets(mu_q, np.zeros_like(mu_q)), lam=0.05, seed=0).scores(X, 0.05, 0.0), p)


def test_accuracy_and_regret_stats_by_hand():
    # Zero epochs: the untrained net's choices; recompute accuracy and regret from the rows.
    X = np.random.default_rng(3).normal(size=(5, 2))
    q = np.random.default_rng(4).random((5, 2))
    c = np.random.default_rng(5).random((5, 2))
    r = OfficialRMRouter(hidden=(3,), epochs=0, column_order="pool").fit(X, _targets(q, c), lam=0.05, beta=0.0, seed=2)
    m = r.members_[0]
    x, labels, u = rm_rows(X, q, c, r.lambdas(0.05))
    with torch.no_grad():
        chosen = m.net_(torch.from_numpy(x)).argmax(dim=1).numpy()
    assert m.fit_stats_["train_target_accuracy"] == pytest.approx(np.mean(chosen == labels))
    assert m.fit_stats_["train_avg_regret"] == pytest.approx(np.mean(u.max(axis=1) - u[np.arange(len(u)), chosen]), rel=1e-6)
