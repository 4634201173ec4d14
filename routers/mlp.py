"""The ``mlp`` router: three MLP regressor heads (mu_q, mu_c, sigma_q) over standardised features.

Default ``impl="vectorised"``: every (draw, head) network of a fit is trained at once by
:func:`fit_mlp_stack`, a numpy replica of scikit-learn's ``MLPRegressor`` (ReLU, Adam, squared
error, ``batch_size="auto"``, tol / n_iter_no_change stopping) that gives bit-identical weights
and predictions; ``impl="sklearn"`` fits one ``MLPRegressor`` per head and draw (the reference).
Both pin BLAS to one thread. Details: docs/features.md.
"""

from __future__ import annotations

import math
import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import scipy.sparse as sp
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPRegressor
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from routers.base import (
    SignalRouter,
    Signals,
    check_features,
    fill_missing_targets,
    stack_targets,
)
from supervision.modes import Targets

SIGNALS = ("mu_q", "mu_c", "sigma_q")
IMPLS = ("vectorised", "sklearn")

# scikit-learn MLPRegressor defaults that the router does not expose.
TOL = 1e-4
N_ITER_NO_CHANGE = 10
BETA_1, BETA_2, EPSILON = 0.9, 0.999, 1e-8
MAX_BATCH = 200  # batch_size="auto": min(200, n_samples)
#: Working memory of one chunk of networks trained together (parameters, Adam moments,
#: activations); bounds peak memory whatever the number of draws.
CHUNK_BYTES = 64 * 2**20


