"""The ``mlp`` router: three scikit-learn ``MLPRegressor`` heads (mu_q, mu_c, sigma_q).

Standardised features; NaN targets filled (with a warning); a zero ``sigma_q`` target is
predicted as exactly 0; one fit per single-shot draw, single BLAS thread. Details:
docs/features.md.
"""

from __future__ import annotations

import warnings
from typing import Any, Sequence

import numpy as np
import scipy.sparse as sp
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPRegressor
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from routers.base import SignalRouter, Signals, check_features, fill_missing_targets
from supervision.modes import Targets

SIGNALS = ("mu_q", "mu_c", "sigma_q")


class MLPRouter(SignalRouter):
    """Three ``MLPRegressor`` heads (mu_q, mu_c, sigma_q) over standardised features.

    Args:
        hidden: hidden layer sizes (docs/spec.md: (128, 64)); ReLU activations, Adam.
        alpha: L2 penalty.
        lr: Adam's initial learning rate.
        max_iter: maximum number of epochs.
        n_jobs: joblib processes for fitting single-shot draws (one router per draw); ``-1``
            uses every core. Default 1: on the shared 2-core machine (both cores already busy
            with other work), 100 draws took 30-42 s with ``n_jobs=1`` and 55 s with ``-1``.
            Raise it on an idle many-core machine. Results do not depend on it.
    """

    def __init__(
        self,
        hidden: Sequence[int] = (128, 64),
        alpha: float = 1e-4,
        lr: float = 1e-3,
        max_iter: int = 800,
        n_jobs: int = 1,
    ) -> None:
        self.hidden = hidden
        self.alpha = alpha
        self.lr = lr
        self.max_iter = max_iter
        self.n_jobs = n_jobs

    def _draw_jobs(self) -> int:
        return int(self.n_jobs)

    def _regressor(self, seed: int) -> Any:
        return MLPRegressor(
            hidden_layer_sizes=tuple(int(h) for h in self.hidden),
            activation="relu",
            solver="adam",
            alpha=float(self.alpha),
            learning_rate_init=float(self.lr),
            max_iter=int(self.max_iter),
            random_state=seed,
        )

    def _fit_single(self, X: Any, targets: Targets, *, lam: float, beta: float, seed: int) -> None:
        X = check_features(X, where="mlp.fit")
        self.n_features_in_ = X.shape[1]
        self.scaler_ = StandardScaler(with_mean=not sp.issparse(X))
        Xs = self.scaler_.fit_transform(X)
        self.heads_: dict[str, Any] = {}
        self.n_iter_: dict[str, int] = {}
        self.converged_: dict[str, bool] = {}
        for name in SIGNALS:
            y = np.asarray(getattr(targets, name), dtype=np.float64)
            if name == "sigma_q" and (y[np.isfinite(y)] == 0.0).all():
                self.heads_[name] = None  # identically zero: predict 0 exactly
                continue
            y = fill_missing_targets(y, name)
            head = self._regressor(seed)
            # One BLAS thread: these matrices are small, and threaded BLAS was 5-10x slower
            # on them; it also makes the numbers independent of the machine's thread count.
            with threadpool_limits(limits=1), warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", ConvergenceWarning)
                head.fit(Xs, y)
            for w in caught:  # re-emit anything that is not the recorded convergence warning
                if not issubclass(w.category, ConvergenceWarning):
                    warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
            self.heads_[name] = head
            self.n_iter_[name] = int(head.n_iter_)
            self.converged_[name] = not any(
                issubclass(w.category, ConvergenceWarning) for w in caught
            )

    def fit_report(self) -> list[dict[str, Any]]:
        """Per fitted draw: epochs run (``n_iter``) and convergence (``converged``) per head.

        One entry (``draw`` 0) after fitting targets without draws. A head that was not trained
        (the zero ``sigma_q`` target) is absent.
        """
        self._check_fitted()
        return [
            {"draw": d, "n_iter": dict(m.n_iter_), "converged": dict(m.converged_)}
            for d, m in enumerate(self.members_)
        ]

    def _predict_single(self, X: Any) -> Signals:
        X = check_features(X, self.n_features_in_, where="mlp.predict")
        Xs = self.scaler_.transform(X)
        n, m = X.shape[0], self.n_models_
        out = []
        for name in SIGNALS:
            head = self.heads_[name]
            if head is None:
                out.append(np.zeros((n, m)))
            else:
                out.append(np.asarray(head.predict(Xs), dtype=np.float64).reshape(n, m))
        return Signals(*out)
