"""The router protocol: :class:`Router` (scores and routes), :class:`SignalRouter` (also predicts).

Every router answers ``fit``, ``scores(X, lam, beta)`` (per-model routing scores ``[Q, M]`` or
``[D, Q, M]``), ``route``, ``route_grid`` and ``decide``. A :class:`SignalRouter` also answers
``predict(X) -> Signals`` and is re-scored under any (lambda, beta) without retraining. The
capability is the class: ``predicts_signals`` is declared here, never probed. Parameters,
``clone`` and ``repr`` come from scikit-learn's ``BaseEstimator``. See docs/routers.md.
"""

from __future__ import annotations

import warnings
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar, Sequence

import numpy as np
import scipy.sparse as sp
from joblib import Parallel, delayed
from sklearn.base import BaseEstimator, clone

from supervision.modes import Targets
from supervision.utility import select_grid, select_models, utility

SIGNAL_NAMES = ("mu_q", "mu_c", "sigma_q")


@dataclass(frozen=True)
class Signals:
    """Predicted per-model signals, ``[Q, M]`` or ``[D, Q, M]``."""

    mu_q: np.ndarray
    mu_c: np.ndarray
    sigma_q: np.ndarray

    def clipped(self) -> "Signals":
        return Signals(
            np.clip(self.mu_q, 0.0, 1.0), np.clip(self.mu_c, 0.0, 1.0), np.clip(self.sigma_q, 0.0, 1.0)
        )

    def utility(self, lam: float, beta: float) -> np.ndarray:
        return utility(self.mu_q, self.mu_c, self.sigma_q, lam, beta)

    def select(self, lam: float, beta: float) -> np.ndarray:
        return select_models(self.utility(lam, beta), self.mu_c)

    def select_grid(self, lams: Sequence[float], beta: float) -> np.ndarray:
        """``[L, (D,) Q]``: ``out[l] == select(lams[l], beta)``, all lambdas in one pass."""
        return select_grid(self.mu_q, self.mu_c, self.sigma_q, lams, beta)

    @staticmethod
    def stack(items: list["Signals"]) -> "Signals":
        return Signals(
            np.stack([s.mu_q for s in items]),
            np.stack([s.mu_c for s in items]),
            np.stack([s.sigma_q for s in items]),
        )


@dataclass(frozen=True)
class Decision:
    """A router's decision on some queries at one (lambda, beta).

    ``choices``: chosen model index ``[Q]`` (``[D, Q]``). ``outputs``: the per-model outputs
    to save next to the decisions, by name (``mu_q``, ``mu_c``, ``sigma_q`` for a signal router,
    ``score`` otherwise), each ``[(D,) Q, M]``. ``signals``: the predicted signals, or None.
    """

    choices: np.ndarray
    outputs: dict[str, np.ndarray]
    signals: Signals | None = None


# ------------------------------------------------------------------------------ helpers
def check_features(X: Any, n_features: int | None = None, *, where: str = "features") -> Any:
    """``X`` as float64 dense ``[n, d]`` or CSR; NaN/inf or a wrong width is an error."""
    if sp.issparse(X):
        X = sp.csr_matrix(X, dtype=np.float64)
        finite = np.isfinite(X.data).all()
    else:
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2:
            raise ValueError(
                f"{where}: expected a 2-d matrix [queries, features], got shape {X.shape}"
            )
        finite = np.isfinite(X).all()
    if not finite:
        raise ValueError(f"{where}: feature matrix contains NaN or infinite values")
    if n_features is not None and X.shape[1] != n_features:
        raise ValueError(
            f"{where}: {X.shape[1]} feature columns, the router was fitted on {n_features}"
        )
    return X


def fill_missing_targets(values: np.ndarray, name: str) -> np.ndarray:
    """Replace NaN targets of a ``[Q, M]`` array by the model's mean over the other queries.

    For routers whose learner cannot skip a missing target. It warns with the count, so the
    filling is never silent. A model with no target at all is an error.
    """
    missing = np.isnan(values)
    if not missing.any():
        return values
    col_mean = np.nanmean(np.where(missing, np.nan, values), axis=0) if (~missing).any() else None
    if col_mean is None or np.isnan(col_mean).any():
        raise ValueError(f"target {name!r}: a model has no training observation at all")
    warnings.warn(
        f"target {name!r}: {int(missing.sum())} of {missing.size} (query, model) targets have no "
        "observation; filled with that model's mean target over the other training queries",
        stacklevel=3,
    )
    return np.where(missing, col_mean[None, :], values)


