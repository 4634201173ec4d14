"""Official router recipes (issue 15): column order, plain argmax, per-head seeds, exact match."""

from __future__ import annotations

import numpy as np
import pytest

from benchmark.data.release import RELEASE_MODELS
from routers.official.avengers_pro import OfficialAvengersProRouter
from routers.official.base import column_order
from routers.official.knn import OfficialKNNRouter
from routers.official.mlp import OfficialMLPRouter
from supervision.modes import Targets


def _targets(mu_q, mu_c, models, sigma=None, draws=False):
    mu_q, mu_c = np.asarray(mu_q, float), np.asarray(mu_c, float)
    sigma = np.zeros_like(mu_q) if sigma is None else np.asarray(sigma, float)
    return Targets("single_shot" if draws else "dars", mu_q, mu_c, sigma, not draws,
                   np.ones(mu_q.shape, np.int64), tuple(models))


def test_column_order_official_sorted_pool():
    # pool: sim/b, qwen (release #3), sim/a, meta-llama (release #4)
    pool = ["sim/b", RELEASE_MODELS[2], "sim/a", RELEASE_MODELS[3]]
    # official: release models in release order (qwen, meta), then the rest sorted (sim/a, sim/b)
    np.testing.assert_array_equal(column_order(pool, "official", 4), [1, 3, 2, 0])
    # sorted by name: meta-llama/... < qwen/... < sim/a < sim/b
    np.testing.assert_array_equal(column_order(pool, "sorted", 4), [3, 1, 2, 0])
    np.testing.assert_array_equal(column_order(pool, "pool", 4), [0, 1, 2, 3])
    with pytest.raises(ValueError, match="model names"):
        column_order(None, "sorted", 4)


def test_knn_exact_match_and_weights_by_hand():
    # 1-d features: train at 0, 1, 3. Targets mu_q per model (m_a, m_b).
    X = np.array([[0.0], [1.0], [3.0]])
    mu_q = [[0.2, 0.9], [0.6, 0.1], [1.0, 0.0]]
    r = OfficialKNNRouter(k=2, column_order="pool").fit(X, _targets(mu_q, np.zeros((3, 2)), ["m_a", "m_b"]))
    sig = r.predict(np.array([[0.0], [0.5], [2.5]]))
    # x=0: exact match with train 0 (distance 0 <= 1e-12) -> its targets alone.
    # x=0.5: neighbours 0 and 1 at 0.5 each -> equal weights -> (0.2+0.6)/2, (0.9+0.1)/2.
    # x=2.5: neighbours 3 (d=.5, w=2) and 1 (d=1.5, w=2/3): m_a (2*1.0 + 2/3*0.6)/(8/3) = 0.9,
    # m_b (2*0.0 + 2/3*0.1)/(8/3) = 0.025.
    np.testing.assert_allclose(sig.mu_q, [[0.2, 0.9], [0.4, 0.5], [0.9, 0.025]], atol=1e-6)


def test_plain_argmax_in_column_order_vs_darsbench_ties():
    # Two models with identical targets: a tie. Pool order (m_b, m_a); sorted columns (m_a, m_b).
    X = np.array([[0.0], [1.0]])
    t = _targets([[0.5, 0.5], [0.5, 0.5]], [[0.1, 0.1], [0.1, 0.1]], ["m_b", "m_a"])
    plain = OfficialKNNRouter(k=1, column_order="sorted").fit(X, t)
    assert plain.route(X, 0.05, 0.0).tolist() == [1, 1]  # first column is m_a = pool index 1
    ours = OfficialKNNRouter(k=1, column_order="sorted", selection="darsbench").fit(X, t)
    assert ours.route(X, 0.05, 0.0).tolist() == [0, 0]  # darsbench: equal cost -> pool order


