"""Official GraphRouter recipe (issue 15): edge-MLP shapes and formula, initialisation order,
description lookup and its error, per-seed determinism, MiniLM description features."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from routers.official.graphrouter import EdgeNet, OfficialGraphRouter, description_texts
from supervision.modes import Targets

MODELS = ["m_a", "m_b", "m_c"]
DESC = {"m_a": "A small model.", "m_b": "A big model.", "m_c": "A code model."}


def _targets(mu_q, mu_c, sigma=None, models=MODELS, draws=False):
    mu_q, mu_c = np.asarray(mu_q, float), np.asarray(mu_c, float)
    sigma = np.zeros_like(mu_q) if sigma is None else np.asarray(sigma, float)
    return Targets("single_shot" if draws else "dars", mu_q, mu_c, sigma, not draws,
                   np.ones(mu_q.shape, np.int64), tuple(models))


def _toy(n=12, d=5, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)), rng.random((n, 3)), rng.random((n, 3)), rng.random((n, 3)) / 4


def test_edge_net_layer_shapes_and_init_order():
    torch.manual_seed(3)
    net = EdgeNet(d_query=5, d_model=7, dim=4, hidden=(6, 3))
    shapes = [tuple(p.shape) for p in net.parameters()]
    # query_proj 5->4, model_proj 7->4, edge MLP 16->6->3->3 (4 * dim = 16 edge inputs)
    assert shapes == [(4, 5), (4,), (4, 7), (4,), (6, 16), (6,), (3, 6), (3,), (3, 3), (3,)]
    torch.manual_seed(3)
    refs = [nn.Linear(5, 4), nn.Linear(7, 4), nn.Linear(16, 6), nn.Linear(6, 3), nn.Linear(3, 3)]
    mine = [net.query_proj, net.model_proj, net.edge_mlp[0], net.edge_mlp[2], net.edge_mlp[4]]
    for a, b in zip(mine, refs):
        assert torch.equal(a.weight, b.weight) and torch.equal(a.bias, b.bias)


def test_edge_net_forward_by_hand():
    # dim 1, no hidden layer: out = w . [q, m, q*m, |q-m|] + b with q = relu(a x), m = relu(c z).
    net = EdgeNet(d_query=1, d_model=1, dim=1, hidden=())
    with torch.no_grad():
        net.query_proj.weight.fill_(2.0), net.query_proj.bias.fill_(0.0)
        net.model_proj.weight.fill_(1.0), net.model_proj.bias.fill_(-1.0)
        net.edge_mlp[0].weight.copy_(torch.tensor([[1.0, 10.0, 100.0, 1000.0]] * 3))
        net.edge_mlp[0].bias.copy_(torch.tensor([0.0, 1.0, 2.0]))
    out = net(torch.tensor([[1.0], [-1.0]]), torch.tensor([[4.0], [0.5]])).detach().numpy()
    # q: relu(2)=2, relu(-2)=0; m: relu(3)=3, relu(-0.5)=0
    # (q=2, m=3): 2 + 30 + 600 + 1000 = 1632; (2, 0): 2 + 0 + 0 + 2000 = 2002
    # (0, 3): 0 + 30 + 0 + 3000 = 3030; (0, 0): 0
    assert out.shape == (2, 2, 3)
    np.testing.assert_allclose(out[:, :, 0], [[1632, 2002], [3030, 0]])
    np.testing.assert_allclose(out[:, :, 2] - out[:, :, 0], 2.0)


def test_description_texts_lookup_fallback_and_error():
    assert description_texts(["m_b", "m_a"], "generic", DESC, None) == ["m_b. A big model.", "m_a. A small model."]
    assert description_texts(["m_b", "x"], "name", None, None) == ["m_b", "x"]
    assert description_texts(["x"], "generic", DESC, "Large language model.") == ["x. Large language model."]
    with pytest.raises(KeyError, match=r"\['x', 'y'\].*router.descriptions"):
        description_texts(["m_a", "x", "y"], "generic", DESC, None)
    with pytest.raises(ValueError, match="description_source"):
        description_texts(["m_a"], "pool", DESC, None)


def test_missing_description_fails_before_training():
    X, q, c, s = _toy()
    r = OfficialGraphRouter(descriptions={"m_a": "A."}, epochs=1)
    with pytest.raises(KeyError, match=r"\['m_b', 'm_c'\]"):
        r.fit(X, _targets(q, c, s))


def test_description_features_are_minilm_unit_vectors():
    r = OfficialGraphRouter(descriptions=DESC)
    f = r.model_features(MODELS)
    assert f.shape == (3, 384) and f.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(f, axis=1), 1.0, atol=1e-5)
    assert not np.allclose(f[0], f[1])
    # name-only descriptions are other texts, so other embeddings
    assert not np.allclose(OfficialGraphRouter(description_source="name").model_features(MODELS), f)


def test_per_seed_determinism_and_draw_seeds():
    X, q, c, s = _toy()
    kw = {"dim": 8, "hidden": (8,), "epochs": 4, "batch_size": 5, "descriptions": DESC}
    a = OfficialGraphRouter(**kw).fit(X, _targets(q, c, s), seed=42).predict(X)
    b = OfficialGraphRouter(**kw).fit(X, _targets(q, c, s), seed=42).predict(X)
    other = OfficialGraphRouter(**kw).fit(X, _targets(q, c, s), seed=43).predict(X)
    np.testing.assert_array_equal(a.mu_q, b.mu_q)
    np.testing.assert_array_equal(a.sigma_q, b.sigma_q)
    assert not np.array_equal(a.mu_q, other.mu_q)
    # Single-shot draw d trains with seed + d: draw 1 equals a one-draw fit with seed 43.
    draws = _targets(np.stack([q, q[::-1]]), np.stack([c, c]), np.zeros((2, 12, 3)), draws=True)
    r = OfficialGraphRouter(**kw).fit(X, draws, seed=42)
    one = OfficialGraphRouter(**kw).fit(X, _targets(q[::-1], c), seed=43).predict(X)
    np.testing.assert_array_equal(r.predict(X).mu_q[1], one.mu_q)
    # 12 queries in batches of 5: 3 steps an epoch; the per-epoch loss and the final MSE are kept
    m = r.members_[0]
    assert len(m.train_loss_) == 4 and m.fit_stats_["train_mse"] > 0


def test_columns_in_name_order_give_the_same_predictions_per_model():
    X, q, c, s = _toy()
    kw = {"dim": 8, "hidden": (8,), "epochs": 3, "descriptions": DESC, "column_order": "sorted"}
    perm = [2, 0, 1]
    a = OfficialGraphRouter(**kw).fit(X, _targets(q, c, s), seed=1).predict(X)
    b = OfficialGraphRouter(**kw).fit(
        X, _targets(q[:, perm], c[:, perm], s[:, perm], models=[MODELS[i] for i in perm]), seed=1).predict(X)
    np.testing.assert_array_equal(a.mu_q[:, perm], b.mu_q)