def stack_targets(targets: Targets) -> np.ndarray:
    """``[3, D, Q, M]`` array of (mu_q, mu_c, sigma_q) of stacked (``[D, Q, M]``) targets."""
    return np.stack([targets.mu_q, targets.mu_c, targets.sigma_q]).astype(np.float64)


def target_means(values: np.ndarray, router: str) -> np.ndarray:
    """Per-model mean over training queries ``[3, D, M]`` of ``[3, D, Q, M]`` targets.

    The fallback prediction where no neighbour / cluster has a finite target. A model with no
    finite target at all (in some draw) is an error.
    """
    finite = np.isfinite(values)
    count = finite.sum(axis=2)
    if (count == 0).any():
        t, _, m = np.argwhere(count == 0)[0]
        raise ValueError(f"{router}: model {m} has no training target {SIGNAL_NAMES[t]!r} at all")
    return np.where(finite, values, 0.0).sum(axis=2) / count


def warn_fallback(router: str, undefined: np.ndarray, what: str) -> None:
    """Warn with counts when predictions fell back to the per-model training mean."""
    n_bad = int(undefined.sum())
    if n_bad:
        warnings.warn(
            f"{router}: {n_bad} of {undefined.size} predicted (signal, draw, query, model) values "
            f"had no {what} with a finite target; used that model's mean training target",
            stacklevel=4,
        )


# ------------------------------------------------------------------------------ routers
class Router(BaseEstimator, ABC):
    """Base class of every router: fit, score and route.

    Subclasses take hyperparameters as ``__init__`` arguments and store each one unchanged
    under its own name (scikit-learn's rule: ``get_params``, ``set_params``, ``clone`` and
    ``repr`` read the signature). They implement ``_fit_single`` (one draw) and ``scores``.
    """

    #: True for routers that predict (mu_q, mu_c, sigma_q): declared by :class:`SignalRouter`.
    predicts_signals: ClassVar[bool] = False

    # ----------------------------------------------------------------- public API
    def fit(
        self, X: Any, targets: Targets, *, lam: float = 0.05, beta: float = 0.2, seed: int = 0
    ) -> "Router":
        """Fit on features ``X`` ``[Q, d]`` and ``targets``.

        ``beta`` is the risk weight as the user set it; the router receives the mode's
        effective value (0 for modes without a risk term). Single-shot targets ``[D, Q, M]``
        fit one router per draw (draw ``d`` with seed ``seed + d``); outputs gain ``[D, ...]``.
        """
        n_q = X.shape[0]
        if targets.mu_q.shape[-2] != n_q:
            raise ValueError(f"features have {n_q} rows, targets {targets.mu_q.shape[-2]} queries")
        self.has_draws_ = targets.has_draws
        self.n_models_ = targets.mu_q.shape[-1]
        self.fit_lam_ = float(lam)
        self.fit_beta_ = float(targets.effective_beta(beta))
        self._fit_draws(X, targets.stacked(), lam=self.fit_lam_, beta=self.fit_beta_, seed=seed)
        return self

    @abstractmethod
    def scores(self, X: Any, lam: float, beta: float) -> np.ndarray:
        """Per-model routing scores at (lam, beta), higher is better: ``[Q, M]`` (``[D, Q, M]``)."""

    def route(self, X: Any, lam: float, beta: float) -> np.ndarray:
        """Chosen model index per query ``[Q]`` (``[D, Q]``): argmax of the scores, first wins."""
        return np.asarray(self.scores(X, lam, beta)).argmax(axis=-1)

    def route_grid(
        self, X: Any, lams: Sequence[float], beta: float, decision: Decision | None = None
    ) -> np.ndarray:
        """Choices ``[L, (D,) Q]`` at every lambda of ``lams`` (no retraining)."""
        return np.stack([self.route(X, lam, beta) for lam in lams])

    def decide(self, X: Any, lam: float, beta: float) -> Decision:
        """Choices and per-model outputs at (lam, beta) in one call."""
        return Decision(self.route(X, lam, beta), {"score": self.scores(X, lam, beta)})

    # ----------------------------------------------------------- draw handling
    def _fit_draws(self, X: Any, targets: Targets, *, lam: float, beta: float, seed: int) -> None:
        """Fit every draw of stacked targets; default: one clone of ``self`` per draw."""
        draws = [targets.draw(d) for d in range(targets.n_draws)]
        template = clone(self)
        n_jobs = self._draw_jobs()
        if n_jobs == 1 or len(draws) == 1:
            members = [
                _fit_member(template, X, t, lam, beta, seed + d) for d, t in enumerate(draws)
            ]
        else:
            members = Parallel(n_jobs=n_jobs)(
                delayed(_fit_member)(template, X, t, lam, beta, seed + d)
                for d, t in enumerate(draws)
            )
        self.members_ = members

    def _draw_jobs(self) -> int:
        """Processes for fitting single-shot draws one router per draw (``-1``: all cores)."""
        return 1

    # ------------------------------------------------------ subclass contract
    @abstractmethod
    def _fit_single(self, X: Any, targets: Targets, *, lam: float, beta: float, seed: int) -> None:
        """Fit one router on 2-d targets ``[Q, M]`` (``beta`` already the effective value)."""

    def _fitted_state(self) -> dict[str, Any]:
        """The fitted attributes (public names ending in ``_``): what a bundle saves."""
        return {k: v for k, v in vars(self).items() if k.endswith("_") and not k.startswith("_")}

    def _restore_fitted_state(self, state: dict[str, Any]) -> None:
        """Set fitted attributes read back from a bundle (inverse of :meth:`_fitted_state`)."""
        vars(self).update(state)

    def _check_fitted(self) -> None:
        if not hasattr(self, "has_draws_"):
            raise RuntimeError(f"{type(self).__name__} is not fitted; call fit() first")


