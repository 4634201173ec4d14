"""Held-out evaluation of routing decisions (docs/spec.md §6): ``U``, ``Q``, ``C`` and shares of
a policy on a test view, per query or averaged, the single-policy baselines and the true utility
on simulated data. A routed pair with no observation in the view is left out of the mean (with a
warning), never scored 0. Definitions: README "Evaluation" and docs/analyses.md."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from benchmark.data.dataset import ObservationBlock, TruthTable
from supervision.stats import masked_mean
from supervision.utility import TIE_ATOL, select_models, utility

VIEW_METRICS = ("U", "Q", "C")


@dataclass(frozen=True)
class ViewStats:
    """Per (query, model) means over one test view's observations. All ``[Q, M]``; NaN if none."""

    q: np.ndarray
    c: np.ndarray

    @classmethod
    def from_block(cls, block: ObservationBlock) -> "ViewStats":
        axes = (2, 3)
        return cls(
            q=masked_mean(block.score, block.present, axes),
            c=masked_mean(block.cost, block.present, axes),
        )

    def u(self, lam: float) -> np.ndarray:
        # The mean of q - lam*c over a pair's observations equals mean(q) - lam*mean(c).
        return self.q - lam * self.c

    @property
    def n_models(self) -> int:
        return self.q.shape[1]


def _gather(values: np.ndarray, choices: np.ndarray) -> np.ndarray:
    """``values[q, choices[..., q]]`` for choices ``[..., Q]``."""
    q_idx = np.arange(values.shape[0])
    return values[q_idx, choices]


def _mean_over_queries(per_query: np.ndarray, what: str) -> np.ndarray:
    missing = np.isnan(per_query)
    if missing.any():
        warnings.warn(
            f"{what}: {int(missing.sum())} routed (query, model) pairs have no observation in "
            "this view and are left out of the mean",
            stacklevel=3,
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(per_query, axis=-1)


def evaluate_choices(stats: ViewStats, choices: np.ndarray, lam: float) -> dict[str, np.ndarray]:
    """U, Q, C and per-model shares of ``choices`` (``[Q]`` or ``[D, Q]``) on one view.

    Returns arrays with the leading shape of ``choices`` minus its query axis (scalars for
    ``[Q]`` choices); ``share`` has a trailing model axis.
    """
    choices = np.asarray(choices, dtype=np.int64)
    if choices.shape[-1] != stats.q.shape[0]:
        raise ValueError(f"{choices.shape[-1]} choices for {stats.q.shape[0]} test queries")
    if choices.min() < 0 or choices.max() >= stats.n_models:
        raise ValueError("a choice is outside the model pool")
    out = {
        "U": _mean_over_queries(_gather(stats.u(lam), choices), "U"),
        "Q": _mean_over_queries(_gather(stats.q, choices), "Q"),
        "C": _mean_over_queries(_gather(stats.c, choices), "C"),
    }
    one_hot = choices[..., None] == np.arange(stats.n_models)
    out["share"] = one_hot.mean(axis=-2)
    return out


def per_query(stats: ViewStats, choices: np.ndarray, lam: float) -> dict[str, np.ndarray]:
    """U, Q, C of the chosen model per query (``[..., Q]`` like ``choices``; NaN where the pair
    has no observation in the view). Their NaN-skipping means over queries are
    :func:`evaluate_choices`' metrics; the bootstrap resamples them."""
    choices = np.asarray(choices, dtype=np.int64)
    return {
        "U": _gather(stats.u(lam), choices),
        "Q": _gather(stats.q, choices),
        "C": _gather(stats.c, choices),
    }


# ------------------------------------------------------------------ baselines
def oracle_choices(stats: ViewStats, lam: float) -> np.ndarray:
    """Per query, the best model by the view's own mean utility (ties: lower cost, pool order)."""
    return select_models(stats.u(lam), stats.c)


def best_fixed_choice(stats: ViewStats, lam: float) -> int:
    """The one model with the best mean utility over the view's queries (same tie-breaking)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        per_model_u = np.nanmean(stats.u(lam), axis=0)
        per_model_c = np.nanmean(stats.c, axis=0)
    return int(select_models(per_model_u, per_model_c))


def random_metrics(stats: ViewStats, lam: float) -> dict[str, np.ndarray]:
    """Expected metrics of a uniform choice over the pool, per query then over queries.

    For each query, the expectation averages the models that have observations in the view.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        out = {
            "U": np.nanmean(np.nanmean(stats.u(lam), axis=1)),
            "Q": np.nanmean(np.nanmean(stats.q, axis=1)),
            "C": np.nanmean(np.nanmean(stats.c, axis=1)),
        }
    out["share"] = np.full(stats.n_models, 1.0 / stats.n_models)
    return out


def cheapest_choice(train_mu_c: np.ndarray) -> int:
    """The model with the lowest mean training cost (ties: pool order)."""
    per_model = np.nanmean(train_mu_c, axis=0)
    return int(np.flatnonzero(per_model <= per_model.min() + TIE_ATOL)[0])


def largest_choice(params_b: np.ndarray | None, train_mu_c: np.ndarray) -> int:
    """The model with the most parameters; without sizes for every model, the most expensive."""
    if params_b is not None and np.all(np.isfinite(params_b)):
        return int(np.flatnonzero(params_b == params_b.max())[0])
    per_model = np.nanmean(train_mu_c, axis=0)
    return int(np.flatnonzero(per_model >= per_model.max() - TIE_ATOL)[0])


def gap_closed(router: np.ndarray, best_fixed: float, oracle: float) -> np.ndarray:
    """``(router - best_fixed) / (oracle - best_fixed)``; NaN when the oracle equals best_fixed."""
    span = oracle - best_fixed
    if abs(span) < 1e-15:
        return np.full_like(np.asarray(router, dtype=float), np.nan)
    return (np.asarray(router, dtype=float) - best_fixed) / span


# ------------------------------------------------------------ simulated truth
def true_utility(
    truth: TruthTable, choices: np.ndarray, lam: float, beta: float
) -> dict[str, np.ndarray]:
    """Ground-truth metrics of a policy on simulated data (no sampling noise).

    ``tU``: mean over queries of the true ``mu_q - lam * mu_c - beta * sigma_q`` of the chosen
    model; ``tQ``: the same for true quality; ``t_best``: share of queries where the choice is
    the true best model (docs/spec.md §3 tie-breaking on the true values).
    """
    u = utility(truth.mu_q, truth.mu_c, truth.sigma_q, lam, beta)
    best = select_models(u, truth.mu_c)
    return {
        "tU": _gather(u, choices).mean(axis=-1),
        "tQ": _gather(truth.mu_q, choices).mean(axis=-1),
        "t_best": (np.asarray(choices) == best).mean(axis=-1),
    }


def true_per_query(
    truth: TruthTable, choices: np.ndarray, lam: float, beta: float
) -> dict[str, np.ndarray]:
    """:func:`true_utility`'s ``tU``, ``tQ``, ``t_best`` per query (``[..., Q]``)."""
    u = utility(truth.mu_q, truth.mu_c, truth.sigma_q, lam, beta)
    best = select_models(u, truth.mu_c)
    return {
        "tU": _gather(u, choices),
        "tQ": _gather(truth.mu_q, choices),
        "t_best": (np.asarray(choices) == best).astype(float),
    }


def true_oracle_choices(truth: TruthTable, lam: float, beta: float) -> np.ndarray:
    """The true best model per query."""
    return select_models(utility(truth.mu_q, truth.mu_c, truth.sigma_q, lam, beta), truth.mu_c)
