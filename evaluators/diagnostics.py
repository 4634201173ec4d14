"""Diagnostics of single-shot supervision (docs/spec.md §7): is one sampled outcome a reliable
label? Pure, vectorised, masked reductions over one ``[Q, M, V, S]`` block with normalised costs;
absent observations are never read. Observation order, the ``align`` options and every
convention: docs/analyses.md, section 1."""

from __future__ import annotations

import warnings
from typing import Literal

import numpy as np

from benchmark.data.dataset import ObservationBlock
from supervision.stats import masked_mean, masked_var
from supervision.utility import select_models

Align = Literal["position", "rank"]

#: Two scores of a pair are "different" when they differ by more than this (docs/spec.md §7).
INSTABILITY_ATOL = 1e-9

#: Default cost weight (docs/spec.md §3).
DEFAULT_LAMBDA = 0.05


# ----------------------------------------------------------------------------- helpers
def _flat(block: ObservationBlock) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``score``, ``cost``, ``present`` reshaped to ``[Q, M, K]`` with ``K = V * S``."""
    q, m, v, s = block.score.shape
    return (
        block.score.reshape(q, m, v * s),
        block.cost.reshape(q, m, v * s),
        block.present.reshape(q, m, v * s),
    )


def _warn(message: str) -> None:
    warnings.warn(message, stacklevel=3)


def _share(hit: np.ndarray, counted: np.ndarray, what: str) -> float:
    """``hit[counted].mean()``; an error when nothing is counted."""
    n = int(counted.sum())
    if n == 0:
        raise ValueError(f"{what}: nothing to compute it over (no usable observations)")
    return float(hit[counted].sum() / n)


# ------------------------------------------------------------------ outcome instability
def _instability_parts(block: ObservationBlock) -> tuple[np.ndarray, np.ndarray]:
    """``unstable [Q, M]`` (present scores not all equal) and ``observed [Q, M]``."""
    axes = (2, 3)
    observed = block.present.any(axis=axes)
    hi = np.where(block.present, block.score, -np.inf).max(axis=axes)
    lo = np.where(block.present, block.score, np.inf).min(axis=axes)
    with np.errstate(invalid="ignore"):
        unstable = observed & ((hi - lo) > INSTABILITY_ATOL)
    return unstable, observed


def _warn_unobserved(observed: np.ndarray, what: str) -> None:
    n_missing = int((~observed).sum())
    if n_missing:
        _warn(
            f"{what}: {n_missing} of {observed.size} (query, model) pairs have no observation "
            "and are left out"
        )


def outcome_instability(block: ObservationBlock) -> float:
    """Share of (query, model) pairs whose present scores are not all equal.

    A pair is unstable when ``max - min > 1e-9`` over its present observations. Pairs with no
    observation are left out of the share (with a warning); a pair with one observation is
    counted and is stable.
    """
    unstable, observed = _instability_parts(block)
    _warn_unobserved(observed, "outcome instability")
    return _share(unstable, observed, "outcome instability")


# -------------------------------------------------------------------- single-shot labels
def _aligned(block: ObservationBlock, align: Align) -> tuple[np.ndarray, ...]:
    """``score``, ``cost``, ``present`` ``[Q, M, K]`` in the chosen index alignment."""
    score, cost, present = _flat(block)
    if align == "position":
        return score, cost, present
    if align == "rank":
        # Stable sort of "absent" flags: the present observations come first, in their order.
        order = np.argsort(~present, axis=-1, kind="stable")
        return (
            np.take_along_axis(score, order, axis=-1),
            np.take_along_axis(cost, order, axis=-1),
            np.take_along_axis(present, order, axis=-1),
        )
    raise ValueError(f"unknown index alignment {align!r}; choose 'position' or 'rank'")


def _labels(block: ObservationBlock, lam: float, align: Align) -> tuple[np.ndarray, np.ndarray]:
    """Single-shot labels ``[K, Q]`` (``-1`` where masked) and their validity mask ``[K, Q]``."""
    score, cost, present = _aligned(block, align)
    valid = present.all(axis=1).T  # [K, Q]: every model has its k-th observation
    u = np.transpose(score - lam * cost, (2, 0, 1))  # [K, Q, M]
    c = np.transpose(cost, (2, 0, 1))
    # Masked rows get dummy finite values (select_models rejects an all-NaN row); their label
    # is overwritten with -1 below, so the dummies never reach the output.
    u = np.where(valid[..., None], u, 0.0)
    c = np.where(valid[..., None], c, 0.0)
    labels = select_models(u, c).astype(np.int64)
    return np.where(valid, labels, -1), valid


def single_shot_labels(
    block: ObservationBlock, lam: float = DEFAULT_LAMBDA, *, align: Align = "position"
) -> np.ndarray:
    """Single-shot label of every query at every observation index, ``[K, Q]`` int64.

    ``labels[k, x] = argmax_m u_k(x, m)`` with ``u_k = q_k - lam * c~_k`` of the k-th
    observation of each model (ties: lower ``c~_k``, then pool order, via
    :func:`supervision.utility.select_models`). ``K = V * S``. Entries where some model lacks
    its k-th observation are ``-1`` (see the module docstring for ``align``).
    """
    labels, _ = _labels(block, lam, align)
    return labels


def _da_labels(block: ObservationBlock, lam: float, rows: np.ndarray) -> np.ndarray:
    """DA label ``argmax_m (mu_q - lam * mu_c)`` for the queries in ``rows`` (``[Q]`` bool).

    Means are over all the pair's present observations. Queries outside ``rows`` get ``-1``.
    """
    axes = (2, 3)
    mu_q = masked_mean(block.score, block.present, axes)
    mu_c = masked_mean(block.cost, block.present, axes)
    out = np.full(block.n_queries, -1, dtype=np.int64)
    if rows.any():
        out[rows] = select_models(mu_q[rows] - lam * mu_c[rows], mu_c[rows])
    return out


def _flip_parts(labels: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``flipped [Q]`` and ``labelled [Q]`` (queries with at least one label)."""
    labelled = valid.any(axis=0)
    first = labels[valid.argmax(axis=0), np.arange(labels.shape[1])]
    flipped = (valid & (labels != first[None, :])).any(axis=0)
    return flipped, labelled