def _toy(n=24, d=5, m=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    q = rng.random((n, m))
    c = rng.random((n, m))
    return X, q, c


def test_mlp_head_seeds_per_draw():
    r = OfficialMLPRouter(hidden=(4,), max_iter=5)
    assert r.head_seeds(42, True) == {"mu_q": 42, "mu_c": 1033, "sigma_q": 2033}
    assert r.head_seeds(43, False) == {"mu_q": 43, "mu_c": 1034}
    X, q, c = _toy()
    draws = _targets(np.stack([q, q[::-1]]), np.stack([c, c]), ["a", "b", "c"], draws=True)
    r.fit(X, draws, seed=42)
    seeds = [{k: p[-1].random_state for k, p in m.heads_.items()} for m in r.members_]
    assert seeds == [{"mu_q": 42, "mu_c": 1033}, {"mu_q": 43, "mu_c": 1034}]
    dars = OfficialMLPRouter(hidden=(4,), max_iter=5).fit(X, _targets(q, c, ["a", "b", "c"], sigma=q / 4), seed=42)
    assert {k: p[-1].random_state for k, p in dars.members_[0].heads_.items()} == {
        "mu_q": 42, "mu_c": 1033, "sigma_q": 2033}


def test_mlp_columns_follow_names_not_pool_order():
    """The same models listed in another pool order give the same prediction per model name."""
    X, q, c = _toy()
    names = ["z", "a", "m"]
    perm = [2, 0, 1]  # pool order m, z, a
    a = OfficialMLPRouter(hidden=(8,), max_iter=30).fit(X, _targets(q, c, names), seed=7).predict(X)
    b = OfficialMLPRouter(hidden=(8,), max_iter=30).fit(
        X, _targets(q[:, perm], c[:, perm], [names[i] for i in perm]), seed=7).predict(X)
    np.testing.assert_array_equal(a.mu_q[:, perm], b.mu_q)
    # The pool-ordered recipe trains other output units for each model: different numbers.
    p = OfficialMLPRouter(hidden=(8,), max_iter=30, column_order="pool").fit(
        X, _targets(q[:, perm], c[:, perm], [names[i] for i in perm]), seed=7).predict(X)
    assert not np.allclose(p.mu_q, b.mu_q)


def test_avengers_refits_kmeans_per_draw():
    X, q, c = _toy(n=40)
    t = _targets(np.stack([q, q, q]), np.stack([c, c, c]), ["a", "b", "c"], draws=True)
    r = OfficialAvengersProRouter(n_clusters=4, top_k=2).fit(X, t, seed=42)
    assert [m.kmeans_.random_state for m in r.members_] == [42, 43, 44]
    # Same targets, different clusterings: the draws' predictions differ.
    p = r.predict(X).mu_q
    assert p.shape == (3, 40, 3) and not np.allclose(p[0], p[1])


def test_embedllm_initialisation_order_and_query_free_cost():
    import torch
    from torch import nn

    from routers.official.embedllm import OfficialEmbedLLMRouter

    X, q, c = _toy(n=10, d=6, m=3)
    r = OfficialEmbedLLMRouter(dim=4, epochs=0).fit(X, _targets(q, c, ["a", "b", "c"]), seed=42)
    net = r.members_[0].net_
    # The generator is consumed as the reference builds its net: projection, embedding table,
    # cost head, then the table's N(0, 0.02) re-initialisation.
    torch.manual_seed(42)
    proj = nn.Linear(6, 4)
    nn.Embedding(3, 4)
    head = nn.Linear(4, 1)
    emb = torch.empty(3, 4).normal_(0.0, 0.02)
    assert torch.equal(net.proj.weight, proj.weight) and torch.equal(net.cost.weight, head.weight)
    assert torch.equal(net.emb.weight, emb)
    # The cost head sees the model embedding only: one predicted cost per model for every query.
    trained = OfficialEmbedLLMRouter(dim=4, epochs=3).fit(X, _targets(q, c, ["a", "b", "c"]), seed=1)
    mu_c = trained.predict(X).mu_c
    assert np.all(mu_c == mu_c[:1]) and len(trained.members_[0].train_loss_) == 3


def test_mirt_three_heads_initialised_in_order():
    import torch
    from torch import nn

    from routers.official.mirt import OfficialMIRTRouter

    X, q, c = _toy(n=10, d=6, m=3)
    r = OfficialMIRTRouter(latent=2, hidden=(4,), epochs=0).fit(X, _targets(q, c, ["a", "b", "c"]), seed=7)
    net = r.members_[0].net_
    # Each head: its ability network (Linear 6->4, Linear 4->2), then its N(0,1)*0.02
    # discrimination; heads in the order score, cost, sigma, each with its own network.
    torch.manual_seed(7)
    for head in (net.score, net.cost, net.sigma):
        l1, l2 = nn.Linear(6, 4), nn.Linear(4, 2)
        a = torch.randn(3, 2) * 0.02
        assert torch.equal(head.theta[0].weight, l1.weight) and torch.equal(head.theta[2].weight, l2.weight)
        assert torch.equal(head.a, a)
    assert net.score.theta[0].weight.data_ptr() != net.cost.theta[0].weight.data_ptr()
    # 10 queries, batch 256: one Adam step per epoch.
    trained = OfficialMIRTRouter(latent=2, hidden=(4,), epochs=4).fit(X, _targets(q, c, ["a", "b", "c"]), seed=7)
    assert len(trained.members_[0].train_loss_) == 4
