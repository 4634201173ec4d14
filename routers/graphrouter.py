"""The ``graphrouter`` router: SAGEConv message passing on the bipartite query-model graph.

Observed training pairs are unlabelled edges; an edge MLP on ``[h_q, h_m, h_q*h_m, |h_q-h_m|]``
regresses (mu_q, mu_c, sigma_q). Test queries are inductive nodes that only receive messages
from the model nodes (no leak). Graph layout and training: docs/routers_neural.md.
"""

from __future__ import annotations

import warnings
from typing import Any, Mapping, NamedTuple, Sequence

import numpy as np
import torch
from torch import nn

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    from torch_geometric.nn import SAGEConv
    from torch_geometric.utils import to_torch_csr_tensor

from routers.base import Signals
from routers.neural import (
    DrawNet,
    NeuralSignalRouter,
    TrainingConfig,
    encode_rows,
    gather_pairs,
    gather_rows,
    masked_column_means,
    mlp,
    pair_examples,
    stacked_linear,
    stacked_sequential,
    stacked_targets,
    to_numpy,
)
from supervision.modes import Targets

SIGNALS = ("mu_q", "mu_c", "sigma_q")


class BipartiteGraph(NamedTuple):
    """A query-model graph.

    Attributes:
        edge_index: LongTensor ``[2, 2E + M*T]`` (source row, target row).
        pairs: LongTensor ``[E, 2]``: the (query, model) index of each observed pair, in
            row-major order; edge ``e`` is ``query q -> node Q+m`` and edge ``E + e`` its
            reverse.
        num_nodes: ``Q + M + T``.
    """

    edge_index: torch.Tensor
    pairs: torch.Tensor
    num_nodes: int


def build_graph(
    n_queries: int, n_models: int, mask: np.ndarray, n_inductive: int = 0
) -> BipartiteGraph:
    """The bipartite graph of ``mask`` ``[n_queries, n_models]`` (True: pair observed).

    Node ids: training queries ``0..Q-1``, models ``Q..Q+M-1``, inductive (test) queries
    ``Q+M..Q+M+T-1``. Edges, in this order: ``q -> Q+m`` for every observed pair (row-major),
    the reverse ``Q+m -> q`` of each in the same order, then ``Q+m -> Q+M+t`` for every test
    query ``t`` and model ``m`` (t-major): test queries only receive messages.
    """
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != (n_queries, n_models):
        raise ValueError(f"mask has shape {mask.shape}, expected ({n_queries}, {n_models})")
    if n_inductive < 0:
        raise ValueError(f"n_inductive must be >= 0, got {n_inductive}")
    q, m = np.nonzero(mask)
    model_node = n_queries + m
    t = np.repeat(np.arange(n_inductive), n_models)
    tm = np.tile(np.arange(n_models), n_inductive)
    src = np.concatenate([q, model_node, n_queries + tm])
    dst = np.concatenate([model_node, q, n_queries + n_models + t])
    return BipartiteGraph(
        torch.from_numpy(np.stack([src, dst]).astype(np.int64)),
        torch.from_numpy(np.stack([q, m], axis=1).astype(np.int64)),
        n_queries + n_models + n_inductive,
    )