def _warn_unlabelled(labelled: np.ndarray, what: str) -> None:
    n_missing = int((~labelled).sum())
    if n_missing:
        _warn(
            f"{what}: {n_missing} of {labelled.size} queries have no index at which every model "
            "has an observation, and are left out"
        )


def winner_flip_rate(
    block: ObservationBlock, lam: float = DEFAULT_LAMBDA, *, align: Align = "position"
) -> float:
    """Share of queries whose single-shot labels are not all the same over ``k``.

    Only the query's unmasked indices count. A query with a single label cannot flip (counted,
    not flipped); a query with none is left out (with a warning).
    """
    labels, valid = _labels(block, lam, align)
    flipped, labelled = _flip_parts(labels, valid)
    _warn_unlabelled(labelled, "winner flip rate")
    return _share(flipped, labelled, "winner flip rate")


def single_vs_da_disagreement(
    block: ObservationBlock, lam: float = DEFAULT_LAMBDA, *, align: Align = "position"
) -> float:
    """Share of unmasked ``(query, k)`` where the single-shot label differs from the DA label.

    DA label: ``argmax_m (mu_q - lam * mu_c)``, means over all of the pair's present
    observations (not only the common indices), with the same tie-breaking.
    """
    labels, valid = _labels(block, lam, align)
    labelled = valid.any(axis=0)
    _warn_unlabelled(labelled, "single-vs-DA disagreement")
    da = _da_labels(block, lam, labelled)
    return _share(labels != da[None, :], valid, "single-vs-DA disagreement")


# ------------------------------------------------------------- variance decomposition
def _variance_parts(block: ObservationBlock) -> dict[str, np.ndarray]:
    """Per-pair ``input_side``, ``output_side``, ``total`` ``[Q, M]`` (NaN where unobserved)."""
    view_mean = masked_mean(block.score, block.present, axis=3)  # [Q, M, V]
    has_view = block.present.any(axis=3)  # [Q, M, V]
    within = masked_var(block.score, block.present, axis=3, ddof=0)  # [Q, M, V]
    return {
        "input_side": masked_var(view_mean, has_view, axis=2, ddof=0),
        "output_side": masked_mean(within, has_view, axis=2),
        "total": masked_var(block.score, block.present, axis=(2, 3), ddof=0),
    }


