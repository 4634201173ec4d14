"""The ``knn`` router: inverse-distance-weighted mean of the ``k`` nearest training targets.

``s(x, m) = sum_j w_j s(n_j, m) / sum_j w_j`` with ``w_j = 1 / (d_j + eps)`` over the neighbours with
a finite target; exact matches take all the weight; all single-shot draws share one neighbour
search. Rules (ties, fallback, sparse input): docs/features.md.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import scipy.sparse as sp

from routers.base import (
    SharedDrawsRouter,
    check_features,
    stack_targets,
    target_means,
    warn_fallback,
)
from supervision.modes import Targets

#: Rough cap on the number of float64 elements of one chunk's temporary arrays.
_CHUNK_ELEMENTS = 4_000_000


# --------------------------------------------------------------------------- helpers
def weighted_target_mean(
    gathered: np.ndarray, weights: np.ndarray, exact: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """Weighted mean over the neighbour axis, skipping non-finite targets.

    Args:
        gathered: ``[T, D, n, k, M]`` targets of each query's ``k`` neighbours.
        weights: ``[n, k]`` non-negative weights.
        exact: ``[n, k]`` bool, or None. Where a query has an exact neighbour with a finite
            target (for a given target, draw and model), the exact neighbours share the weight
            equally instead.

    Returns:
        ``(mean [T, D, n, M], defined [T, D, n, M])``; ``mean`` is NaN where not defined (no
        neighbour with a finite target and positive weight).
    """
    finite = np.isfinite(gathered)
    vals = np.where(finite, gathered, 0.0)
    fin = finite.astype(np.float64)
    num = np.einsum("nk,tdnkm->tdnm", weights, vals)
    den = np.einsum("nk,tdnkm->tdnm", weights, fin)
    if exact is not None and exact.any():
        e = exact.astype(np.float64)
        num_e = np.einsum("nk,tdnkm->tdnm", e, vals)
        den_e = np.einsum("nk,tdnkm->tdnm", e, fin)
        use_e = den_e > 0
        num = np.where(use_e, num_e, num)
        den = np.where(use_e, den_e, den)
    defined = den > 0
    mean = np.divide(num, den, out=np.full_like(num, np.nan), where=defined)
    return mean, defined


def k_smallest(d2: np.ndarray, k: int) -> np.ndarray:
    """Column indices ``[n, k]`` of each row's ``k`` smallest values, smallest first, ties to
    the lower index: exactly ``np.argsort(d2, axis=1, kind="stable")[:, :k]``, without sorting
    whole rows. A partial selection finds each row's ``k``-th value; only the entries at or below
    it (the ``k`` winners and any ties) are sorted."""
    n, m = d2.shape
    if k >= m:
        return np.argsort(d2, axis=1, kind="stable")[:, :k]
    kth = np.partition(d2, k - 1, axis=1)[:, k - 1]  # NaN sorts last, as in argsort
    if np.isnan(kth).any():  # a row with fewer than k comparable values: the plain sort
        return np.argsort(d2, axis=1, kind="stable")[:, :k]
    rows, cols = np.nonzero(d2 <= kth[:, None])  # row-major: columns ascending within a row
    order = np.lexsort((cols, d2[rows, cols], rows))
    cols = cols[order]
    counts = np.bincount(rows, minlength=n)
    starts = np.cumsum(counts) - counts
    return cols[starts[:, None] + np.arange(k)]


def _row_sq_norms(X: Any) -> np.ndarray:
    if sp.issparse(X):
        return np.asarray(X.multiply(X).sum(axis=1)).ravel()
    return np.einsum("ij,ij->i", X, X)


# --------------------------------------------------------------------------- router
class KNNRouter(SharedDrawsRouter):
    """Inverse-distance-weighted k-nearest-neighbour regression of the three signals.

    Args:
        k: number of neighbours (capped at the number of training queries).
        eps: added to every distance in the weights ``1 / (d + eps)``; a neighbour with
            ``d <= eps`` is an exact match and takes all the weight (see the module doc).
    """

    def __init__(self, k: int = 16, eps: float = 1e-8) -> None:
        if int(k) < 1:
            raise ValueError(f"knn: k must be >= 1, got {k}")
        if float(eps) < 0:
            raise ValueError(f"knn: eps must be >= 0, got {eps}")
        self.k = k
        self.eps = eps

    # ------------------------------------------------------------------ fitting
    def _store(self, X: Any, values: np.ndarray) -> None:
        X = check_features(X, where="knn.fit")
        n_train = X.shape[0]
        if n_train == 0:
            raise ValueError("knn.fit: no training queries")
        if int(self.k) > n_train:
            warnings.warn(
                f"knn: k={self.k} exceeds the {n_train} training queries; using k={n_train}",
                stacklevel=4,
            )
        self.k_ = min(int(self.k), n_train)
        self.X_train_ = X
        self.train_sq_ = _row_sq_norms(X)
        self.values_ = values  # [3, D, Q, M]
        self.fallback_ = target_means(values, "knn")  # [3, D, M]

    def _fit_single(self, X: Any, targets: Targets, *, lam: float, beta: float, seed: int) -> None:
        self._store(X, stack_targets(targets)[:, None])

    def _fit_draws(self, X: Any, targets: Targets, *, lam: float, beta: float, seed: int) -> None:
        self._store(X, stack_targets(targets))

    # --------------------------------------------------------------- prediction
    def kneighbors(self, X: Any) -> tuple[np.ndarray, np.ndarray]:
        """Indices ``[n, k]`` of each query's nearest training queries and their distances.

        Ranked by computed squared distance, ties to the lower training index; distances are
        ``|x - y|`` computed directly.
        """
        if not hasattr(self, "X_train_"):
            raise RuntimeError("KNNRouter is not fitted; call fit() first")
        X = check_features(X, self.X_train_.shape[1], where="knn.predict")
        Xtr, k = self.X_train_, self.k_
        sparse = sp.issparse(Xtr)
        if sparse and not sp.issparse(X):
            X = sp.csr_matrix(X)
        elif not sparse and sp.issparse(X):
            X = X.toarray()
        n, n_train, dim = X.shape[0], Xtr.shape[0], Xtr.shape[1]
        x_sq = _row_sq_norms(X)
        chunk = max(1, _CHUNK_ELEMENTS // max(n_train, k * (1 if sparse else dim), 1))
        # CSR once: a sparse product converts a CSC operand (Xtr.T) to CSR on every call
        Xtr_t = Xtr.T.tocsr() if sparse else Xtr.T
        idx = np.empty((n, k), dtype=np.int64)
        dist = np.empty((n, k), dtype=np.float64)
        for lo in range(0, n, chunk):
            hi = min(n, lo + chunk)
            xb = X[lo:hi]
            cross = xb @ Xtr_t
            cross = cross.toarray() if sp.issparse(cross) else cross
            d2 = np.add(x_sq[lo:hi, None], self.train_sq_[None, :])
            cross *= 2.0  # exact, in place: d2 is (|x|^2 + |y|^2) - 2 x.y as before, one temporary less
            d2 -= cross
            nb = k_smallest(d2, k)
            if sparse:
                diff = xb[np.repeat(np.arange(hi - lo), k)] - Xtr[nb.ravel()]
                dd = np.asarray(diff.multiply(diff).sum(axis=1)).reshape(hi - lo, k)
            else:
                diff = xb[:, None, :] - Xtr[nb]
                dd = np.einsum("nkd,nkd->nk", diff, diff)
            idx[lo:hi] = nb
            dist[lo:hi] = np.sqrt(dd)
        return idx, dist

    def _predict_values(self, X: Any) -> np.ndarray:
        """Predictions ``[3, D, n, M]`` for every stored draw."""
        idx, dist = self.kneighbors(X)
        eps = float(self.eps)
        weights = 1.0 / (dist + eps) if eps > 0 else np.divide(
            1.0, dist, out=np.zeros_like(dist), where=dist > 0
        )
        exact = dist <= eps
        n_t, n_d, _, n_m = self.values_.shape
        out = np.empty((n_t, n_d, idx.shape[0], n_m))
        undefined = np.zeros(out.shape, dtype=bool)
        # Chunk over test queries so the gathered [3, D, n, k, M] block stays small.
        per_query = n_t * n_d * self.k_ * n_m
        chunk = max(1, _CHUNK_ELEMENTS // max(per_query, 1))
        for lo in range(0, idx.shape[0], chunk):
            hi = min(idx.shape[0], lo + chunk)
            gathered = self.values_[:, :, idx[lo:hi]]  # [3, D, b, k, M]
            mean, defined = weighted_target_mean(gathered, weights[lo:hi], exact[lo:hi])
            out[:, :, lo:hi] = mean
            undefined[:, :, lo:hi] = ~defined
        if undefined.any():
            warn_fallback("knn", undefined, "neighbour")
            np.copyto(out, self.fallback_[:, :, None, :], where=undefined)  # in place: no second [3, D, n, M]
        return out

