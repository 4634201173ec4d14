"""Tests of GraphRouter (docs/spec.md §5): the bipartite graph, message passing, inductive test nodes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from routers.graphrouter import GraphNet, GraphRouter, build_graph
from supervision.modes import Targets

# The hand-built case: 3 queries x 2 models; query 1 was never observed with model 1 and
# query 2 never with model 0. Nodes: queries 0, 1, 2; models 3, 4.
MASK = np.array([[True, True], [True, False], [False, True]])


def test_build_graph_hand_case():
    g = build_graph(3, 2, MASK)
    assert g.num_nodes == 5
    assert g.edge_index.dtype == torch.int64
    assert g.pairs.tolist() == [[0, 0], [0, 1], [1, 0], [2, 1]]
    # q -> model for every observed pair (row-major), then the reverse edges in the same order.
    assert g.edge_index.tolist() == [
        [0, 0, 1, 2, 3, 4, 3, 4],
        [3, 4, 3, 4, 0, 0, 1, 2],
    ]


def test_build_graph_inductive_nodes_only_receive():
    g = build_graph(3, 2, MASK, n_inductive=2)
    assert g.num_nodes == 7  # test queries are nodes 5 and 6
    assert g.edge_index.shape == (2, 8 + 4)
    assert g.edge_index[:, 8:].tolist() == [[3, 4, 3, 4], [5, 5, 6, 6]]
    assert not torch.isin(g.edge_index[0], torch.tensor([5, 6])).any()  # no edge leaves them
    with pytest.raises(ValueError, match="shape"):
        build_graph(3, 3, MASK)


def test_sage_mean_aggregation_without_torch_scatter():
    """The SAGEConv layers compute lin_l(mean of in-neighbours) + lin_r(self) on this graph."""
    torch.manual_seed(0)
    net = GraphNet(n_features=4, n_models=2, dim=3, n_layers=1, edge_hidden=(5,))
    net.set_graph(torch.from_numpy(MASK))
    X = torch.randn(3, 4)
    h = net.node_states(X).detach()
    x0 = torch.cat([net.query_proj(X), net.model_emb]).detach()
    conv = net.convs[0]
    # In-neighbours: q0 <- {3, 4}, q1 <- {3}, q2 <- {4}, m3 <- {0, 1}, m4 <- {0, 2}.
    neigh = [[3, 4], [3], [4], [0, 1], [0, 2]]
    mean = torch.stack([x0[n].mean(0) for n in neigh])
    expected = conv.lin_l(mean) + conv.lin_r(x0)
    torch.testing.assert_close(h, expected.detach(), rtol=1e-6, atol=1e-6)


def test_edge_mlp_decomposition_equals_concatenated_input():
    torch.manual_seed(1)
    net = GraphNet(n_features=4, n_models=2, dim=3, n_layers=2, edge_hidden=(6, 5))
    h = torch.randn(7, 3)
    q, m = torch.tensor([0, 2, 0, 1]), torch.tensor([3, 4, 4, 3])
    hq, hm = h[q], h[m]
    direct = torch.sigmoid(net.edge_mlp(torch.cat([hq, hm, hq * hm, (hq - hm).abs()], dim=1)))
    torch.testing.assert_close(net.edge_outputs(h, q, m), direct, rtol=1e-6, atol=1e-6)


def _targets(rng, n_q, n_m, missing=()):
    mu_q, mu_c, sigma = rng.random((3, n_q, n_m))
    for q, m in missing:
        mu_q[q, m] = mu_c[q, m] = sigma[q, m] = np.nan
    return Targets("dars", mu_q, mu_c, sigma, True, np.ones((n_q, n_m), int))


def test_graph_follows_finite_targets_and_test_nodes_leave_training_states_alone():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(12, 5))
    X_test = rng.normal(size=(4, 5))
    t = _targets(rng, 12, 3, missing=[(0, 1), (5, 2)])
    router = GraphRouter(dim=8, edge_hidden=(8, 8), training={"epochs": 2, "batch_size": 8}).fit(X, t, seed=0)
    net = router.nets_[0]
    assert net.train_mask.sum() == 12 * 3 - 2 and not net.train_mask[0, 1]
    X_t, Xte_t = torch.tensor(X, dtype=torch.float32), torch.tensor(X_test, dtype=torch.float32)
    with torch.no_grad():
        alone = net.node_states(X_t)
        with_test = net.node_states(X_t, Xte_t)
    # Test nodes only receive: training and model node states are unchanged.
    torch.testing.assert_close(with_test[: 12 + 3], alone, rtol=1e-6, atol=1e-6)


def test_test_query_prediction_does_not_depend_on_other_test_queries():
    rng = np.random.default_rng(1)
    X, X_test = rng.normal(size=(12, 5)), rng.normal(size=(6, 5))
    router = GraphRouter(dim=8, edge_hidden=(8, 8), training={"epochs": 2, "batch_size": 8})
    router.fit(X, _targets(rng, 12, 3), seed=0)
    full = router.predict(X_test)
    part = router.predict(X_test[[4, 1]])
    np.testing.assert_allclose(part.mu_q, full.mu_q[[4, 1]], rtol=0, atol=1e-6)
    np.testing.assert_allclose(part.sigma_q, full.sigma_q[[4, 1]], rtol=0, atol=1e-6)
    assert full.mu_q.shape == (6, 3)
    assert ((full.mu_c >= 0) & (full.mu_c <= 1)).all()


def test_csr_propagate_equals_edge_list_propagate_bit_for_bit():
    # The stacked draws aggregate on the CSR adjacency; the exact path on the edge list.
    rng = np.random.default_rng(3)
    mask = rng.random((7, 3)) < 0.7
    mask[:, 0] = True
    net = GraphNet(4, 3, dim=5, n_layers=1, edge_hidden=[4])
    net.set_graph(torch.from_numpy(mask))
    x = torch.from_numpy(rng.normal(size=(10, 40)).astype(np.float32))
    conv = net.convs[0]
    via_edges = conv.propagate(net._graph.edge_index, x=(x, x), size=None)
    via_csr = conv.propagate(net.adjacency_t(), x=(x, x), size=None)
    assert torch.equal(via_edges, via_csr)
    # Hand check of one mean: model node 7 + 0 receives every query.
    torch.testing.assert_close(via_csr[7], x[:7].mean(dim=0))
