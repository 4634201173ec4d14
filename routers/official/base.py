"""Shared conventions of the official router recipes: column order, selection, dtypes.

The paper's reference code orders every per-model array by model name (its six release models
in their notebook order first, any other model after them sorted by name), works on the
float32 sentence embeddings, and routes with a plain ``argmax`` over that column order of
``(mu_q - lam * mu_c) - beta * sigma_q``. :class:`OfficialRouter` gives the official recipes
those conventions; outputs and choices are returned in the pool order like every router.
See docs/official.md.
"""

from __future__ import annotations

from typing import Any, ClassVar, Sequence

import numpy as np
import scipy.sparse as sp

from benchmark.data.release import RELEASE_MODELS
from routers.base import Decision, SignalRouter, Signals, check_features, fill_missing_targets
from supervision.modes import Targets

COLUMN_ORDERS = ("official", "sorted", "pool")
SELECTIONS = ("argmax", "darsbench")


def column_order(models: Sequence[str] | None, how: str, n_models: int) -> np.ndarray:
    """Pool indices in the recipe's column order: ``order[j]`` is the pool index of column ``j``.

    ``official``: the release's six models in the reference code's order (the order of
    ``benchmark.data.release.RELEASE_MODELS``), then every other model sorted by name;
    ``sorted``: all names sorted; ``pool``: the pool order itself.
    """
    if how not in COLUMN_ORDERS:
        raise ValueError(f"unknown column order {how!r}; choose one of {COLUMN_ORDERS}")
    if how == "pool":
        return np.arange(n_models)
    if models is None:
        raise ValueError(
            f"column order {how!r} needs the model names; pass targets built with "
            "make_targets(..., models=<pool names>)"
        )
    names = [str(m) for m in models]
    if how == "sorted":
        ranked = sorted(names)
    else:
        known = [m for m in RELEASE_MODELS if m in names]
        ranked = known + sorted(set(names) - set(known))
    pos = {m: i for i, m in enumerate(names)}
    return np.array([pos[m] for m in ranked], dtype=np.int64)


def official_utility(sig: Signals, lam: float, beta: float) -> np.ndarray:
    """``(mu_q - lam * mu_c) - beta * sigma_q`` in the signals' own dtype and operation order."""
    return (sig.mu_q - lam * sig.mu_c) - float(beta) * sig.sigma_q


def dense_features(X: Any, where: str) -> np.ndarray:
    """Features as the reference code feeds them: dense embeddings as float32 (the MiniLM
    encoder's own dtype, so narrowing darsbench's float64 copy is exact), sparse TF-IDF
    densified in float64."""
    X = check_features(X, where=where)
    if sp.issparse(X):
        return X.toarray()
    return np.asarray(X, dtype=np.float32)


def official_targets(targets: Targets, order: np.ndarray, *, clip: bool) -> list[np.ndarray]:
    """``[mu_q, mu_c, sigma_q]`` ``[Q, M]`` in column order; a missing target is filled with the
    model's mean over the other queries (the reference code's fill, with a warning); clipped
    to [0, 1] as float32 when ``clip`` (the kNN and cluster recipes)."""
    out = []
    for name in ("mu_q", "mu_c", "sigma_q"):
        y = fill_missing_targets(np.asarray(getattr(targets, name), dtype=np.float64), name)[:, order]
        out.append(np.clip(y, 0.0, 1.0).astype(np.float32) if clip else y)
    return out


class OfficialRouter(SignalRouter):
    """A signal router with the reference code's conventions (column order, plain argmax).

    Subclasses set ``column_order`` and ``selection`` in ``__init__`` and implement
    ``_fit_single`` / ``_predict_single``; ``_predict_single`` returns signals in COLUMN order.
    """

    official: ClassVar[bool] = True

    def _set_order(self, targets: Targets) -> None:
        self.order_ = column_order(targets.models, self.column_order, targets.mu_q.shape[-1])

    def fit(self, X: Any, targets: Targets, *, lam: float = 0.05, beta: float = 0.2, seed: int = 0):
        if self.selection not in SELECTIONS:
            raise ValueError(f"unknown selection {self.selection!r}; choose one of {SELECTIONS}")
        self._set_order(targets)
        return super().fit(X, targets, lam=lam, beta=beta, seed=seed)

    def _columns(self, X: Any) -> Signals:
        """Clipped predictions in column order, ``[D, Q, M]``, in the recipe's dtype."""
        self._check_fitted()
        return self._predict_draws(X).clipped()

    def _to_pool(self, sig: Signals) -> Signals:
        inv = np.argsort(self.order_)
        return Signals(sig.mu_q[..., inv], sig.mu_c[..., inv], sig.sigma_q[..., inv])

    def _drop_draw_axis(self, a: np.ndarray) -> np.ndarray:
        return a if self.has_draws_ else a[0]

    def predict(self, X: Any) -> Signals:
        sig = self._to_pool(self._columns(X))
        if not self.has_draws_:
            sig = Signals(sig.mu_q[0], sig.mu_c[0], sig.sigma_q[0])
        return Signals(*(np.asarray(a, dtype=np.float64) for a in (sig.mu_q, sig.mu_c, sig.sigma_q)))

    def _select_columns(self, cols: Signals, lam: float, beta: float) -> np.ndarray:
        if self.selection == "darsbench":
            return self._to_pool(cols).select(lam, beta)
        return self.order_[official_utility(cols, lam, beta).argmax(axis=-1)]

    def route(self, X: Any, lam: float, beta: float) -> np.ndarray:
        return self._drop_draw_axis(self._select_columns(self._columns(X), lam, beta))

    def route_grid(
        self, X: Any, lams: Sequence[float], beta: float, decision: Decision | None = None
    ) -> np.ndarray:
        cols = self._columns(X)
        return np.stack([self._drop_draw_axis(self._select_columns(cols, lam, beta)) for lam in lams])

    def decide(self, X: Any, lam: float, beta: float) -> Decision:
        cols = self._columns(X)
        choices = self._drop_draw_axis(self._select_columns(cols, lam, beta))
        pool = self._to_pool(cols)
        arrays = [self._drop_draw_axis(np.asarray(a, dtype=np.float64)) for a in (pool.mu_q, pool.mu_c, pool.sigma_q)]
        return Decision(choices, dict(zip(("mu_q", "mu_c", "sigma_q"), arrays)), Signals(*arrays))

    def scores(self, X: Any, lam: float, beta: float) -> np.ndarray:
        pool = self._to_pool(self._columns(X))
        return self._drop_draw_axis(np.asarray(official_utility(pool, lam, beta), dtype=np.float64))
