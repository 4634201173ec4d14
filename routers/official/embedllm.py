"""The reference code's EmbedLLM recipe (``embedllm_official``).

Network: ``query_proj = Linear(d, dim)``, a model embedding table ``Embedding(M, dim)``
(re-initialised N(0, 0.02)), a per-model bias (zeros) and a cost head ``Linear(dim, 1)`` that
sees the model embedding only, so the predicted cost depends on the model, not the query.
Score logits ``proj(x) . e_m + b_m``. Built in that order from ``torch.manual_seed(seed)``
(so the parameter initialisation consumes the generator as the reference code does).

Training: full-batch when ``batch_size`` >= the training queries (one Adam step per epoch,
``epochs`` = 20 steps by default); each step draws ``randperm`` of the queries, then Gaussian
noise ``noise * N(0, 1)`` on the projected queries and on the model embeddings; loss
``BCE(logits, clip(mu_q - beta * sigma_q, 0, 1)) + cost_weight * MSE(cost, mu_c)`` on targets
clipped to [0, 1] (float32, column order). Prediction: ``sigmoid`` scores, the model costs,
``sigma_q = 0`` (the fit's beta is in the score). Differences from ``embedllm``: noise after
the projection and on the model embeddings, a query-free cost head, queries (not pairs) as
the batch, fewer steps. See docs/official.md.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from routers.base import Signals
from routers.neural import numerics_context
from routers.official.base import OfficialRouter, dense_features, official_targets
from routers.official.training import train_in_query_batches
from supervision.modes import Targets


class _EmbedNet(nn.Module):
    def __init__(self, d_in: int, n_models: int, dim: int) -> None:
        super().__init__()
        # Creation order fixes the generator's consumption: projection, embeddings, bias, cost
        # head, then the embeddings' N(0, 0.02) re-initialisation.
        self.proj = nn.Linear(d_in, dim)
        self.emb = nn.Embedding(n_models, dim)
        self.bias = nn.Parameter(torch.zeros(n_models))
        self.cost = nn.Linear(dim, 1)
        nn.init.normal_(self.emb.weight, mean=0.0, std=0.02)

    def forward(self, x: torch.Tensor, noise: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.proj(x)
        e = self.emb.weight
        if noise > 0:
            h = h + noise * torch.randn_like(h)
            e = e + noise * torch.randn_like(e)
        logits = h @ e.t() + self.bias.unsqueeze(0)
        cost = self.cost(e).squeeze(1).unsqueeze(0).expand(x.shape[0], -1)
        return logits, cost


class OfficialEmbedLLMRouter(OfficialRouter):
    """EmbedLLM as the reference code trains it.

    Args:
        dim: embedding size (256). epochs: training epochs (20). batch_size: queries per step
        (2048: the whole training set, one step per epoch). lr, weight_decay: Adam's.
        noise: the Gaussian noise scale in training (0.05). cost_weight: weight of the cost MSE.
        column_order, selection: see routers.official.base.
    """

    def __init__(
        self,
        dim: int = 256,
        epochs: int = 20,
        batch_size: int = 2048,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        noise: float = 0.05,
        cost_weight: float = 1.0,
        column_order: str = "official",
        selection: str = "argmax",
    ) -> None:
        self.dim = dim
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.noise = noise
        self.cost_weight = cost_weight
        self.column_order = column_order
        self.selection = selection

    def _fit_single(self, X: Any, targets: Targets, *, lam: float, beta: float, seed: int) -> None:
        self._set_order(targets)
        x = torch.from_numpy(np.ascontiguousarray(dense_features(X, "embedllm_official.fit"), dtype=np.float32))
        mu_q, mu_c, sd = official_targets(targets, self.order_, clip=True)
        score = torch.from_numpy(np.clip(mu_q - np.float32(beta) * sd, 0.0, 1.0).astype(np.float32))
        cost = torch.from_numpy(mu_c)
        bce, mse = nn.BCEWithLogitsLoss(), nn.MSELoss()

        def batch_loss(net: nn.Module, idx: torch.Tensor) -> torch.Tensor:
            logits, c = net(x[idx], float(self.noise))
            return bce(logits, score[idx]) + float(self.cost_weight) * mse(c, cost[idx])

        net, losses = train_in_query_batches(
            lambda: _EmbedNet(x.shape[1], score.shape[1], int(self.dim)), x.shape[0], batch_loss,
            epochs=self.epochs, batch_size=self.batch_size, lr=self.lr,
            weight_decay=self.weight_decay, seed=seed,
        )
        self.net_ = net
        self.n_features_in_ = x.shape[1]
        self.train_loss_ = losses
        self.fit_stats_ = {"train_loss": losses[-1] if losses else float("nan")}  # nan: no epoch ran  # per-epoch mean training loss

    def _predict_single(self, X: Any) -> Signals:
        x = torch.from_numpy(np.ascontiguousarray(dense_features(X, "embedllm_official.predict"), dtype=np.float32))
        if x.shape[1] != self.n_features_in_:
            raise ValueError(f"embedllm_official: {x.shape[1]} feature columns, fitted on {self.n_features_in_}")
        with torch.no_grad(), numerics_context():
            logits, c = self.net_(x)
            s = torch.sigmoid(logits).numpy().astype(np.float32)
            c = c.numpy().astype(np.float32)
        return Signals(s, c, np.zeros_like(s))
