"""The reference code's MIRT recipe (``mirt_official``): three separate IRT heads.

Each of the three heads (score, cost, sigma; built in that order from
``torch.manual_seed(seed)``) has its own ability network ``theta(x)`` (``Linear`` + ReLU per
hidden layer, then ``Linear`` to ``latent``), a discrimination matrix ``a`` (``M x latent``,
N(0, 1) * 0.02, drawn right after that head's network) and difficulties ``b`` (zeros); its
logit is ``theta(x) . a_m - b_m``. Training: batches of queries (``batch_size`` 256 >= the 200
training queries of a release dataset: one Adam step per epoch, 30 epochs), a ``randperm`` per
epoch; loss ``BCE(score logits, mu_q) + cost_weight * MSE(sigmoid cost, mu_c) + std_weight *
MSE(sigmoid sigma, sigma_q)`` on targets clipped to [0, 1] (float32, column order).
Differences from ``mirt``: one ability network per head instead of a shared
``Linear(latent, 3M)``, queries (not pairs) as the batch. See docs/official.md.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from routers.base import Signals
from routers.neural import mlp, numerics_context
from routers.official.base import OfficialRouter, dense_features, official_targets
from routers.official.training import train_in_query_batches
from supervision.modes import Targets


class _IRTHead(nn.Module):
    def __init__(self, d_in: int, n_models: int, latent: int, hidden: Sequence[int]) -> None:
        super().__init__()
        self.theta = mlp([d_in, *[int(h) for h in hidden], latent])
        self.a = nn.Parameter(torch.randn(n_models, latent) * 0.02)
        self.b = nn.Parameter(torch.zeros(n_models))

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.theta(x) @ self.a.t() - self.b.unsqueeze(0)


class _MIRTNet(nn.Module):
    def __init__(self, d_in: int, n_models: int, latent: int, hidden: Sequence[int]) -> None:
        super().__init__()
        self.score = _IRTHead(d_in, n_models, latent, hidden)
        self.cost = _IRTHead(d_in, n_models, latent, hidden)
        self.sigma = _IRTHead(d_in, n_models, latent, hidden)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.score.logits(x), torch.sigmoid(self.cost.logits(x)), torch.sigmoid(self.sigma.logits(x))


class OfficialMIRTRouter(OfficialRouter):
    """MIRT as the reference code trains it.

    Args:
        latent: ability dimension (16). hidden: ability-network hidden sizes ((128,)).
        epochs (30), batch_size (256 queries), lr (1e-3), weight_decay (0): training.
        cost_weight (1.0), std_weight (0.5): loss weights of the cost and sigma heads.
        column_order, selection: see routers.official.base.
    """

    def __init__(
        self,
        latent: int = 16,
        hidden: Sequence[int] = (128,),
        epochs: int = 30,
        batch_size: int = 256,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        cost_weight: float = 1.0,
        std_weight: float = 0.5,
        column_order: str = "official",
        selection: str = "argmax",
    ) -> None:
        self.latent = latent
        self.hidden = hidden
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.cost_weight = cost_weight
        self.std_weight = std_weight
        self.column_order = column_order
        self.selection = selection

    def _fit_single(self, X: Any, targets: Targets, *, lam: float, beta: float, seed: int) -> None:
        self._set_order(targets)
        x = torch.from_numpy(np.ascontiguousarray(dense_features(X, "mirt_official.fit"), dtype=np.float32))
        ys = [torch.from_numpy(v) for v in official_targets(targets, self.order_, clip=True)]
        bce, mse = nn.BCEWithLogitsLoss(), nn.MSELoss()

        def batch_loss(net: nn.Module, idx: torch.Tensor) -> torch.Tensor:
            s, c, sd = net(x[idx])
            return (
                bce(s, ys[0][idx])
                + float(self.cost_weight) * mse(c, ys[1][idx])
                + float(self.std_weight) * mse(sd, ys[2][idx])
            )

        net, losses = train_in_query_batches(
            lambda: _MIRTNet(x.shape[1], ys[0].shape[1], int(self.latent), self.hidden), x.shape[0],
            batch_loss, epochs=self.epochs, batch_size=self.batch_size, lr=self.lr,
            weight_decay=self.weight_decay, seed=seed,
        )
        self.net_ = net
        self.n_features_in_ = x.shape[1]
        self.train_loss_ = losses
        self.fit_stats_ = {"train_loss": losses[-1] if losses else float("nan")}  # nan: no epoch ran

    def _predict_single(self, X: Any) -> Signals:
        x = torch.from_numpy(np.ascontiguousarray(dense_features(X, "mirt_official.predict"), dtype=np.float32))
        if x.shape[1] != self.n_features_in_:
            raise ValueError(f"mirt_official: {x.shape[1]} feature columns, fitted on {self.n_features_in_}")
        with torch.no_grad(), numerics_context():
            s, c, sd = self.net_(x)
        return Signals(torch.sigmoid(s).numpy().astype(np.float32), c.numpy().astype(np.float32), sd.numpy().astype(np.float32))
