"""The ``rm_softmax`` router: a lambda-conditioned pool classifier with a softmax regret loss.

An MLP on ``[features, lambda]`` trained across a lambda grid; a plain :class:`~routers.base.Router`
(no signals): ``scores`` are the routing probabilities, ``route`` the argmax of the logits at
``lam``; beta is the fit's. Loss, scaling and warnings: docs/routers_neural.md.
"""

from __future__ import annotations

import warnings
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from routers.neural import (
    DrawNet,
    NeuralRouter,
    TrainingConfig,
    encode_rows,
    gather_rows,
    mlp,
    numerics_context,
    stacked_linear,
    stacked_sequential,
    target_tensor,
)
from supervision.modes import Targets


class RMSoftmaxNet(DrawNet):
    """MLP over ``[features, lambda]`` -> one logit per model (first layer split in two)."""

    def __init__(
        self,
        n_features: int,
        n_models: int,
        hidden: Sequence[int],
        temperature: float,
        lam_scale: float,
    ) -> None:
        super().__init__()
        if not hidden:
            raise ValueError("rm_softmax needs at least one hidden layer")
        # Linear(n_features + 1, hidden[0]): the last input column is the (scaled) lambda.
        self.first = nn.Linear(n_features + 1, hidden[0])
        self.body = nn.Sequential(nn.ReLU(), mlp([*hidden, n_models]))
        self.temperature = float(temperature)
        self.lam_scale = float(lam_scale)
        self.register_buffer("available", torch.ones(n_models, dtype=torch.bool))

    def _logits(self, xw: torch.Tensor, lam: torch.Tensor) -> torch.Tensor:
        """Logits from ``x @ W_x^T`` rows and raw lambdas (``[R]``)."""
        h = xw + (lam * self.lam_scale)[:, None] * self.first.weight[:, -1] + self.first.bias
        return self.body(h)

    def logits(self, X: torch.Tensor, lam: float) -> torch.Tensor:
        """``[Q, M]`` logits at one lambda; models never seen in training get -inf."""
        xw = X @ self.first.weight[:, :-1].T
        out = self._logits(xw, torch.full((X.shape[0],), float(lam)))
        return out.masked_fill(~self.available, -torch.inf)

    def loss(
        self,
        X: torch.Tensor,
        data: dict[str, torch.Tensor],
        examples: torch.Tensor,
        noise: torch.Generator | None,
    ) -> torch.Tensor:
        q, j = examples[:, 0], examples[:, 1]
        w_x = self.first.weight[:, :-1]
        xw = encode_rows(lambda x: x @ w_x.T, X, q)
        lam = data["grid"][j]
        logits = self._logits(xw, lam) / self.temperature
        ok = data["ok"][q]
        u = data["perf"][q] - lam[:, None] * data["cost"][q]
        best = u.masked_fill(~ok, -torch.inf).max(dim=1, keepdim=True).values
        regret = (best - u).masked_fill(~ok, 0.0)
        prob = torch.softmax(logits.masked_fill(~ok, -torch.inf), dim=1)
        return (prob * regret).sum(dim=1).mean()

    def stacked_loss(
        self,
        P: Mapping[str, torch.Tensor],
        X: torch.Tensor,
        data: dict[str, torch.Tensor],
        examples: torch.Tensor,
        noise: Sequence[torch.Generator] | None,
    ) -> torch.Tensor:
        q, j = examples[..., 0], examples[..., 1]
        w, b = P["first.weight"], P["first.bias"]  # [D, H, d + 1], [D, H]
        xw = gather_rows(stacked_linear(X, w[..., :-1]), q)  # [D, B, H]
        lam = data["grid"].gather(1, j)  # [D, B]
        h = xw + (lam * self.lam_scale)[..., None] * w[:, None, :, -1] + b[:, None, :]
        logits = stacked_sequential(self.body, "body", P, h) / self.temperature
        ok = gather_rows(data["ok"], q)
        u = gather_rows(data["perf"], q) - lam[..., None] * gather_rows(data["cost"], q)
        best = u.masked_fill(~ok, -torch.inf).max(dim=-1, keepdim=True).values
        regret = (best - u).masked_fill(~ok, 0.0)
        prob = torch.softmax(logits.masked_fill(~ok, -torch.inf), dim=-1)
        return (prob * regret).sum(dim=-1).mean(dim=-1)


