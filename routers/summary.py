"""Per-draw training summaries (issue 15): how well each fitted draw routes its own training set.

For every router: the mean regret and the accuracy of the router's choices on its training
queries, judged by the training targets it was fitted on. Where a router records them, its own
fit statistics (``fit_stats_`` of each fitted draw: training loss, cluster sizes, ...). Written
to results.json under ``training.fit`` (README, "Paper parity"; docs/official.md).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from supervision.modes import Targets


def training_fit(u: np.ndarray, choices: np.ndarray) -> dict[str, np.ndarray]:
    """Per-draw regret and accuracy of ``choices`` ``[(D,) Q]`` under utilities ``u`` ``[(D,) Q, M]``.

    Regret of a query: ``max_m u_m - u_chosen``; accuracy: the share of queries whose chosen
    model attains that maximum (a tie counts as correct). Missing targets (NaN) are not
    candidates for the maximum; a query whose chosen model has no target has neither number:
    it is left out of both means and counted in ``train_unjudged``.
    """
    u = np.asarray(u, dtype=np.float64)
    u = u if u.ndim == 3 else u[None]
    ch = np.asarray(choices).reshape(u.shape[:2])
    picked = np.take_along_axis(u, ch[..., None], axis=-1)[..., 0]
    judged = ~np.isnan(picked)
    best = np.max(np.where(np.isnan(u), -np.inf, u), axis=-1)
    regret = np.where(judged, best - np.where(judged, picked, 0.0), 0.0)
    n = judged.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):  # a draw with no judged query: NaN
        return {
            "train_regret": regret.sum(axis=1) / n,
            "train_accuracy": (judged & (regret <= 0.0)).sum(axis=1) / n,
            "train_unjudged": (~judged).sum(axis=1).astype(float),
        }


def fit_stats(router: Any) -> dict[str, list[float]]:
    """The router's own per-draw fit statistics: ``fit_stats_`` of each fitted draw (the
    members of a one-router-per-draw fit, else the router itself), name -> one value per draw;
    a statistic recorded for some draws only is an error."""
    members = getattr(router, "members_", None) or [router]
    stats = [getattr(m, "fit_stats_", None) or {} for m in members]
    names = sorted(set().union(*stats))
    for name in names:
        if any(name not in s for s in stats):
            raise ValueError(f"fit statistic {name!r} is recorded for some draws only")
    return {name: [float(s[name]) for s in stats] for name in names}


def training_summary(router: Any, X_train: Any, targets: Targets, lam: float, beta: float) -> dict[str, list[float]]:
    """Per-draw training statistics of a fitted router: ``train_regret`` and
    ``train_accuracy`` of its choices on ``X_train`` at (lam, the mode's beta) against
    ``targets`` (:func:`training_fit`), then its own fit statistics; name -> ``[D]`` values."""
    b = targets.effective_beta(beta)
    out = {k: v.tolist() for k, v in training_fit(targets.utility(lam, b), router.route(X_train, lam, b)).items()}
    own = fit_stats(router)
    if set(own) & set(out):
        raise ValueError(f"{type(router).__name__}: fit statistics {sorted(set(own) & set(out))} clash with the run loop's")
    return {**out, **own}
