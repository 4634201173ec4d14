"""The ``avengers_pro`` router: KMeans clusters of training queries, per-cluster mean targets.

A test query averages the stored targets of its ``top_k`` nearest non-empty clusters; all
single-shot draws share one KMeans fit (the run seed). Rules and caps: docs/features.md.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from sklearn.cluster import KMeans

from routers.base import (
    SharedDrawsRouter,
    check_features,
    stack_targets,
    target_means,
    warn_fallback,
)
from supervision.modes import Targets


class AvengersProRouter(SharedDrawsRouter):
    """Cluster-mean router: KMeans over training queries, mean targets of the nearest clusters.

    Args:
        n_clusters: KMeans clusters (docs/spec.md: 32), capped at the number of training queries.
        n_init: KMeans initialisations (best inertia kept).
        max_iter: KMeans iterations per initialisation.
        top_k: nearest clusters averaged per test query (docs/spec.md: 3).
    """

    def __init__(
        self, n_clusters: int = 32, n_init: int = 10, max_iter: int = 300, top_k: int = 3
    ) -> None:
        params = {"n_clusters": n_clusters, "n_init": n_init, "max_iter": max_iter, "top_k": top_k}
        for name, value in params.items():
            if int(value) < 1:
                raise ValueError(f"avengers_pro: {name} must be >= 1, got {value}")
        self.n_clusters = n_clusters
        self.n_init = n_init
        self.max_iter = max_iter
        self.top_k = top_k

    # ------------------------------------------------------------------ fitting
    def _fit_all(self, X: Any, values: np.ndarray, seed: int) -> None:
        """Cluster ``X`` once and store cluster means of ``values`` ``[3, D, Q, M]``."""
        X = check_features(X, where="avengers_pro.fit")
        n_train = X.shape[0]
        if n_train == 0:
            raise ValueError("avengers_pro.fit: no training queries")
        if int(self.n_clusters) > n_train:
            warnings.warn(
                f"avengers_pro: n_clusters={self.n_clusters} exceeds the {n_train} training "
                f"queries; using {n_train} clusters",
                stacklevel=4,
            )
        n_clusters = min(int(self.n_clusters), n_train)
        self.kmeans_ = KMeans(
            n_clusters=n_clusters, n_init=int(self.n_init), max_iter=int(self.max_iter), random_state=seed
        ).fit(X)
        self.n_features_in_ = X.shape[1]
        labels = self.kmeans_.labels_
        onehot = np.zeros((n_train, n_clusters))
        onehot[np.arange(n_train), labels] = 1.0
        self.cluster_sizes_ = onehot.sum(axis=0).astype(np.int64)
        n_nonempty = int((self.cluster_sizes_ > 0).sum())
        if int(self.top_k) > n_nonempty:
            warnings.warn(
                f"avengers_pro: top_k={self.top_k} exceeds the {n_nonempty} non-empty clusters; "
                f"using top_k={n_nonempty}",
                stacklevel=4,
            )
        self.top_k_ = min(int(self.top_k), n_nonempty)
        finite = np.isfinite(values)
        sums = np.einsum("qc,tdqm->tdcm", onehot, np.where(finite, values, 0.0))
        counts = np.einsum("qc,tdqm->tdcm", onehot, finite.astype(np.float64))
        # [3, D, C, M]; NaN where no member of the cluster has a finite target.
        self.cluster_values_ = np.divide(
            sums, counts, out=np.full_like(sums, np.nan), where=counts > 0
        )
        self.fallback_ = target_means(values, "avengers_pro")  # [3, D, M]

    def _fit_single(self, X: Any, targets: Targets, *, lam: float, beta: float, seed: int) -> None:
        self._fit_all(X, stack_targets(targets)[:, None], seed)

    def _fit_draws(self, X: Any, targets: Targets, *, lam: float, beta: float, seed: int) -> None:
        self._fit_all(X, stack_targets(targets), seed)

    # --------------------------------------------------------------- prediction
    def nearest_clusters(self, X: Any) -> np.ndarray:
        """Indices ``[n, top_k]`` of each query's nearest non-empty clusters (nearest first)."""
        if not hasattr(self, "kmeans_"):
            raise RuntimeError("AvengersProRouter is not fitted; call fit() first")
        X = check_features(X, self.n_features_in_, where="avengers_pro.predict")
        dist = np.asarray(self.kmeans_.transform(X), dtype=np.float64)  # [n, C]
        dist[:, self.cluster_sizes_ == 0] = np.inf
        return np.argsort(dist, axis=1, kind="stable")[:, : self.top_k_]

    def _predict_values(self, X: Any) -> np.ndarray:
        """Predictions ``[3, D, n, M]`` for every stored draw."""
        near = self.nearest_clusters(X)
        gathered = self.cluster_values_[:, :, near]  # [3, D, n, k, M]
        finite = np.isfinite(gathered)
        count = finite.sum(axis=3)
        total = np.where(finite, gathered, 0.0).sum(axis=3)
        defined = count > 0
        out = np.divide(total, count, out=np.full_like(total, np.nan), where=defined)
        if not defined.all():
            warn_fallback("avengers_pro", ~defined, "nearest cluster")
            out = np.where(defined, out, self.fallback_[:, :, None, :])
        return out