# ------------------------------------------------------------------------- stacked networks
@dataclass
class MLPStack:
    """``K`` independently trained ReLU networks with identity output, stacked.

    ``coefs[i]``: ``[K, fan_in, fan_out]``; ``intercepts[i]``: ``[K, fan_out]``; ``n_iter``:
    epochs run ``[K]``; ``converged``: stopped by the tol rule before ``max_iter`` ``[K]``;
    ``loss_curves``: per network, its training loss after every epoch (sklearn's ``loss_curve_``).
    """

    coefs: list[np.ndarray]
    intercepts: list[np.ndarray]
    n_iter: np.ndarray
    converged: np.ndarray
    loss_curves: list[np.ndarray]

    def predict(self, X: Any, nets: np.ndarray | None = None) -> np.ndarray:
        """Outputs ``[K, n, n_outputs]`` of networks ``nets`` (default: all) on ``X`` ``[n, d]``."""
        nets = np.arange(len(self.n_iter)) if nets is None else np.asarray(nets)
        n_out = self.coefs[-1].shape[2]
        out = np.empty((len(nets), X.shape[0], n_out))
        per_net = 8 * X.shape[0] * sum(c.shape[2] for c in self.coefs)
        size = max(1, CHUNK_BYTES // per_net)
        with threadpool_limits(limits=1):
            for lo in range(0, len(nets), size):
                part = nets[lo : lo + size]
                acts = _forward(X, [c[part] for c in self.coefs], [b[part] for b in self.intercepts])
                out[lo : lo + size] = acts[-1]
        return out


def init_params(
    rs: np.random.RandomState, layer_units: Sequence[int]
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Glorot-uniform weights drawn from ``rs`` as ``MLPRegressor`` draws them (ReLU factor 6).

    The order of sklearn's ``_initialize``: per layer, the ``[fan_in, fan_out]`` weights, then
    the ``[fan_out]`` intercepts, from ``U(-b, b)`` with ``b = sqrt(6 / (fan_in + fan_out))``.
    ``rs`` is then where sklearn's random state is when training starts.
    """
    coefs, intercepts = [], []
    for fan_in, fan_out in zip(layer_units[:-1], layer_units[1:]):
        bound = np.sqrt(6.0 / (fan_in + fan_out))
        coefs.append(rs.uniform(-bound, bound, (fan_in, fan_out)))
        intercepts.append(rs.uniform(-bound, bound, fan_out))
    return coefs, intercepts


def fit_mlp_stack(
    X: Any,
    Y: np.ndarray,
    seeds: Sequence[int],
    *,
    hidden: Sequence[int] = (128, 64),
    alpha: float = 1e-4,
    lr: float = 1e-3,
    max_iter: int = 800,
    n_jobs: int = 1,
) -> MLPStack:
    """Train ``K`` networks on shared features: network ``k`` fits ``Y[k]`` with seed ``seeds[k]``.

    Network ``k`` equals ``MLPRegressor(hidden_layer_sizes=hidden, alpha=alpha,
    learning_rate_init=lr, max_iter=max_iter, random_state=seeds[k]).fit(X, Y[k])`` to the
    last bit (same BLAS calls per network, same elementwise operations, same RNG stream:
    initialisation, then one ``RandomState.shuffle`` of the sample order per epoch). A network
    whose training loss has not improved by ``TOL`` for more than ``N_ITER_NO_CHANGE`` epochs
    stops and is frozen; the others go on. Networks are trained in memory-bounded chunks,
    ``n_jobs`` threads at a time (BLAS stays single-threaded; results do not depend on it).

    Args:
        X: ``[n, d]`` float64 features, dense or CSR.
        Y: ``[K, n, m]`` float64 targets, finite.
        seeds: ``K`` integer seeds (networks with the same seed share initial weights and
            shuffles, as separate sklearn fits with that seed would).
    """
    Y = np.asarray(Y, dtype=np.float64)
    if Y.ndim != 3 or Y.shape[1] != X.shape[0]:
        raise ValueError(f"fit_mlp_stack: targets must be [K, {X.shape[0]}, m], got {Y.shape}")
    if not np.isfinite(Y).all():
        raise ValueError("fit_mlp_stack: targets contain NaN or infinite values")
    seeds = np.asarray(seeds, dtype=np.int64)
    if seeds.shape != (Y.shape[0],):
        raise ValueError(f"fit_mlp_stack: {len(seeds)} seeds for {Y.shape[0]} networks")
    if not sp.issparse(X):
        X = np.asarray(X, dtype=np.float64)
    units = [X.shape[1], *(int(h) for h in hidden), Y.shape[2]]
    cfg = _Config(units, float(alpha), float(lr), int(max_iter))
    K = Y.shape[0]
    chunks = np.array_split(np.arange(K), _n_chunks(K, X, units, max(1, int(n_jobs))))
    with threadpool_limits(limits=1):
        if n_jobs == 1 or len(chunks) == 1:
            parts = [_train_chunk(X, Y[c], seeds[c], cfg) for c in chunks]
        else:
            with ThreadPoolExecutor(max_workers=int(n_jobs)) as pool:
                parts = list(pool.map(lambda c: _train_chunk(X, Y[c], seeds[c], cfg), chunks))
    return MLPStack(
        coefs=[np.concatenate([p.coefs[i] for p in parts]) for i in range(len(units) - 1)],
        intercepts=[np.concatenate([p.intercepts[i] for p in parts]) for i in range(len(units) - 1)],
        n_iter=np.concatenate([p.n_iter for p in parts]),
        converged=np.concatenate([p.converged for p in parts]),
        loss_curves=[c for p in parts for c in p.loss_curves],
    )


@dataclass(frozen=True)
class _Config:
    units: list[int]
    alpha: float
    lr: float
    max_iter: int


def _n_chunks(K: int, X: Any, units: list[int], n_jobs: int) -> int:
    n_params = sum(a * b + b for a, b in zip(units[:-1], units[1:]))
    batch = min(MAX_BATCH, X.shape[0])
    # parameters, two Adam moments, gradients and update temporaries; batch inputs and activations
    per_net = 8 * (5 * n_params + 3 * batch * sum(units))
    return max(math.ceil(K / max(1, CHUNK_BYTES // per_net)), min(n_jobs, K))


def _matmul_first(A: Any, W: np.ndarray) -> np.ndarray:
    """``A[k] @ W[k]`` for a dense ``[K, n, d]`` stack, or a list of ``K`` sparse matrices."""
    if isinstance(A, list):  # sparse inputs: scipy's product per network, as sklearn computes it
        return np.stack([a @ w for a, w in zip(A, W)])
    return np.matmul(A, W)


def _forward(X0: Any, coefs: list[np.ndarray], intercepts: list[np.ndarray]) -> list[np.ndarray]:
    """Activations of every layer (sklearn's ``_forward_pass``); ``X0``: ``[n, d]`` shared by all
    networks, ``[K, n, d]``, or a list of ``K`` sparse matrices."""
    if sp.issparse(X0):
        X0 = [X0] * coefs[0].shape[0]
    acts = [X0]
    last = len(coefs) - 1
    for i, (W, b) in enumerate(zip(coefs, intercepts)):
        a = _matmul_first(acts[i], W) if i == 0 else np.matmul(acts[i], W)
        a += b[:, None, :]
        if i != last:
            np.maximum(a, 0, out=a)
        acts.append(a)
    return acts


@dataclass
class _Adam:
    """Adam moments of a stack of parameters (sklearn's ``AdamOptimizer``, elementwise the same)."""

    ms: list[np.ndarray]
    vs: list[np.ndarray]
    t: int = 0

    def step(self, params: list[np.ndarray], grads: list[np.ndarray], lr: float) -> None:
        self.t += 1
        # sklearn: lr_t = lr * sqrt(1 - beta_2^t) / (1 - beta_1^t); p += -lr_t * m / (sqrt(v) + eps)
        lr_t = lr * np.sqrt(1 - BETA_2**self.t) / (1 - BETA_1**self.t)
        for p, g, m, v in zip(params, grads, self.ms, self.vs):
            tmp = np.square(g)  # in place where sklearn builds new arrays; the same operations
            g *= 1 - BETA_1
            m *= BETA_1
            m += g
            tmp *= 1 - BETA_2
            v *= BETA_2
            v += tmp
            np.sqrt(v, out=tmp)
            tmp += EPSILON
            np.multiply(m, -lr_t, out=g)
            g /= tmp
            p += g


@dataclass
class _Chunk:
    coefs: list[np.ndarray]
    intercepts: list[np.ndarray]
    n_iter: np.ndarray
    converged: np.ndarray
    loss_curves: list[np.ndarray]


def _train_chunk(X: Any, Y: np.ndarray, seeds: np.ndarray, cfg: _Config) -> _Chunk:
    """Train the networks of one chunk together; stopped networks leave the active stack."""
    K, n, m = Y.shape
    n_layers = len(cfg.units) - 1
    uniq, slot = np.unique(seeds, return_inverse=True)
    rngs = [np.random.RandomState(int(s)) for s in uniq]  # one stream per seed: init, shuffles
    inits = [init_params(rs, cfg.units) for rs in rngs]
    coefs = [np.stack([inits[j][0][i] for j in slot]) for i in range(n_layers)]
    inters = [np.stack([inits[j][1][i] for j in slot]) for i in range(n_layers)]
    adam = _Adam([np.zeros_like(p) for p in coefs + inters], [np.zeros_like(p) for p in coefs + inters])
    batch = min(MAX_BATCH, n)
    sparse = sp.issparse(X)

    out_coefs = [np.empty_like(c) for c in coefs]
    out_inters = [np.empty_like(b) for b in inters]
    n_iter = np.zeros(K, dtype=np.int64)
    converged = np.zeros(K, dtype=bool)
    curves = np.empty((K, cfg.max_iter))
    active = np.arange(K)  # chunk positions of the networks still training
    best = np.full(K, np.inf)
    no_improve = np.zeros(K, dtype=np.int64)

    order = np.tile(np.arange(n), (len(uniq), 1))  # sample order per seed, carried over epochs
    for epoch in range(cfg.max_iter):
        for j in np.unique(slot[active]):  # sample_idx = shuffle(sample_idx, random_state=rs)
            idx = np.arange(n)
            rngs[j].shuffle(idx)
            order[j] = order[j][idx]
        perm = order[slot[active]]  # [Ka, n]
        Ya = Y[active]
        total = np.zeros(len(active))
        for start in range(0, n, batch):
            rows = perm[:, start : start + batch]
            if sparse:
                Xb: Any = [X[r] for r in rows]
            else:
                Xb = X[rows]
            Yb = np.take_along_axis(Ya, rows[:, :, None], axis=1)
            loss = _backprop_step(Xb, Yb, coefs, inters, adam, cfg)
            total += loss * rows.shape[1]
        loss = total / n
        pos = active
        curves[pos, epoch] = loss
        n_iter[pos] += 1
        # sklearn's _update_no_improvement_count (early_stopping=False)
        no_improve[pos] = np.where(loss > best[pos] - TOL, no_improve[pos] + 1, 0)
        best[pos] = np.where(loss < best[pos], loss, best[pos])
        stop = no_improve[pos] > N_ITER_NO_CHANGE
        if epoch + 1 == cfg.max_iter:
            converged[pos] = stop
            stop = np.ones_like(stop)
        else:
            converged[pos[stop]] = True
        if stop.any():
            done = pos[stop]
            for i in range(n_layers):
                out_coefs[i][done] = coefs[i][stop]
                out_inters[i][done] = inters[i][stop]
            keep = ~stop
            active = pos[keep]
            coefs = [c[keep] for c in coefs]
            inters = [b[keep] for b in inters]
            adam.ms = [a[keep] for a in adam.ms]
            adam.vs = [a[keep] for a in adam.vs]
        if active.size == 0:
            break
    return _Chunk(
        out_coefs, out_inters, n_iter, converged, [curves[k, : n_iter[k]].copy() for k in range(K)]
    )


def _backprop_step(
    Xb: Any, Yb: np.ndarray, coefs: list[np.ndarray], inters: list[np.ndarray], adam: _Adam, cfg: _Config
) -> np.ndarray:
    """One mini-batch: forward, loss ``[Ka]``, gradients (sklearn's ``_backprop``) and Adam step."""
    b = Yb.shape[1]
    acts = _forward(Xb, coefs, inters)
    # squared_loss: 0.5 * mean over outputs of the mean over samples of (y - p)^2
    sq = np.subtract(Yb, acts[-1])
    np.square(sq, out=sq)
    per_out = sq.sum(axis=1)
    per_out /= b
    loss = per_out.sum(axis=1)
    loss /= Yb.shape[2]
    loss = 0.5 * loss
    # + (alpha / 2) * sum of squared weights / batch size (one ddot per layer, as np.dot)
    values = sum(np.vecdot(c.reshape(len(c), -1), c.reshape(len(c), -1)) for c in coefs)
    loss += (0.5 * cfg.alpha) * values / b

    last = len(coefs) - 1
    grads_c: list[np.ndarray] = [None] * len(coefs)  # type: ignore[list-item]
    grads_b: list[np.ndarray] = [None] * len(coefs)  # type: ignore[list-item]
    delta = acts[-1] - Yb
    for i in range(last, -1, -1):
        if i == 0 and isinstance(acts[0], list):
            g = np.stack([a.T @ d for a, d in zip(acts[0], delta)])
        else:
            g = np.matmul(acts[i].transpose(0, 2, 1), delta)
        g += cfg.alpha * coefs[i]
        g /= b
        grads_c[i] = g
        grads_b[i] = delta.sum(axis=1) / b
        if i > 0:
            delta = np.matmul(delta, coefs[i].transpose(0, 2, 1))
            delta[acts[i] == 0] = 0  # ReLU derivative
    adam.step(coefs + inters, grads_c + grads_b, cfg.lr)
    return loss


# ------------------------------------------------------------------------------ the router
class MLPRouter(SignalRouter):
    """Three MLP regressor heads (mu_q, mu_c, sigma_q) over standardised features.

    Args:
        hidden: hidden layer sizes (docs/spec.md: (128, 64)); ReLU activations, Adam.
        alpha: L2 penalty.
        lr: Adam's initial learning rate.
        max_iter: maximum number of epochs.
        n_jobs: parallel workers over networks (``vectorised``: threads over chunks of the
            stack; ``sklearn``: joblib processes over draws); ``-1`` uses every core. Default 1:
            the shared 2-core machine is busy with other work. Results do not depend on it.
        impl: ``vectorised`` (default: all draws x heads as one stack, :func:`fit_mlp_stack`)
            or ``sklearn`` (one ``MLPRegressor`` per head and draw). Bit-identical results.
    """

    def __init__(
        self,
        hidden: Sequence[int] = (128, 64),
        alpha: float = 1e-4,
        lr: float = 1e-3,
        max_iter: int = 800,
        n_jobs: int = 1,
        impl: str = "vectorised",
    ) -> None:
        self.hidden = hidden
        self.alpha = alpha
        self.lr = lr
        self.max_iter = max_iter
        self.n_jobs = n_jobs
        self.impl = impl

    def _draw_jobs(self) -> int:
        return int(self.n_jobs)

    def _workers(self) -> int:
        return (os.cpu_count() or 1) if int(self.n_jobs) == -1 else max(1, int(self.n_jobs))

    # ----------------------------------------------------------- shared pieces
    def _scale(self, X: Any) -> Any:
        X = check_features(X, where="mlp.fit")
        self.n_features_in_ = X.shape[1]
        self.scaler_ = StandardScaler(with_mean=not sp.issparse(X))
        return self.scaler_.fit_transform(X)

    @staticmethod
    def _head_target(values: np.ndarray, name: str) -> np.ndarray | None:
        """The training target of one head ``[Q, M]``, or None for an identically zero sigma_q."""
        y = np.asarray(values, dtype=np.float64)
        if name == "sigma_q" and (y[np.isfinite(y)] == 0.0).all():
            return None  # identically zero: predict 0 exactly
        return fill_missing_targets(y, name)

    # ------------------------------------------------------- vectorised impl
    def _fit_draws(self, X: Any, targets: Targets, *, lam: float, beta: float, seed: int) -> None:
        if self.impl not in IMPLS:
            raise ValueError(f"mlp: impl must be one of {IMPLS}, got {self.impl!r}")
        for attr in ("members_", "stack_", "net_index_"):
            self.__dict__.pop(attr, None)
        if self.impl == "sklearn":
            super()._fit_draws(X, targets, lam=lam, beta=beta, seed=seed)
            return
        Xs = self._scale(X)
        values = stack_targets(targets)  # [3, D, Q, M]
        n_draws = values.shape[1]
        index = np.full((n_draws, len(SIGNALS)), -1, dtype=np.int64)
        ys, seeds = [], []
        for d in range(n_draws):  # one network per (draw, head); heads of a draw share seed + d
            for h, name in enumerate(SIGNALS):
                y = self._head_target(values[h, d], name)
                if y is not None:
                    index[d, h] = len(ys)
                    ys.append(y)
                    seeds.append(seed + d)
        self.net_index_ = index
        self.stack_ = fit_mlp_stack(
            Xs, np.stack(ys), seeds, hidden=self.hidden, alpha=self.alpha, lr=self.lr,
            max_iter=self.max_iter, n_jobs=self._workers(),
        )  # fmt: skip

    def _predict_draws(self, X: Any) -> Signals:
        if "stack_" not in self.__dict__:
            return super()._predict_draws(X)
        X = check_features(X, self.n_features_in_, where="mlp.predict")
        Xs = self.scaler_.transform(X)
        trained = self.net_index_ >= 0
        pred = self.stack_.predict(Xs, self.net_index_[trained])
        n_draws = self.net_index_.shape[0]
        out = np.zeros((n_draws, len(SIGNALS), X.shape[0], self.n_models_))
        out[trained] = pred.reshape(-1, X.shape[0], self.n_models_)
        return Signals(out[:, 0], out[:, 1], out[:, 2])

    def fit_report(self) -> list[dict[str, Any]]:
        """Per fitted draw: epochs run (``n_iter``) and convergence (``converged``) per head.

        One entry (``draw`` 0) after fitting targets without draws. A head that was not trained
        (the zero ``sigma_q`` target) is absent.
        """
        self._check_fitted()
        if "stack_" not in self.__dict__:
            return [
                {"draw": d, "n_iter": dict(m.n_iter_), "converged": dict(m.converged_)}
                for d, m in enumerate(self.members_)
            ]
        report = []
        for d, row in enumerate(self.net_index_):
            nets = {name: int(k) for name, k in zip(SIGNALS, row) if k >= 0}
            report.append({
                "draw": d,
                "n_iter": {name: int(self.stack_.n_iter[k]) for name, k in nets.items()},
                "converged": {name: bool(self.stack_.converged[k]) for name, k in nets.items()},
            })  # fmt: skip
        return report

    # ------------------------------------------------------- sklearn impl
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
        Xs = self._scale(X)
        self.heads_: dict[str, Any] = {}
        self.n_iter_: dict[str, int] = {}
        self.converged_: dict[str, bool] = {}
        for name in SIGNALS:
            y = self._head_target(getattr(targets, name), name)
            if y is None:
                self.heads_[name] = None
                continue
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

    def _predict_single(self, X: Any) -> Signals:
        if "stack_" in self.__dict__:
            v = self._predict_draws(X)
            return Signals(v.mu_q[0], v.mu_c[0], v.sigma_q[0])
        X = check_features(X, self.n_features_in_, where="mlp.predict")
        Xs = self.scaler_.transform(X)
        n, m = X.shape[0], self.n_models_
        out = []
        with threadpool_limits(limits=1):
            for name in SIGNALS:
                head = self.heads_[name]
                if head is None:
                    out.append(np.zeros((n, m)))
                else:
                    out.append(np.asarray(head.predict(Xs), dtype=np.float64).reshape(n, m))
        return Signals(*out)
