"""Masked reductions over observation axes.

All functions take ``values`` and a boolean ``mask`` of the same shape and reduce over
``axis`` (an int or a tuple), ignoring masked-out entries. A reduction over zero present
entries gives NaN (and never a warning); a sample standard deviation (ddof=1) over exactly one
entry gives 0, as docs/spec.md §3 says.
"""

from __future__ import annotations

import numpy as np

Axis = int | tuple[int, ...]


def masked_mean(values: np.ndarray, mask: np.ndarray, axis: Axis) -> np.ndarray:
    n = mask.sum(axis=axis)
    total = np.where(mask, values, 0.0).sum(axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, total / np.maximum(n, 1), np.nan)


def masked_var(values: np.ndarray, mask: np.ndarray, axis: Axis, ddof: int) -> np.ndarray:
    """Variance with ``ddof``; 0 where ``0 < n <= ddof``; NaN where ``n == 0``.

    Two-pass (mean first, then squared deviations) for numerical accuracy.
    """
    n = mask.sum(axis=axis)
    mean = masked_mean(values, mask, axis)
    mean_b = np.expand_dims(mean, axis) if isinstance(axis, int) else _expand(mean, axis)
    dev2 = np.where(mask, (values - mean_b) ** 2, 0.0).sum(axis=axis)
    denom = n - ddof
    with np.errstate(invalid="ignore", divide="ignore"):
        var = np.where(denom > 0, dev2 / np.maximum(denom, 1), 0.0)
    return np.where(n > 0, var, np.nan)


def masked_std(values: np.ndarray, mask: np.ndarray, axis: Axis, ddof: int = 1) -> np.ndarray:
    return np.sqrt(masked_var(values, mask, axis, ddof))


def _expand(arr: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    ndim = arr.ndim + len(axes)
    norm = sorted(a % ndim for a in axes)
    for a in norm:
        arr = np.expand_dims(arr, a)
    return arr


#: ddof of the spread reported over single-shot draws: 1, the sample standard deviation the
#: paper's tables report (pandas' ``std``). Every summary over draws uses :func:`draw_std`.
DRAW_STD_DDOF = 1


def draw_std(values: np.ndarray) -> float:
    """Sample standard deviation (ddof :data:`DRAW_STD_DDOF`) of per-draw values; 0 for one value.

    A deterministic supervision mode has one "draw", whose spread is 0.
    """
    v = np.asarray(values, dtype=float).ravel()
    if v.size == 0:
        raise ValueError("draw_std: no values")
    return float(v.std(ddof=DRAW_STD_DDOF)) if v.size > DRAW_STD_DDOF else 0.0
