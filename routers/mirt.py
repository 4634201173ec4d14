"""The ``mirt`` router: multidimensional item response theory over an ability MLP.

``logit = a^k_m . theta(x) - b^k_m`` for the score (BCE vs mu_q), cost and sigma (MSE) heads;
loss weights 1, 1, 0.5. Re-scored under any (lambda, beta). docs/routers_neural.md.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from routers.base import Signals
from routers.neural import (
    DrawNet,
    NeuralSignalRouter,
    TrainingConfig,
    encode_rows,
    gather_models,
    gather_pairs,
    masked_column_means,
    mlp,
    pair_examples,
    stacked_linear,
    stacked_sequential,
    stacked_targets,
    to_numpy,
)
from supervision.modes import Targets

HEADS = ("score", "cost", "sigma")


class MIRTNet(DrawNet):
    """Ability MLP and three per-model IRT heads.

    ``heads`` is one ``Linear(latent, 3 * M)``: for head ``k`` (score, cost, sigma) and model
    ``m``, row ``k * M + m`` of its weight is the discrimination ``a^k_m`` and its bias is
    ``-b^k_m`` (minus the difficulty).
    """

    def __init__(
        self,
        n_features: int,
        n_models: int,
        latent: int,
        hidden: Sequence[int],
        weights: Sequence[float],
    ) -> None:
        super().__init__()
        self.n_models = int(n_models)
        self.ability = mlp([n_features, *hidden, latent])
        self.heads = nn.Linear(latent, len(HEADS) * n_models)
        self.register_buffer("loss_weights", torch.tensor([float(w) for w in weights]))

    def logits(self, X: torch.Tensor) -> torch.Tensor:
        """``[R, 3, M]``: ``a^k_m . theta(x) - b^k_m`` for head k and model m."""
        return self.heads(self.ability(X)).view(len(X), len(HEADS), self.n_models)

    def loss(
        self,
        X: torch.Tensor,
        data: dict[str, torch.Tensor],
        examples: torch.Tensor,
        noise: torch.Generator | None,
    ) -> torch.Tensor:
        q, m = examples[:, 0], examples[:, 1]
        logit = gather_models(encode_rows(self.logits, X, q), m)  # [B, 3]
        y, ok = data["y"][q, m], data["ok"][q, m]
        bce = F.binary_cross_entropy_with_logits(logit[:, :1], y[:, :1], reduction="none")
        per = torch.cat([bce, (torch.sigmoid(logit[:, 1:]) - y[:, 1:]) ** 2], dim=1)
        return (masked_column_means(per, ok) * self.loss_weights).sum()

    def stacked_loss(
        self,
        P: Mapping[str, torch.Tensor],
        X: torch.Tensor,
        data: dict[str, torch.Tensor],
        examples: torch.Tensor,
        noise: Sequence[torch.Generator] | None,
    ) -> torch.Tensor:
        q, m = examples[..., 0], examples[..., 1]
        theta = stacked_sequential(self.ability, "ability", P, X)  # [D, Q, latent]
        heads = stacked_linear(theta, P["heads.weight"], P["heads.bias"])
        D, n_q = heads.shape[:2]
        per_pair = heads.view(D, n_q, len(HEADS), self.n_models).transpose(2, 3)  # [D, Q, M, 3]
        logit = gather_pairs(per_pair, q, m)  # [D, B, 3]
        y, ok = gather_pairs(data["y"], q, m), gather_pairs(data["ok"], q, m)
        bce = F.binary_cross_entropy_with_logits(logit[..., :1], y[..., :1], reduction="none")
        per = torch.cat([bce, (torch.sigmoid(logit[..., 1:]) - y[..., 1:]) ** 2], dim=-1)
        return (masked_column_means(per, ok, dim=1) * self.loss_weights).sum(dim=-1)

    def signals(self, X: torch.Tensor) -> torch.Tensor:
        """``[Q, 3, M]``: ``sigmoid`` of the three heads (mu_q, mu_c, sigma_q)."""
        return torch.sigmoid(self.logits(X))


class MIRTRouter(NeuralSignalRouter):
    """Multidimensional IRT: ability MLP, per-model discrimination and difficulty, three heads.

    Args:
        latent: ability dimension (docs/spec.md: 16).
        hidden: hidden layer sizes of the ability MLP (docs/spec.md: (128,)).
        loss_weights: weights of the (score BCE, cost MSE, sigma MSE) losses (docs/spec.md: 1, 1, 0.5).
        training: :class:`routers.neural.TrainingConfig`; default 30 epochs,
            batch 256 (query, model) pairs, Adam 1e-3.
    """

    default_training = TrainingConfig(epochs=30)

    def __init__(
        self,
        latent: int = 16,
        hidden: Sequence[int] = (128,),
        loss_weights: Sequence[float] = (1.0, 1.0, 0.5),
        training: TrainingConfig | Mapping[str, Any] | None = None,
    ) -> None:
        weights = [float(w) for w in loss_weights]
        if len(weights) != 3 or min(weights) < 0:
            raise ValueError(f"loss_weights must be 3 non-negative numbers, got {loss_weights}")
        self.latent = latent
        self.hidden = hidden
        self.loss_weights = loss_weights
        self.training = training

    def _new_net(self, n_features: int, n_models: int) -> MIRTNet:
        return MIRTNet(
            n_features,
            n_models,
            int(self.latent),
            [int(h) for h in self.hidden],
            [float(w) for w in self.loss_weights],
        )

    def _draw_data(self, targets: Targets, beta: float) -> dict[str, torch.Tensor]:
        y, ok = stacked_targets(targets.mu_q, targets.mu_c, targets.sigma_q)
        return {"y": y, "ok": ok, "pairs": torch.from_numpy(np.isfinite(targets.mu_q))}

    def _examples(self, data: dict[str, torch.Tensor], queries: np.ndarray) -> torch.Tensor:
        return pair_examples(data["pairs"].numpy(), queries)

    def _net_signals(self, net: DrawNet, X: torch.Tensor) -> Signals:
        assert isinstance(net, MIRTNet)
        out = to_numpy(net.signals(X))
        return Signals(out[:, 0], out[:, 1], out[:, 2])
