"""The reference code's AvengersPro recipe (``avengers_pro_official``): KMeans refit per draw.

Fitting clusters the float32 training features with scikit-learn ``KMeans`` (``n_init`` 10,
``random_state`` = the fit seed, so single-shot draw ``d`` refits with ``seed + d`` and its
spread includes clustering variance). Per cluster and model each signal is the float32
``nanmean`` of its members' targets (clipped to [0, 1], column order, missing targets filled
with the model's mean); an empty cluster holds the mean over all training queries and can be
among a query's nearest clusters. A test query averages the clusters that ``np.argpartition``
puts among its ``top_k`` smallest float32 distances to the centroids. Differences from
``avengers_pro``: one KMeans per draw, float32, empty clusters kept. See docs/official.md.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.cluster import KMeans

from routers.base import Signals
from routers.official.base import OfficialRouter, dense_features, official_targets
from supervision.modes import Targets


class OfficialAvengersProRouter(OfficialRouter):
    """Cluster-mean router as the reference code computes it.

    Args:
        n_clusters: KMeans clusters (capped at the number of training queries).
        top_k: nearest clusters averaged per test query (capped at ``n_clusters``).
        n_init, max_iter: KMeans settings.
        column_order, selection: see routers.official.base.
    """

    def __init__(
        self,
        n_clusters: int = 32,
        top_k: int = 3,
        n_init: int = 10,
        max_iter: int = 300,
        column_order: str = "official",
        selection: str = "argmax",
    ) -> None:
        for name, value in {"n_clusters": n_clusters, "top_k": top_k, "n_init": n_init, "max_iter": max_iter}.items():
            if int(value) < 1:
                raise ValueError(f"avengers_pro_official: {name} must be >= 1, got {value}")
        self.n_clusters = n_clusters
        self.top_k = top_k
        self.n_init = n_init
        self.max_iter = max_iter
        self.column_order = column_order
        self.selection = selection

    def _fit_single(self, X: Any, targets: Targets, *, lam: float, beta: float, seed: int) -> None:
        self._set_order(targets)
        x = dense_features(X, "avengers_pro_official.fit")
        values = official_targets(targets, self.order_, clip=True)  # 3 x [Q, M] float32
        n_c = min(int(self.n_clusters), x.shape[0])
        self.top_k_ = min(int(self.top_k), n_c)
        self.kmeans_ = KMeans(
            n_clusters=n_c, random_state=seed, n_init=int(self.n_init), max_iter=int(self.max_iter)
        )
        labels = self.kmeans_.fit_predict(x)
        self.n_features_in_ = x.shape[1]
        self.cluster_sizes_ = np.bincount(labels, minlength=n_c)
        tables = np.stack([np.broadcast_to(np.nanmean(v, axis=0), (n_c, v.shape[1])).copy() for v in values])
        # One nanmean per non-empty cluster (at most n_clusters calls): the reference code's
        # float32 summation order, which the selection's ties depend on.
        for c in np.flatnonzero(self.cluster_sizes_):
            members = labels == c
            for t, v in enumerate(values):
                tables[t, c] = np.nanmean(v[members], axis=0)
        self.tables_ = tables  # [3, C, M] float32
        sizes = self.cluster_sizes_
        self.fit_stats_ = {  # the reference code's cluster statistics
            "n_clusters": n_c, "empty_clusters": int((sizes == 0).sum()),
            "min_cluster_size": int(sizes.min()), "max_cluster_size": int(sizes.max()),
        }

    def _predict_single(self, X: Any) -> Signals:
        x = dense_features(X, "avengers_pro_official.predict").astype(np.float32)
        centers = np.asarray(self.kmeans_.cluster_centers_, dtype=np.float32)
        if x.shape[1] != centers.shape[1]:
            raise ValueError(f"avengers_pro_official: {x.shape[1]} feature columns, fitted on {centers.shape[1]}")
        dist = np.linalg.norm(x[:, None, :] - centers[None, :, :], axis=2)
        top = np.argpartition(dist, self.top_k_ - 1, axis=1)[:, : self.top_k_]
        return Signals(*(self.tables_[t][top].mean(axis=1) for t in range(3)))
