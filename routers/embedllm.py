"""The ``embedllm`` router: model embeddings x a linear projection of the query features.

Score head ``<W x + b, e_m> + c_m`` (BCE against ``clip(mu_q - beta * sigma_q, 0, 1)``), cost head
(MSE); predicts ``sigma_q = 0`` (the fit's beta is baked into the score). docs/routers_neural.md.
"""

from __future__ import annotations

import warnings
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
    pair_examples,
    stacked_linear,
    stacked_targets,
    to_numpy,
)
from supervision.modes import Targets


class EmbedLLMNet(DrawNet):
    """One EmbedLLM network: projection, model embeddings, score bias and cost head."""

    def __init__(self, n_features: int, n_models: int, dim: int, noise: float) -> None:
        super().__init__()
        self.proj = nn.Linear(n_features, dim)
        self.model_emb = nn.Embedding(n_models, dim)
        self.score_bias = nn.Parameter(torch.zeros(n_models))
        self.cost_head = nn.Linear(dim, n_models)
        self.noise_std = float(noise)

    def encode(self, x: torch.Tensor, noise: torch.Generator | None = None) -> torch.Tensor:
        """Projected query embedding ``[R, dim]``; input noise when given a generator."""
        if noise is not None and self.noise_std > 0:
            x = x + self.noise_std * torch.randn(x.shape, generator=noise)
        return self.proj(x)

    def heads(self, z: torch.Tensor) -> torch.Tensor:
        """``[R, 2, M]``: score logits ``<z, e_m> + c_m`` and cost outputs of embeddings ``z``."""
        score = z @ self.model_emb.weight.T + self.score_bias
        return torch.stack([score, self.cost_head(z)], dim=1)

    def loss(
        self,
        X: torch.Tensor,
        data: dict[str, torch.Tensor],
        examples: torch.Tensor,
        noise: torch.Generator | None,
    ) -> torch.Tensor:
        q, m = examples[:, 0], examples[:, 1]
        out = gather_models(encode_rows(lambda x: self.heads(self.encode(x, noise)), X, q), m)
        y, ok = data["y"][q, m], data["ok"][q, m]
        bce = F.binary_cross_entropy_with_logits(out[:, 0], y[:, 0], reduction="none")
        per = torch.stack([bce, (out[:, 1] - y[:, 1]) ** 2], dim=1)
        return masked_column_means(per, ok).sum()

    def stacked_loss(
        self,
        P: Mapping[str, torch.Tensor],
        X: torch.Tensor,
        data: dict[str, torch.Tensor],
        examples: torch.Tensor,
        noise: Sequence[torch.Generator] | None,
    ) -> torch.Tensor:
        q, m = examples[..., 0], examples[..., 1]
        x = X if noise is None or self.noise_std <= 0 else X + self.stacked_noise(X, q, noise)
        z = stacked_linear(x, P["proj.weight"], P["proj.bias"])  # [D, Q, dim]
        score = stacked_linear(z, P["model_emb.weight"], P["score_bias"])
        cost = stacked_linear(z, P["cost_head.weight"], P["cost_head.bias"])
        out = gather_pairs(torch.stack([score, cost], dim=-1), q, m)  # [D, B, 2]
        y, ok = gather_pairs(data["y"], q, m), gather_pairs(data["ok"], q, m)
        bce = F.binary_cross_entropy_with_logits(out[..., 0], y[..., 0], reduction="none")
        per = torch.stack([bce, (out[..., 1] - y[..., 1]) ** 2], dim=-1)
        return masked_column_means(per, ok, dim=1).sum(dim=-1)

    def stacked_noise(
        self, X: torch.Tensor, q: torch.Tensor, noise: Sequence[torch.Generator]
    ) -> torch.Tensor:
        """``[D, Q, d]`` input noise: draw ``d``'s generator gives the rows of the distinct
        queries of its minibatch ``q[d]`` in ascending order, as in :meth:`encode`
        (other rows 0)."""
        D, (n_q, n_f) = q.shape[0], X.shape
        present = torch.zeros(D, n_q, dtype=torch.bool)
        present[torch.arange(D)[:, None], q] = True
        counts = present.sum(dim=1).tolist()
        out = torch.zeros(D, n_q, n_f)
        out[present] = torch.cat(
            [self.noise_std * torch.randn((c, n_f), generator=g) for c, g in zip(counts, noise)]
        )
        return out

    def signals(self, X: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(score logits, cost) ``[Q, M]``."""
        out = self.heads(self.proj(X))
        return out[:, 0], out[:, 1]


class EmbedLLMRouter(NeuralSignalRouter):
    """EmbedLLM: model embeddings x projected query embedding; score (BCE) + cost (MSE) heads.

    Args:
        dim: embedding dimension of queries and models (docs/spec.md: 256).
        noise: standard deviation of the Gaussian input noise while training (docs/spec.md: 0.05).
        training: :class:`routers.neural.TrainingConfig`; default 20 epochs,
            batch 2048 (query, model) pairs, Adam 1e-3.
    """

    default_training = TrainingConfig(epochs=20, batch_size=2048)

    def __init__(
        self,
        dim: int = 256,
        noise: float = 0.05,
        training: TrainingConfig | Mapping[str, Any] | None = None,
    ) -> None:
        if float(noise) < 0:
            raise ValueError(f"noise must be >= 0, got {noise}")
        self.dim = dim
        self.noise = noise
        self.training = training

    def _new_net(self, n_features: int, n_models: int) -> EmbedLLMNet:
        return EmbedLLMNet(n_features, n_models, int(self.dim), float(self.noise))

    def _draw_data(self, targets: Targets, beta: float) -> dict[str, torch.Tensor]:
        score = np.clip(targets.mu_q - beta * targets.sigma_q, 0.0, 1.0)
        y, ok = stacked_targets(score, targets.mu_c)
        return {"y": y, "ok": ok, "pairs": torch.from_numpy(np.isfinite(targets.mu_q))}

    def _examples(self, data: dict[str, torch.Tensor], queries: np.ndarray) -> torch.Tensor:
        return pair_examples(data["pairs"].numpy(), queries)

    def _net_signals(self, net: DrawNet, X: torch.Tensor) -> Signals:
        assert isinstance(net, EmbedLLMNet)
        logit, cost = net.signals(X)
        mu_q = to_numpy(torch.sigmoid(logit))
        return Signals(mu_q, to_numpy(cost), np.zeros_like(mu_q))

    def route(self, X: Any, lam: float, beta: float) -> np.ndarray:
        """Chosen model per query; the risk weight is the fit's (baked into the score head)."""
        self._check_fitted()
        if abs(float(beta) - self.fit_beta_) > 1e-12:
            warnings.warn(
                f"EmbedLLMRouter: the score head was trained on mu_q - beta*sigma_q with "
                f"beta={self.fit_beta_} and predicts sigma_q = 0; routing with beta={beta} "
                "uses the trained beta",
                stacklevel=2,
            )
        return super().route(X, lam, beta)
