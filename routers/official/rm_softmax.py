"""The reference code's RM router (``rm_softmax_official``), with ``loss: softmax | classification``.

Training rows are (query, lambda) pairs, lambda-major: every training query at ``lambdas[0]``,
then at ``lambdas[1]``, ... with ``lambdas = linspace(0, max(lam_max, fit lam), n_lambdas)``
(float32). A row's input is ``[features, lambda]`` (lambda unscaled), its utilities
``u_m = perf_m - lambda * cost_m`` with ``perf = clip(mu_q) - beta * clip(sigma_q)`` and
``cost = clip(mu_c)`` (float32, column order), its label ``argmax_m u_m`` (first column wins).
Network: an MLP ``d + 1 -> hidden -> M`` (ReLU), built from ``torch.manual_seed(seed)``; Adam
over ``epochs`` passes of one ``randperm`` of the rows in batches of ``batch_size`` rows.

Losses: ``softmax`` (expected regret) ``mean_rows sum_m softmax(z / T)_m (max u - u_m)``;
``classification`` the cross-entropy of the logits against the label. Routing at ``lam``: the
argmax of the softmax probabilities (float32) of ``[features, lam]``; ``beta`` is the fit's.
Fit statistics per draw (the reference names): ``train_target_accuracy`` against the labels
and ``train_avg_regret``, both over all (query, lambda) rows, and the last epoch's ``train_loss``.
Differences from ``rm_softmax``: unscaled lambda, lambda-major rows, the classification loss.
See docs/official.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from routers.base import Router
from routers.neural import mlp, numerics_context
from routers.official.base import column_order, dense_features, official_targets
from routers.official.training import train_in_query_batches
from supervision.modes import Targets

LOSSES = ("softmax", "classification")


def rm_rows(
    features: np.ndarray, perf: np.ndarray, cost: np.ndarray, lambdas: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Lambda-major training rows: inputs ``[L*Q, d+1]``, labels ``[L*Q]``, utilities ``[L*Q, M]``
    (float32; row ``l * Q + q`` is query ``q`` at ``lambdas[l]``)."""
    f = np.asarray(features, dtype=np.float32)
    lam = np.asarray(lambdas, dtype=np.float32)
    u = np.asarray(perf, np.float32)[None] - lam[:, None, None] * np.asarray(cost, np.float32)[None]
    n_l, (n_q, d) = lam.shape[0], f.shape
    x = np.concatenate([np.broadcast_to(f, (n_l, n_q, d)).reshape(-1, d), np.repeat(lam, n_q)[:, None]], axis=1)
    u = u.reshape(-1, u.shape[2])
    return x.astype(np.float32), u.argmax(axis=1).astype(np.int64), u


def rm_loss(logits: torch.Tensor, labels: torch.Tensor, utility: torch.Tensor, loss: str, temperature: float) -> torch.Tensor:
    """The batch loss: cross-entropy (``classification``) or expected regret (``softmax``)."""
    if loss == "classification":
        return nn.functional.cross_entropy(logits, labels)
    prob = torch.softmax(logits / float(temperature), dim=1)
    regret = utility.max(dim=1, keepdim=True).values - utility
    return (prob * regret).sum(dim=1).mean()