def _fit_member(
    template: Router, X: Any, targets: Targets, lam: float, beta: float, seed: int
) -> Router:
    member = clone(template)
    member.has_draws_ = False
    member.n_models_ = targets.mu_q.shape[-1]
    member._fit_single(X, targets, lam=lam, beta=beta, seed=seed)
    return member


class SignalRouter(Router):
    """A router that predicts (mu_q, mu_c, sigma_q) per model.

    ``predict(X)`` gives clipped :class:`Signals`; routing is ``argmax_m (mu_q - lam * mu_c -
    beta * sigma_q)``, ties to the lower predicted ``mu_c``, then pool order. Subclasses
    implement ``_predict_single(X) -> Signals`` (unclipped, one fitted draw).
    """

    predicts_signals: ClassVar[bool] = True

    def predict(self, X: Any) -> Signals:
        """Predicted signals ``[Q, M]`` (``[D, Q, M]`` after fitting single-shot draws)."""
        self._check_fitted()
        sig = self._predict_draws(X).clipped()
        if not self.has_draws_:
            sig = Signals(sig.mu_q[0], sig.mu_c[0], sig.sigma_q[0])
        return sig

    def scores(self, X: Any, lam: float, beta: float) -> np.ndarray:
        """Predicted utilities ``mu_q - lam * mu_c - beta * sigma_q``."""
        return self.predict(X).utility(lam, beta)

    def route(self, X: Any, lam: float, beta: float) -> np.ndarray:
        return self.predict(X).select(lam, beta)

    def route_grid(
        self, X: Any, lams: Sequence[float], beta: float, decision: Decision | None = None
    ) -> np.ndarray:
        """Re-scored from ``decision.signals`` when given (no second prediction)."""
        sig = decision.signals if decision is not None and decision.signals is not None else None
        return (sig if sig is not None else self.predict(X)).select_grid(lams, beta)

    def decide(self, X: Any, lam: float, beta: float) -> Decision:
        sig = self.predict(X)
        outputs = {"mu_q": sig.mu_q, "mu_c": sig.mu_c, "sigma_q": sig.sigma_q}
        return Decision(sig.select(lam, beta), outputs, sig)

    def _predict_draws(self, X: Any) -> Signals:
        """Stacked ``[D, Q, M]`` predictions; default: each member's single prediction."""
        return Signals.stack([m._predict_single(X) for m in self.members_])

    @abstractmethod
    def _predict_single(self, X: Any) -> Signals:
        """Unclipped predictions ``[Q, M]`` of one fitted router."""


class SharedDrawsRouter(SignalRouter):
    """A signal router that computes every draw's predictions in one pass.

    Subclasses implement ``_predict_values(X) -> [3, D, Q, M]`` (mu_q, mu_c, sigma_q stacked on
    the first axis); the single- and multi-draw predictions are slices of it.
    """

    @abstractmethod
    def _predict_values(self, X: Any) -> np.ndarray:
        """Unclipped ``[3, D, Q, M]`` predictions of every fitted draw."""

    def _predict_single(self, X: Any) -> Signals:
        v = self._predict_values(X)[:, 0]
        return Signals(v[0], v[1], v[2])

    def _predict_draws(self, X: Any) -> Signals:
        v = self._predict_values(X)
        return Signals(v[0], v[1], v[2])
