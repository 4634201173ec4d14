"""The reference code's GraphRouter recipe (``graphrouter_official``): an edge MLP, no message passing.

Every (query, model) pair is an edge. The query's features go through ``query_proj =
Linear(d, dim)`` and the model's description embedding through ``model_proj = Linear(d_desc,
dim)``, each followed by ReLU; the edge MLP reads ``[q, m, q * m, |q - m|]`` (``4 * dim``)
through ``hidden`` ReLU layers to three outputs (mu_q, mu_c, sigma_q). Built in that order
from ``torch.manual_seed(seed)``; trained with Adam on the MSE of all three outputs against
the targets clipped to [0, 1] (float32, column order), in batches of ``batch_size`` queries
(each batch holds all of its queries' edges), a ``randperm`` of the queries per epoch.

Model descriptions: ``description_source='generic'`` embeds ``"<name>. <description>"``
with the description looked up in ``descriptions`` (the router config; the six release
models are in conf/router/graphrouter_official.yaml), ``'name'`` embeds the name alone. A
model without a description is an error naming it, unless ``fallback_description`` is set
(the reference code's ``"Large language model."``). Embeddings: all-MiniLM-L6-v2, unit
length (benchmark.features.MiniLMFeaturizer). See docs/official.md.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

import numpy as np
import torch
from torch import nn

from benchmark.features import MiniLMFeaturizer
from routers.base import Signals
from routers.neural import mlp, numerics_context
from routers.official.base import OfficialRouter, dense_features, official_targets
from routers.official.training import train_in_query_batches
from supervision.modes import Targets

DESCRIPTION_SOURCES = ("generic", "name")


def description_texts(
    models: Sequence[str],
    source: str,
    descriptions: Mapping[str, str] | None,
    fallback: str | None,
) -> list[str]:
    """The text embedded for each model, in the order of ``models``.

    ``generic``: ``"<name>. <description>"``; ``name``: the name alone. Raises ``KeyError``
    naming every model that has no description when ``fallback`` is None.
    """
    if source not in DESCRIPTION_SOURCES:
        raise ValueError(f"unknown description_source {source!r}; choose one of {DESCRIPTION_SOURCES}")
    names = [str(m) for m in models]
    if source == "name":
        return names
    table = {str(k): str(v) for k, v in (descriptions or {}).items()}
    missing = [m for m in names if m not in table]
    if missing and fallback is None:
        raise KeyError(
            f"graphrouter_official: no description for model(s) {missing}. Add them to "
            "router.descriptions (conf/router/graphrouter_official.yaml, or "
            "'+router.descriptions={<model>: <text>}'), set router.fallback_description, "
            "or use router.description_source=name"
        )
    return [f"{m}. {table.get(m, fallback)}" for m in names]


@lru_cache(maxsize=16)
def _embed_descriptions(texts: tuple[str, ...]) -> np.ndarray:
    """MiniLM embeddings of the description texts, float32 (one encoder pass, cached)."""
    return MiniLMFeaturizer(batch_size=64, normalize=True).encode(list(texts)).astype(np.float32)


class EdgeNet(nn.Module):
    """Edge MLP over projected query and model-description features (no message passing)."""

    def __init__(self, d_query: int, d_model: int, dim: int, hidden: Sequence[int], n_out: int = 3) -> None:
        super().__init__()
        # Creation order fixes the generator's consumption: query_proj, model_proj, edge MLP.
        self.query_proj = nn.Linear(d_query, dim)
        self.model_proj = nn.Linear(d_model, dim)
        self.edge_mlp = mlp([4 * dim, *[int(h) for h in hidden], n_out])

    def forward(self, xq: torch.Tensor, xm: torch.Tensor) -> torch.Tensor:
        """``[B, M, n_out]`` edge outputs for ``B`` queries and ``M`` models."""
        q = torch.relu(self.query_proj(xq))
        m = torch.relu(self.model_proj(xm))
        qe = q[:, None, :].expand(q.shape[0], m.shape[0], -1)
        me = m[None, :, :].expand(q.shape[0], m.shape[0], -1)
        return self.edge_mlp(torch.cat([qe, me, qe * me, torch.abs(qe - me)], dim=2))


class OfficialGraphRouter(OfficialRouter):
    """GraphRouter as the reference code trains it (an edge MLP, description features).

    Args:
        dim: width of both projections (128). hidden: edge-MLP hidden sizes ((256, 128)).
        epochs (50), batch_size (256 queries), lr (1e-3), weight_decay (0): training.
        description_source: ``generic`` or ``name`` (see the module docstring).
        descriptions: model name -> description text. fallback_description: the text for a
            model missing from ``descriptions`` (None: an error).
        column_order, selection: see routers.official.base.
    """

    def __init__(
        self,
        dim: int = 128,
        hidden: Sequence[int] = (256, 128),
        epochs: int = 50,
        batch_size: int = 256,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        description_source: str = "generic",
        descriptions: Mapping[str, str] | None = None,
        fallback_description: str | None = None,
        column_order: str = "official",
        selection: str = "argmax",
    ) -> None:
        self.dim = dim
        self.hidden = hidden
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.description_source = description_source
        self.descriptions = descriptions
        self.fallback_description = fallback_description
        self.column_order = column_order
        self.selection = selection

    def model_features(self, models: Sequence[str]) -> np.ndarray:
        """Description embeddings ``[M, 384]`` (float32) of ``models``, in that order."""
        texts = description_texts(models, self.description_source, self.descriptions, self.fallback_description)
        return _embed_descriptions(tuple(texts))

    def fit(self, X: Any, targets: Targets, *, lam: float = 0.05, beta: float = 0.2, seed: int = 0):
        # Look the descriptions up before any training: a missing one fails fast.
        if targets.models is None:
            raise ValueError("graphrouter_official needs the model names; build the targets with models=")
        description_texts(targets.models, self.description_source, self.descriptions, self.fallback_description)
        return super().fit(X, targets, lam=lam, beta=beta, seed=seed)

    def _fit_single(self, X: Any, targets: Targets, *, lam: float, beta: float, seed: int) -> None:
        self._set_order(targets)
        x = torch.from_numpy(np.ascontiguousarray(dense_features(X, "graphrouter_official.fit"), dtype=np.float32))
        names = [str(targets.models[j]) for j in self.order_]
        xm = torch.from_numpy(np.ascontiguousarray(self.model_features(names)))
        y = torch.from_numpy(np.stack(official_targets(targets, self.order_, clip=True), axis=2))  # [Q, M, 3]
        mse = nn.MSELoss()

        def batch_loss(net: nn.Module, idx: torch.Tensor) -> torch.Tensor:
            return mse(net(x[idx], xm), y[idx])

        net, losses = train_in_query_batches(
            lambda: EdgeNet(x.shape[1], xm.shape[1], int(self.dim), self.hidden), x.shape[0], batch_loss,
            epochs=self.epochs, batch_size=self.batch_size, lr=self.lr,
            weight_decay=self.weight_decay, seed=seed,
        )
        with torch.no_grad(), numerics_context():
            train_mse = float(mse(net(x, xm), y))
        self.net_ = net
        self.model_x_ = xm
        self.n_features_in_ = x.shape[1]
        self.train_loss_ = losses
        self.fit_stats_ = {"train_mse": train_mse, "train_loss": losses[-1] if losses else float("nan")}  # nan: no epoch ran

    def _predict_single(self, X: Any) -> Signals:
        x = torch.from_numpy(np.ascontiguousarray(dense_features(X, "graphrouter_official.predict"), dtype=np.float32))
        if x.shape[1] != self.n_features_in_:
            raise ValueError(f"graphrouter_official: {x.shape[1]} feature columns, fitted on {self.n_features_in_}")
        with torch.no_grad(), numerics_context():
            out = self.net_(x, self.model_x_).numpy()
        return Signals(out[:, :, 0], out[:, :, 1], out[:, :, 2])
