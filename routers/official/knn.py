"""The reference code's kNN recipe (``knn_official``): float32 torch neighbours, 1e-12 exact match.

Per test query: Euclidean distances to the training queries with ``torch.cdist`` in float32
(test queries in batches of ``batch_size``), the ``k`` smallest by ``torch.topk``; weights
``1 / (d + eps)``, or, when some neighbour is within ``exact_tol`` (1e-12), weight 1 on those
neighbours and 0 elsewhere; weights divided by ``sum + 1e-12``. Each signal is the weighted sum
of the neighbours' targets (clipped to [0, 1], float32, in column order; a missing target is
filled with the model's mean). Single-shot draws share the neighbour search; the weighted sums
are taken draw by draw with the same shapes, so every draw equals a separate fit. Differences
from ``knn``: float32, exact-match tolerance 1e-12 instead of ``eps``, targets clipped, no
skipping of missing targets. See docs/official.md.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from routers.base import Signals
from routers.neural import numerics_context
from routers.official.base import OfficialRouter, dense_features, official_targets
from supervision.modes import Targets


class OfficialKNNRouter(OfficialRouter):
    """Inverse-distance kNN as the reference code computes it.

    Args:
        k: neighbours (capped at the number of training queries).
        eps: added to distances in the weights ``1 / (d + eps)``.
        exact_tol: a neighbour at distance ``<= exact_tol`` is an exact match.
        batch_size: test queries per distance batch.
        column_order: ``official`` | ``sorted`` | ``pool`` (see routers.official.base).
        selection: ``argmax`` (plain, first column wins) | ``darsbench`` (ties to lower cost).
    """

    def __init__(
        self,
        k: int = 16,
        eps: float = 1e-8,
        exact_tol: float = 1e-12,
        batch_size: int = 512,
        column_order: str = "official",
        selection: str = "argmax",
    ) -> None:
        if int(k) < 1 or int(batch_size) < 1:
            raise ValueError(f"knn_official: k and batch_size must be >= 1, got {k}, {batch_size}")
        self.k = k
        self.eps = eps
        self.exact_tol = exact_tol
        self.batch_size = batch_size
        self.column_order = column_order
        self.selection = selection

    def _fit_draws(self, X: Any, targets: Targets, *, lam: float, beta: float, seed: int) -> None:
        x = dense_features(X, "knn_official.fit")
        self.n_features_in_ = x.shape[1]
        self.x_train_ = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
        # [3, D, Q, M] float32 targets in column order
        self.values_ = np.stack(
            [np.stack(official_targets(targets.draw(d), self.order_, clip=True)) for d in range(targets.n_draws)],
            axis=1,
        )

    def _fit_single(self, X: Any, targets: Targets, *, lam: float, beta: float, seed: int) -> None:
        self._set_order(targets)
        self._fit_draws(X, targets.stacked(), lam=lam, beta=beta, seed=seed)

    def neighbours(self, X: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """``(weights [n, k], indices [n, k])`` float32 / int64 of every test query."""
        x = torch.from_numpy(np.ascontiguousarray(dense_features(X, "knn_official.predict"), dtype=np.float32))
        if x.shape[1] != self.n_features_in_:
            raise ValueError(f"knn_official: {x.shape[1]} feature columns, fitted on {self.n_features_in_}")
        k = min(int(self.k), self.x_train_.shape[0])
        ws, ids = [], []
        with torch.no_grad(), numerics_context():
            for lo in range(0, x.shape[0], int(self.batch_size)):
                dist = torch.cdist(x[lo : lo + int(self.batch_size)], self.x_train_)
                d, idx = torch.topk(dist, k, dim=1, largest=False, sorted=True)
                exact = d <= self.exact_tol
                w = torch.where(
                    exact.any(dim=1, keepdim=True).expand(-1, k), exact.float(), 1.0 / (d + self.eps)
                )
                ws.append(w / (w.sum(dim=1, keepdim=True) + 1e-12))
                ids.append(idx)
        return torch.cat(ws), torch.cat(ids)

    def _predict_draws(self, X: Any) -> Signals:
        w, idx = self.neighbours(X)
        n_t, n_d = self.values_.shape[:2]
        out = np.empty((n_t, n_d, idx.shape[0], self.values_.shape[-1]), dtype=np.float32)
        bs = int(self.batch_size)
        with torch.no_grad(), numerics_context():
            for t in range(n_t):
                for d in range(n_d):
                    table = torch.from_numpy(self.values_[t, d])
                    for lo in range(0, idx.shape[0], bs):
                        wb, ib = w[lo : lo + bs], idx[lo : lo + bs]
                        out[t, d, lo : lo + bs] = (wb.unsqueeze(-1) * table[ib]).sum(dim=1).numpy()
        return Signals(out[0], out[1], out[2])

    def _predict_single(self, X: Any) -> Signals:
        v = self._predict_draws(X)
        return Signals(v.mu_q[0], v.mu_c[0], v.sigma_q[0])
