"""The reference code's MLP recipe (``mlp_official``): one seeded pipeline per head.

Each head is ``StandardScaler`` then scikit-learn ``MLPRegressor`` (ReLU, Adam, no early
stopping), multi-output over the models in column order (by name: the release's six models in
the reference order, others sorted), on the float32 embeddings. Head seeds: ``mu_q`` the fit
seed, ``mu_c`` seed + 991, ``sigma_q`` seed + 1991; single-shot draw ``d`` uses seed + d for
its seed. Modes without a risk term (``single_shot``, ``dars_no_risk``) train no ``sigma_q``
head and predict 0. Missing targets are filled with the model's mean (warned). Differences
from ``mlp``: per-head seeds, name-ordered columns, float32, a sigma head whenever the mode
has risk. See docs/official.md.
"""

from __future__ import annotations

import warnings
from typing import Any, Sequence

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from routers.base import Signals
from routers.official.base import OfficialRouter, dense_features, official_targets
from supervision.modes import Targets

#: Seed offset of each head (mu_q, mu_c, sigma_q) from the fit seed, as in the reference code.
HEAD_SEED_OFFSETS = (0, 991, 1991)


class OfficialMLPRouter(OfficialRouter):
    """Two or three seeded ``StandardScaler + MLPRegressor`` heads, columns in name order.

    Args:
        hidden, alpha, lr, max_iter: ``MLPRegressor`` settings (paper: (128, 64), 1e-4, 1e-3, 800).
        n_jobs: joblib processes for single-shot draws (results do not depend on it).
        column_order, selection: see routers.official.base.
    """

    def __init__(
        self,
        hidden: Sequence[int] = (128, 64),
        alpha: float = 1e-4,
        lr: float = 1e-3,
        max_iter: int = 800,
        n_jobs: int = 1,
        column_order: str = "official",
        selection: str = "argmax",
    ) -> None:
        self.hidden = hidden
        self.alpha = alpha
        self.lr = lr
        self.max_iter = max_iter
        self.n_jobs = n_jobs
        self.column_order = column_order
        self.selection = selection

    def _draw_jobs(self) -> int:
        return int(self.n_jobs)

    def head_seeds(self, seed: int, uses_risk: bool) -> dict[str, int]:
        """Seed of every trained head for fit seed ``seed``."""
        names = ("mu_q", "mu_c", "sigma_q") if uses_risk else ("mu_q", "mu_c")
        return {n: int(seed) + off for n, off in zip(names, HEAD_SEED_OFFSETS)}

    def _fit_single(self, X: Any, targets: Targets, *, lam: float, beta: float, seed: int) -> None:
        self._set_order(targets)
        x = dense_features(X, "mlp_official.fit")
        self.n_features_in_ = x.shape[1]
        values = dict(zip(("mu_q", "mu_c", "sigma_q"), official_targets(targets, self.order_, clip=False)))
        self.heads_: dict[str, Any] = {}
        self.n_iter_: dict[str, int] = {}
        self.loss_: dict[str, float] = {}
        for name, head_seed in self.head_seeds(seed, targets.uses_risk).items():
            pipe = make_pipeline(
                StandardScaler(with_mean=True),
                MLPRegressor(
                    hidden_layer_sizes=tuple(int(h) for h in self.hidden), activation="relu",
                    solver="adam", alpha=float(self.alpha), learning_rate_init=float(self.lr),
                    max_iter=int(self.max_iter), early_stopping=False, random_state=head_seed,
                ),
            )  # fmt: skip
            with threadpool_limits(limits=1), warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)  # n_iter_ is recorded
                pipe.fit(x, values[name])
            self.heads_[name] = pipe
            self.n_iter_[name] = int(pipe[-1].n_iter_)
            self.loss_[name] = float(pipe[-1].loss_)
        self.fit_stats_ = {f"train_loss_{k}": v for k, v in self.loss_.items()}  # each head's final loss

    def fit_report(self) -> list[dict[str, Any]]:
        """Per fitted draw: epochs run and final training loss of each head."""
        self._check_fitted()
        return [{"draw": d, "n_iter": dict(m.n_iter_), "loss": dict(m.loss_)} for d, m in enumerate(self.members_)]

    def _predict_single(self, X: Any) -> Signals:
        x = dense_features(X, "mlp_official.predict")
        if x.shape[1] != self.n_features_in_:
            raise ValueError(f"mlp_official: {x.shape[1]} feature columns, fitted on {self.n_features_in_}")
        out = []
        for name in ("mu_q", "mu_c", "sigma_q"):
            pipe = self.heads_.get(name)
            if pipe is None:
                out.append(np.zeros_like(out[0]))
            else:
                out.append(np.asarray(pipe.predict(x)).reshape(x.shape[0], -1))
        return Signals(*out)