class OfficialRMRouter(Router):
    """RM-Softmax / RM-Classification as the reference code trains them.

    Args:
        loss: ``softmax`` (expected regret, the paper's RM-Softmax) or ``classification``
            (cross-entropy on the per-row best model).
        hidden ((256, 256)), temperature (1.0), lam_max (0.1), n_lambdas (11), epochs (20),
        batch_size (256 rows), lr (1e-3): the reference settings.
        column_order: see routers.official.base (labels and ties follow it).
    """

    official = True

    def __init__(
        self,
        loss: str = "softmax",
        hidden: Sequence[int] = (256, 256),
        temperature: float = 1.0,
        lam_max: float = 0.1,
        n_lambdas: int = 11,
        epochs: int = 20,
        batch_size: int = 256,
        lr: float = 1e-3,
        column_order: str = "official",
    ) -> None:
        if loss not in LOSSES:
            raise ValueError(f"rm_softmax_official: unknown loss {loss!r}; choose one of {LOSSES}")
        if float(temperature) <= 0:
            raise ValueError(f"rm_softmax_official: temperature must be positive, got {temperature}")
        self.loss = loss
        self.hidden = hidden
        self.temperature = temperature
        self.lam_max = lam_max
        self.n_lambdas = n_lambdas
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.column_order = column_order

    def lambdas(self, lam: float) -> np.ndarray:
        """The training lambda grid ``linspace(0, max(lam_max, lam), n_lambdas)`` (float32)."""
        return np.linspace(0.0, max(float(self.lam_max), float(lam)), int(self.n_lambdas), dtype=np.float32)

    def _fit_single(self, X: Any, targets: Targets, *, lam: float, beta: float, seed: int) -> None:
        self.order_ = column_order(targets.models, self.column_order, targets.mu_q.shape[-1])
        f = dense_features(X, "rm_softmax_official.fit").astype(np.float32)
        mu_q, mu_c, sd = official_targets(targets, self.order_, clip=False)
        perf = np.clip(mu_q, 0.0, 1.0) - float(beta) * np.clip(sd, 0.0, 1.0)
        x, labels, u = (torch.from_numpy(a) for a in rm_rows(f, perf, np.clip(mu_c, 0.0, 1.0), self.lambdas(lam)))

        def batch_loss(net: nn.Module, idx: torch.Tensor) -> torch.Tensor:
            return rm_loss(net(x[idx]), labels[idx], u[idx], self.loss, float(self.temperature))

        net, losses = train_in_query_batches(
            lambda: mlp([x.shape[1], *[int(h) for h in self.hidden], u.shape[1]]), x.shape[0], batch_loss,
            epochs=self.epochs, batch_size=self.batch_size, lr=self.lr, weight_decay=0.0, seed=seed,
        )
        with torch.no_grad(), numerics_context():
            chosen = net(x).argmax(dim=1)
            regret = u.max(dim=1).values - u[torch.arange(u.shape[0]), chosen]
        self.net_ = net
        self.n_features_in_ = f.shape[1]
        self.train_loss_ = losses
        self.fit_stats_ = {
            "train_loss": losses[-1] if losses else float("nan"),  # nan: no epoch ran
            "train_target_accuracy": float((chosen == labels).float().mean()),
            "train_avg_regret": float(regret.mean()),
        }

    def _probabilities(self, X: Any, lam: float) -> np.ndarray:
        """Float32 routing probabilities ``[D, Q, M]`` in pool order."""
        self._check_fitted()
        f = dense_features(X, "rm_softmax_official.predict").astype(np.float32)
        x = torch.from_numpy(np.concatenate([f, np.full((f.shape[0], 1), float(lam), np.float32)], axis=1))
        out = []
        for m in self.members_:
            if f.shape[1] != m.n_features_in_:
                raise ValueError(f"rm_softmax_official: {f.shape[1]} feature columns, fitted on {m.n_features_in_}")
            with torch.no_grad(), numerics_context():
                p = torch.softmax(m.net_(x), dim=1).numpy().astype(np.float32)
            out.append(p[:, np.argsort(m.order_)])
        return np.stack(out)

    def _drop(self, a: np.ndarray) -> np.ndarray:
        return a if self.has_draws_ else a[0]

    def scores(self, X: Any, lam: float, beta: float) -> np.ndarray:
        """Routing probabilities at ``lam`` (``beta`` is the fit's, baked into the targets)."""
        return self._drop(self._probabilities(X, lam).astype(np.float64))

    def route(self, X: Any, lam: float, beta: float) -> np.ndarray:
        """Argmax of the float32 probabilities, the first column in column order on ties."""
        p = self._probabilities(X, lam)
        order = self.members_[0].order_
        return self._drop(order[p[..., order].argmax(axis=-1)])
