"""Utility and model selection (docs/spec.md §3 and §5).

``U = mu_q - lam * mu_c - beta * sigma_q``; the preferred model is ``argmax_m U``, ties broken by
lower ``mu_c`` and then by pool order (the lower model index).
"""

from __future__ import annotations

import numpy as np

#: Two utilities closer than this are a tie. Float arithmetic on the same numbers in a
#: different order can differ in the last bits; a researcher means those as equal.
TIE_ATOL = 1e-12


def utility(
    mu_q: np.ndarray, mu_c: np.ndarray, sigma_q: np.ndarray | None, lam: float, beta: float
) -> np.ndarray:
    """``mu_q - lam * mu_c - beta * sigma_q`` (element-wise; ``sigma_q=None`` means 0)."""
    u = mu_q - lam * mu_c
    if sigma_q is not None and beta != 0.0:
        u = u - beta * sigma_q
    return u


def select_models(u: np.ndarray, mu_c: np.ndarray) -> np.ndarray:
    """Index of the best model along the last axis: max ``u``, then min ``mu_c``, then first.

    ``u`` and ``mu_c`` have shape ``[..., M]``. NaN utilities never win; a row where every
    utility is NaN is an error, since there is nothing to choose from.
    """
    u = np.asarray(u, dtype=float)
    mu_c = np.broadcast_to(np.asarray(mu_c, dtype=float), u.shape)
    valid = ~np.isnan(u)
    if not valid.any(axis=-1).all():
        raise ValueError("select_models: a row has no model with a finite utility")
    u_best = np.where(valid, u, -np.inf).max(axis=-1, keepdims=True)
    tied = valid & (u >= u_best - TIE_ATOL)
    c = np.where(tied, np.where(np.isnan(mu_c), np.inf, mu_c), np.inf)
    c_best = c.min(axis=-1, keepdims=True)
    # Among the tied models with the lowest cost, take the first in pool order. Costs equal up to
    # float summation order (the same observations in another order) are equal, as for ``u``.
    winners = tied & (c <= c_best + TIE_ATOL)
    return winners.argmax(axis=-1)


#: Rough cap on the elements of one chunk of :func:`select_grid` (bounds its temporaries).
GRID_CHUNK_ELEMENTS = 2_000_000


def select_grid(
    mu_q: np.ndarray, mu_c: np.ndarray, sigma_q: np.ndarray, lams, beta: float
) -> np.ndarray:
    """:func:`select_models` for every ``lambda`` of a grid: ``[L, ..., Q]`` int64 from
    ``[..., Q, M]`` signals; ``out[l]`` is the choice at ``lams[l]`` (same ties).

    One lambda and a block of rows at a time, so the temporaries stay near
    :data:`GRID_CHUNK_ELEMENTS` elements however many lambdas, draws and queries there are.
    """
    mu_q, mu_c, sigma_q = np.broadcast_arrays(*(np.asarray(a, dtype=float) for a in (mu_q, mu_c, sigma_q)))
    lams = np.asarray(lams, dtype=float).ravel()
    lead, m = mu_q.shape[:-1], mu_q.shape[-1]
    rows = int(np.prod(lead, dtype=np.int64))
    q, c, s = (a.reshape(rows, m) for a in (mu_q, mu_c, sigma_q))
    out = np.empty((lams.size, rows), dtype=np.int64)
    step = max(1, GRID_CHUNK_ELEMENTS // max(m, 1))
    for i, lam in enumerate(lams):
        for lo in range(0, rows, step):
            rs = slice(lo, lo + step)
            out[i, rs] = select_models(utility(q[rs], c[rs], s[rs], lam, beta), c[rs])
    return out.reshape((lams.size, *lead))


def softmax(u: np.ndarray, tau: float = 1.0, axis: int = -1) -> np.ndarray:
    """Soft labels ``softmax(u / tau)`` along ``axis`` (NaN utilities get probability 0)."""
    if tau <= 0:
        raise ValueError(f"softmax temperature must be positive, got {tau}")
    z = np.where(np.isnan(u), -np.inf, u / tau)
    z = z - z.max(axis=axis, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=axis, keepdims=True)
