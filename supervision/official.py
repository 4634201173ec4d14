"""The reference code's DARS target numerics (``supervision.sampler=official``; docs/official.md).

The paper's reference code builds its DARS targets with pandas ``groupby(...).agg(mean, std)``
over the observation rows of each (query, model) group in file order. pandas (3.1, the
version in this project's environment) sums a contiguous group's mean with numpy's
``add.reduceat`` (pairwise summation over the group's values) and its variance with Welford's
running update; darsbench's default (:mod:`supervision.stats`) sums with zeros in the masked
slots and computes a two-pass variance. The two agree to about 1e-16, which is enough to flip
exact ties between models (two models with the same mean score and spread) and, through them,
a neural recipe's training labels. :func:`file_order_mean_std` reproduces pandas bit for bit.
"""

from __future__ import annotations

import numpy as np


def file_order_mean_std(values: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """pandas' group mean and sample std (ddof=1) over the last axis, bit for bit.

    ``values``, ``mask``: ``[..., K]``, each group's K slots in file order (a masked-out slot
    holds no observation). Mean: the present values packed in order and summed as one
    contiguous run with ``np.add.reduceat`` as pandas does (the first value plus the pairwise
    sum of the rest; one call per distinct group size), over the count. Std: Welford's running update in file order (pandas ``group_var``), then sqrt.
    A group with no observation gives NaN for both; with one, std 0 (pandas gives NaN there
    and the reference code fills 0).
    """
    values = np.asarray(values, dtype=np.float64)
    mask = np.asarray(mask, dtype=bool)
    shape, k_all = values.shape[:-1], values.shape[-1]
    flat_v = values.reshape(-1, k_all)
    flat_m = mask.reshape(-1, k_all)
    n = flat_m.sum(axis=1)
    # Pack each group's present values to the front, keeping their order.
    order = np.argsort(~flat_m, axis=1, kind="stable")
    packed = np.take_along_axis(flat_v, order, axis=1)
    total = np.zeros(n.shape)
    for size in np.unique(n[n > 0]):
        rows = np.flatnonzero(n == size)
        run = np.ascontiguousarray(packed[rows, :size]).ravel()
        total[rows] = np.add.reduceat(run, np.arange(0, run.size, size))
    mean = np.zeros(n.shape)
    m2 = np.zeros(n.shape)
    seen = np.zeros(n.shape)
    for k in range(k_all):  # Welford, vectorised over groups
        on = k < n
        v = np.where(on, packed[:, k], 0.0)
        seen = seen + on
        old = mean
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(on, old + (v - old) / seen, old)
        m2 = np.where(on, m2 + (v - mean) * (v - old), m2)
    with np.errstate(invalid="ignore", divide="ignore"):
        mu = np.where(n > 0, total / n, np.nan)
        sd = np.where(n > 1, np.sqrt(m2 / (n - 1)), np.where(n > 0, 0.0, np.nan))
    return mu.reshape(shape), sd.reshape(shape)