class GraphNet(DrawNet):
    """Query projection, model embeddings, SAGEConv layers and the edge MLP."""

    def __init__(
        self,
        n_features: int,
        n_models: int,
        dim: int,
        n_layers: int,
        edge_hidden: Sequence[int],
    ) -> None:
        super().__init__()
        self.query_proj = nn.Linear(n_features, dim)
        self.model_emb = nn.Parameter(torch.empty(n_models, dim).uniform_(-dim**-0.5, dim**-0.5))
        self.convs = nn.ModuleList(SAGEConv(dim, dim, aggr="mean") for _ in range(n_layers))
        self.edge_mlp = mlp([4 * dim, *edge_hidden, len(SIGNALS)])
        self.n_models = int(n_models)
        # The training graph (observed pairs), set by the router before training.
        self.register_buffer("train_mask", torch.zeros(0, n_models, dtype=torch.bool))

    def set_graph(self, mask: torch.Tensor) -> None:
        """Fix the training graph (``[Q, M]`` observed-pair mask)."""
        self.train_mask = mask.clone()
        self._graph = build_graph(mask.shape[0], self.n_models, mask.numpy())
        # The same graph as a CSR matrix, row = target node (PyG's ``adj_t``): stacked draws
        # aggregate [N, D * dim] states with one sparse product instead of [E, D * dim] messages.
        n = self._graph.num_nodes
        with warnings.catch_warnings():  # torch: "sparse CSR support is in beta" and the like
            warnings.filterwarnings("ignore", message=r"(?i).*sparse.*", category=UserWarning)
            self._adj_t = to_torch_csr_tensor(self._graph.edge_index.flip(0), size=(n, n))

    def node_states(
        self, X_train: torch.Tensor, X_test: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Node states ``[Q + M (+ T), dim]`` after message passing."""
        n_q = X_train.shape[0]
        if X_test is None:
            graph = self._graph
            x = torch.cat([self.query_proj(X_train), self.model_emb])
        else:
            graph = build_graph(n_q, self.n_models, self.train_mask.numpy(), len(X_test))
            x = torch.cat([self.query_proj(X_train), self.model_emb, self.query_proj(X_test)])
        for i, conv in enumerate(self.convs):
            if i:
                x = torch.relu(x)
            x = conv(x, edge_index=graph.edge_index)
        return x

    def edge_outputs(
        self, h: torch.Tensor, q_nodes: torch.Tensor, m_nodes: torch.Tensor
    ) -> torch.Tensor:
        """``[E, 3]`` sigmoid outputs (mu_q, mu_c, sigma_q) of edges ``(q_nodes, m_nodes)``.

        The edge MLP's first layer on ``[h_q, h_m, h_q * h_m, |h_q - h_m|]`` is evaluated as
        ``A h_q + B h_m + [C | D] [h_q * h_m, |h_q - h_m|] + b`` with ``A h_q`` and ``B h_m``
        computed once per distinct node of the batch: the same function, fewer operations.
        """
        first = self.edge_mlp[0]
        w_q, w_m, w_pair = first.weight.split([h.shape[1], h.shape[1], 2 * h.shape[1]], dim=1)
        hq, hm = h[q_nodes], h[m_nodes]
        pair = torch.cat([hq * hm, (hq - hm).abs()], dim=-1)
        z = (
            encode_rows(lambda x: x @ w_q.T, h, q_nodes)
            + encode_rows(lambda x: x @ w_m.T, h, m_nodes)
            + pair @ w_pair.T
            + first.bias
        )
        return torch.sigmoid(self.edge_mlp[1:](z))

    def loss(
        self,
        X: torch.Tensor,
        data: dict[str, torch.Tensor],
        examples: torch.Tensor,
        noise: torch.Generator | None,
    ) -> torch.Tensor:
        q, m = examples[:, 0], examples[:, 1]
        h = self.node_states(X)
        out = self.edge_outputs(h, q, X.shape[0] + m)
        return masked_column_means((out - data["y"][q, m]) ** 2, data["ok"][q, m]).sum()

    def can_stack(self, data: Sequence[dict[str, torch.Tensor]]) -> bool:
        """Stacked draws share one graph: every draw must observe the same pairs."""
        return all(torch.equal(dd["pairs"], data[0]["pairs"]) for dd in data[1:])

    def stacked_loss(
        self,
        P: Mapping[str, torch.Tensor],
        X: torch.Tensor,
        data: dict[str, torch.Tensor],
        examples: torch.Tensor,
        noise: Sequence[torch.Generator] | None,
    ) -> torch.Tensor:
        q, m = examples[..., 0], examples[..., 1]
        n_q = X.shape[0]
        h = torch.cat(
            [stacked_linear(X, P["query_proj.weight"], P["query_proj.bias"]), P["model_emb"]],
            dim=1,
        )  # [D, N, dim]
        D, n, dim = h.shape
        for i, conv in enumerate(self.convs):
            if i:
                h = torch.relu(h)
            # SAGEConv (mean): lin_l(mean over in-neighbours) + lin_r(h). The mean acts column
            # by column, so one propagate over the [N, D * dim] states serves every draw (on
            # the CSR adjacency: the same sums in the same order as the edge-list path).
            flat = h.transpose(0, 1).reshape(n, D * dim)
            agg = conv.propagate(self._adj_t, x=(flat, flat), size=None)
            agg = agg.view(n, D, dim).transpose(0, 1)
            c = f"convs.{i}"
            h = stacked_linear(agg, P[f"{c}.lin_l.weight"], P[f"{c}.lin_l.bias"]) + stacked_linear(
                h, P[f"{c}.lin_r.weight"]
            )
        # Edge MLP, first layer split as in edge_outputs: A h_q + B h_m + [C|D] pair + b.
        w = P["edge_mlp.0.weight"]
        w_q, w_m, w_pair = w.split([dim, dim, 2 * dim], dim=-1)
        m_nodes = n_q + m
        hq, hm = gather_rows(h, q), gather_rows(h, m_nodes)
        pair = torch.cat([hq * hm, (hq - hm).abs()], dim=-1)
        z = (
            gather_rows(stacked_linear(h[:, :n_q], w_q), q)
            + gather_rows(stacked_linear(h[:, n_q:], w_m), m)
            + stacked_linear(pair, w_pair, P["edge_mlp.0.bias"])
        )
        out = torch.sigmoid(stacked_sequential(self.edge_mlp, "edge_mlp", P, z, start=1))
        y, ok = gather_pairs(data["y"], q, m), gather_pairs(data["ok"], q, m)
        return masked_column_means((out - y) ** 2, ok, dim=1).sum(dim=-1)

    def predict_pairs(self, X_train: torch.Tensor, X_test: torch.Tensor) -> torch.Tensor:
        """``[T, M, 3]`` outputs for every (test query, model) pair (inductive nodes)."""
        h = self.node_states(X_train, X_test)
        n_q, n_t, n_m = X_train.shape[0], X_test.shape[0], self.n_models
        q_nodes = torch.arange(n_q + n_m, n_q + n_m + n_t).repeat_interleave(n_m)
        m_nodes = torch.arange(n_q, n_q + n_m).repeat(n_t)
        return self.edge_outputs(h, q_nodes, m_nodes).reshape(n_t, n_m, len(SIGNALS))


class GraphRouter(NeuralSignalRouter):
    """GraphRouter: SAGEConv message passing on the query-model graph + an edge MLP.

    Args:
        dim: node state dimension: query projection and model embeddings (docs/spec.md: 128).
        n_layers: number of SAGEConv layers (2).
        edge_hidden: hidden sizes of the edge MLP (docs/spec.md: (256, 128)).
        training: :class:`routers.neural.TrainingConfig`; default 50 epochs,
            batch 256 supervised edges, Adam 1e-3.
    """

    default_training = TrainingConfig(epochs=50)

    def __init__(
        self,
        dim: int = 128,
        n_layers: int = 2,
        edge_hidden: Sequence[int] = (256, 128),
        training: TrainingConfig | Mapping[str, Any] | None = None,
    ) -> None:
        if int(n_layers) < 1:
            raise ValueError(f"n_layers must be >= 1, got {n_layers}")
        self.dim = dim
        self.n_layers = n_layers
        self.edge_hidden = edge_hidden
        self.training = training

    def _new_net(self, n_features: int, n_models: int) -> GraphNet:
        return GraphNet(
            n_features, n_models, int(self.dim), int(self.n_layers), [int(h) for h in self.edge_hidden]
        )

    def _draw_data(self, targets: Targets, beta: float) -> dict[str, torch.Tensor]:
        y, ok = stacked_targets(targets.mu_q, targets.mu_c, targets.sigma_q)
        return {"y": y, "ok": ok, "pairs": torch.from_numpy(np.isfinite(targets.mu_q))}

    def _prepare_net(self, net: DrawNet, data: dict[str, torch.Tensor]) -> None:
        assert isinstance(net, GraphNet)
        net.set_graph(data["pairs"])

    def _examples(self, data: dict[str, torch.Tensor], queries: np.ndarray) -> torch.Tensor:
        return pair_examples(data["pairs"].numpy(), queries)

    def _prepare_loaded_net(self, net: DrawNet, state_dict: dict[str, torch.Tensor]) -> None:
        assert isinstance(net, GraphNet)
        net.set_graph(state_dict["train_mask"])

    def _remember_training(self, X: torch.Tensor, targets: Sequence[Targets]) -> None:
        self.X_train_ = X

    def _net_signals(self, net: DrawNet, X: torch.Tensor) -> Signals:
        assert isinstance(net, GraphNet)
        out = to_numpy(net.predict_pairs(self.X_train_, X))
        return Signals(out[..., 0], out[..., 1], out[..., 2])