def _input_share(
    input_side: float | np.ndarray, output_side: float | np.ndarray
) -> np.ndarray:
    """``input / (input + output)``; NaN where both are 0."""
    both = np.asarray(input_side, dtype=float) + np.asarray(output_side, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(both > 0, np.asarray(input_side) / np.where(both > 0, both, 1.0), np.nan)


def variance_decomposition(
    block: ObservationBlock, *, per_model: bool = False
) -> dict[str, float | dict[str, np.ndarray]]:
    """Input-side vs output-side variance of the scores, averaged over observed pairs.

    Per pair (present observations only; every view of the block is a prompt view):

    * ``input_side``: population variance (ddof=0) over the pair's observed views of the
      per-view mean scores (each view counts once);
    * ``output_side``: mean over the pair's observed views of the within-view population
      variance (ddof=0) over decodes;
    * ``total``: population variance (ddof=0) over all the pair's observations.

    Each is then averaged over the pairs with at least one observation. When every observed
    view of a pair has the same number of decodes, ``input_side + output_side == total``
    (law of total variance); with unequal groups it need not hold. ``input_share`` is
    ``input_side / (input_side + output_side)`` of the averages (NaN when both are 0).

    With ``per_model=True`` the result also holds ``per_model``: the same three quantities and
    ``input_share`` as ``[M]`` arrays, each averaged over that model's observed pairs.
    """
    parts = _variance_parts(block)
    observed = block.present.any(axis=(2, 3))
    _warn_unobserved(observed, "variance decomposition")
    if not observed.any():
        raise ValueError("variance decomposition: the block has no observation")
    out: dict = {k: float(v[observed].mean()) for k, v in parts.items()}
    out["input_share"] = float(_input_share(out["input_side"], out["output_side"]))
    if per_model:
        pm = {k: masked_mean(v, observed, axis=0) for k, v in parts.items()}
        pm["input_share"] = _input_share(pm["input_side"], pm["output_side"])
        out["per_model"] = pm
    return out


# ----------------------------------------------------------------------------- bundle
def diagnose(
    block: ObservationBlock, lam: float = DEFAULT_LAMBDA, *, align: Align = "position"
) -> dict[str, float | int | str]:
    """Every docs/spec.md §7 diagnostic of one block, as a flat dict of plain numbers.

    Keys: ``lam``, ``align``, ``n_queries``, ``n_models``, ``n_pairs_observed``,
    ``n_queries_labelled``, ``n_label_positions`` (unmasked ``(query, k)``),
    ``outcome_instability``, ``winner_flip_rate``, ``single_vs_da_disagreement``,
    ``variance_input_side``, ``variance_output_side``, ``variance_total``,
    ``variance_input_share``. Each value equals the stand-alone function's; exclusions are
    warned about once each.
    """
    unstable, observed = _instability_parts(block)
    if not observed.any():
        raise ValueError("diagnose: the block has no observation")
    _warn_unobserved(observed, "diagnose")
    labels, valid = _labels(block, lam, align)
    flipped, labelled = _flip_parts(labels, valid)
    _warn_unlabelled(labelled, "diagnose")
    da = _da_labels(block, lam, labelled)
    parts = _variance_parts(block)
    var = {k: float(v[observed].mean()) for k, v in parts.items()}
    return {
        "lam": float(lam),
        "align": align,
        "n_queries": int(block.n_queries),
        "n_models": int(block.n_models),
        "n_pairs_observed": int(observed.sum()),
        "n_queries_labelled": int(labelled.sum()),
        "n_label_positions": int(valid.sum()),
        "outcome_instability": _share(unstable, observed, "outcome instability"),
        "winner_flip_rate": _share(flipped, labelled, "winner flip rate"),
        "single_vs_da_disagreement": _share(labels != da[None, :], valid, "single-vs-DA disagreement"),
        "variance_input_side": var["input_side"],
        "variance_output_side": var["output_side"],
        "variance_total": var["total"],
        "variance_input_share": float(_input_share(var["input_side"], var["output_side"])),
    }


# ------------------------------------------------------------------------ router variance
def draw_summary(values: np.ndarray, *, ddof: int = 0) -> dict[str, float | int]:
    """Summary of a per-draw quantity (e.g. test utility of the routers trained on each
    single-shot draw; docs/spec.md §7 router variance).

    Returns ``mean``, ``std`` (``ddof``; default 0, as the run loop reports draws), ``min``,
    ``max``, ``p5``, ``p95`` (numpy's default linear-interpolation percentiles) and ``n``.
    Non-finite values are an error: a draw without a result is a bug upstream, not a value.
    """
    v = np.asarray(values, dtype=float).ravel()
    if v.size == 0:
        raise ValueError("draw_summary: no values")
    bad = ~np.isfinite(v)
    if bad.any():
        raise ValueError(f"draw_summary: {int(bad.sum())} of {v.size} values are not finite")
    if v.size <= ddof:
        raise ValueError(f"draw_summary: {v.size} value(s) cannot give a std with ddof={ddof}")
    p5, p95 = np.percentile(v, [5.0, 95.0])
    return {
        "mean": float(v.mean()),
        "std": float(v.std(ddof=ddof)),
        "min": float(v.min()),
        "max": float(v.max()),
        "p5": float(p5),
        "p95": float(p95),
        "n": int(v.size),
    }