class RMSoftmaxRouter(NeuralRouter):
    """Lambda-conditioned classifier over the pool trained with a softmax regret loss.

    Args:
        hidden: hidden layer sizes (docs/spec.md: (256, 256)), ReLU.
        temperature: softmax temperature of the regret loss and of :meth:`scores` (docs/spec.md: 1).
        lam_grid_min, lam_grid_max, lam_grid_size: the training lambda grid
            ``linspace(min, max, size)`` (docs/spec.md: 0, 0.1, 11).
        training: :class:`routers.neural.TrainingConfig`; default 20 epochs,
            batch 256 (query, lambda) rows, Adam 1e-3.
    """

    default_training = TrainingConfig(epochs=20)

    def __init__(
        self,
        hidden: Sequence[int] = (256, 256),
        temperature: float = 1.0,
        lam_grid_min: float = 0.0,
        lam_grid_max: float = 0.1,
        lam_grid_size: int = 11,
        training: TrainingConfig | Mapping[str, Any] | None = None,
    ) -> None:
        if float(temperature) <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        if int(lam_grid_size) < 1 or float(lam_grid_max) < float(lam_grid_min):
            raise ValueError("the lambda grid needs size >= 1 and max >= min")
        self.hidden = hidden
        self.temperature = temperature
        self.lam_grid_min = lam_grid_min
        self.lam_grid_max = lam_grid_max
        self.lam_grid_size = lam_grid_size
        self.training = training

    @property
    def lam_grid(self) -> np.ndarray:
        """The training lambda grid."""
        return np.linspace(float(self.lam_grid_min), float(self.lam_grid_max), int(self.lam_grid_size))

    def _lam_scale(self) -> float:
        top = float(np.abs(self.lam_grid).max())
        return 1.0 / top if top > 0 else 1.0

    def _new_net(self, n_features: int, n_models: int) -> RMSoftmaxNet:
        return RMSoftmaxNet(
            n_features,
            n_models,
            [int(h) for h in self.hidden],
            float(self.temperature),
            self._lam_scale(),
        )

    def _draw_data(self, targets: Targets, beta: float) -> dict[str, torch.Tensor]:
        perf, perf_ok = target_tensor(targets.mu_q - beta * targets.sigma_q)
        cost, cost_ok = target_tensor(targets.mu_c)
        return {
            "perf": perf,
            "cost": cost,
            "ok": (perf_ok * cost_ok).bool(),
            "grid": torch.tensor(self.lam_grid, dtype=torch.float32),
        }

    def _prepare_net(self, net: DrawNet, data: dict[str, torch.Tensor]) -> None:
        net.available.copy_(data["ok"].any(dim=0))

    def _examples(self, data: dict[str, torch.Tensor], queries: np.ndarray) -> torch.Tensor:
        has = data["ok"].any(dim=1).numpy()
        q = queries[has[queries]]
        n_lam = len(data["grid"])
        rows = np.stack([np.repeat(q, n_lam), np.tile(np.arange(n_lam), len(q))], axis=1)
        return torch.from_numpy(rows.astype(np.int64))

    def _fit_draws(self, X: Any, targets: Targets, *, lam: float, beta: float, seed: int) -> None:
        self.warned_beta_ = False
        self.warned_lam_ = False
        super()._fit_draws(X, targets, lam=lam, beta=beta, seed=seed)

    # ------------------------------------------------------------------ public API
    def logits(self, X: Any, lam: float) -> np.ndarray:
        """Raw logits at ``lam``: ``[Q, M]``, or ``[D, Q, M]`` after single-shot draws."""
        self._check_fitted()
        lam = float(lam)
        self._warn_extrapolation(lam)
        Xt = self._features(X, fit=False)
        with torch.no_grad(), numerics_context():
            out = np.stack(
                [net.logits(Xt, lam).to(torch.float64).numpy() for net in self._fitted_nets()]
            )
        return out if self.has_draws_ else out[0]

    def scores(self, X: Any, lam: float, beta: float) -> np.ndarray:
        """Routing probabilities ``softmax(logits / temperature)`` at ``lam`` (``[(D,) Q, M]``).

        ``beta`` is the fit's (baked into the training targets); another value warns once.
        """
        self._check_beta(beta)
        z = self.logits(X, lam) / float(self.temperature)
        z = z - z.max(axis=-1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=-1, keepdims=True)

    def route(self, X: Any, lam: float, beta: float) -> np.ndarray:
        """Argmax of the logits at ``lam`` (ties: pool order); ``beta`` is the fit's."""
        self._check_beta(beta)
        return self.logits(X, lam).argmax(axis=-1)

    def _check_beta(self, beta: float) -> None:
        self._check_fitted()
        if abs(float(beta) - self.fit_beta_) > 1e-12 and not self.warned_beta_:
            self.warned_beta_ = True
            warnings.warn(
                f"RMSoftmaxRouter was trained with beta={self.fit_beta_} baked into its "
                f"targets; routing with beta={beta} uses the trained beta",
                stacklevel=3,
            )

    def _warn_extrapolation(self, lam: float) -> None:
        lo, hi = float(self.lam_grid_min), float(self.lam_grid_max)
        if not lo - 1e-12 <= lam <= hi + 1e-12 and not self.warned_lam_:
            self.warned_lam_ = True
            warnings.warn(
                f"RMSoftmaxRouter: lambda={lam} is outside the training grid [{lo}, {hi}]; "
                "the network extrapolates (warned once per fitted router)",
                stacklevel=3,
            )
