"""Supervision modes (docs/spec.md §4): pure functions from training observations to targets.

Every mode maps an :class:`~benchmark.data.ObservationBlock` (costs already normalised) to
:class:`Targets` with per-pair ``mu_q``, ``mu_c`` and ``sigma_q``. ``single_shot`` returns all
of its draws at once, with a leading draw axis ``[D, Q, M]``; every other mode returns
``[Q, M]``. A pair with no usable observation gets NaN targets (never a filled zero): routers
skip such targets.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable

import numpy as np

from benchmark.data.dataset import ObservationBlock
from supervision.official import file_order_mean_std
from supervision.stats import masked_mean, masked_std
from supervision.utility import select_models, softmax, utility

#: Single-shot samplers: ``darsbench`` (one uniform per pair, vectorised) and ``official`` (the
#: paper's reference code: one ``rng.integers`` per (query, model) group in file order).
SAMPLERS = ("darsbench", "official")

MODES = (
    "single_shot",
    "input_only",
    "output_only",
    "dars_no_risk",
    "dars_rewrite_risk",
    "dars_decode_risk",
    "dars",
)


@dataclass(frozen=True)
class Targets:
    """Per-pair supervision targets.

    Attributes:
        mode: the supervision mode that produced them.
        mu_q, mu_c, sigma_q: ``[Q, M]``, or ``[D, Q, M]`` for ``single_shot`` draws.
        uses_risk: whether ``beta`` applies to this mode (False for ``single_shot`` and
            ``dars_no_risk``, whose utility has no risk term).
        n_obs: ``[Q, M]`` (or ``[D, Q, M]``) count of observations behind each target.
        models: the model name of each column (pool order), or None where unknown. Routers
            that order their outputs by model name (the official recipes) need it.
    """

    mode: str
    mu_q: np.ndarray
    mu_c: np.ndarray
    sigma_q: np.ndarray
    uses_risk: bool
    n_obs: np.ndarray
    models: tuple[str, ...] | None = None

    @property
    def has_draws(self) -> bool:
        return self.mu_q.ndim == 3

    @property
    def n_draws(self) -> int:
        return self.mu_q.shape[0] if self.has_draws else 1

    def effective_beta(self, beta: float) -> float:
        return beta if self.uses_risk else 0.0

    def utility(self, lam: float, beta: float) -> np.ndarray:
        """``U = mu_q - lam * mu_c - beta * sigma_q`` with the mode's risk convention."""
        return utility(self.mu_q, self.mu_c, self.sigma_q, lam, self.effective_beta(beta))

    def hard_labels(self, lam: float, beta: float) -> np.ndarray:
        """``argmax_m U`` per query (docs/spec.md §3 tie-breaking)."""
        return select_models(self.utility(lam, beta), self.mu_c)

    def soft_labels(self, lam: float, beta: float, tau: float = 1.0) -> np.ndarray:
        """``softmax(U / tau)`` over the pool."""
        return softmax(self.utility(lam, beta), tau)

    def draw(self, d: int) -> "Targets":
        """The targets of single-shot draw ``d`` (a non-draw target returns itself for d=0)."""
        if not self.has_draws:
            if d != 0:
                raise IndexError(f"targets of mode {self.mode!r} have no draw {d}")
            return self
        return replace(
            self, mu_q=self.mu_q[d], mu_c=self.mu_c[d], sigma_q=self.sigma_q[d], n_obs=self.n_obs[d]
        )

    def stacked(self) -> "Targets":
        """The same targets with a leading draw axis (length 1 where there are no draws)."""
        if self.has_draws:
            return self
        return replace(
            self,
            mu_q=self.mu_q[None],
            mu_c=self.mu_c[None],
            sigma_q=self.sigma_q[None],
            n_obs=self.n_obs[None],
        )


def _rewrite_views(block: ObservationBlock) -> np.ndarray:
    """Mask of the rewrite views (prompt_variant_id >= 0); all views if there are none."""
    rewrites = block.view_ids >= 0
    return rewrites if rewrites.any() else np.ones_like(rewrites)


def _pooled(block: ObservationBlock, mask: np.ndarray) -> tuple[np.ndarray, ...]:
    """mu_q, mu_c, sample std of q, and count over the (V, S) axes under ``mask``."""
    axes = (2, 3)
    return (
        masked_mean(block.score, mask, axes),
        masked_mean(block.cost, mask, axes),
        masked_std(block.score, mask, axes, ddof=1),
        mask.sum(axis=axes),
    )


def _present_positions(block: ObservationBlock) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(n, start, pos)`` of the pairs in ``[Q * M]`` order: each pair's count of present
    observations, the offset of its first one in ``pos``, and ``pos``, the flat ``[Q, M, V, S]``
    index of every present observation (pair by pair, each pair's in ``(view, decode)`` order).

    The ``r``-th present observation of pair ``p`` is ``pos[start[p] + r]``: an index lookup
    instead of a ``[D, Q, M, V * S]`` comparison, so drawing costs memory per draw, not per
    draw and cell.
    """
    q, m, v, s = block.score.shape
    n = block.present.reshape(q * m, v * s).sum(axis=1)
    pos = np.flatnonzero(block.present)
    return n, np.cumsum(n) - n, pos


def _gather_draws(
    block: ObservationBlock, n: np.ndarray, start: np.ndarray, pos: np.ndarray, ranks, n_draws: int
) -> Targets:
    """Single-shot targets ``[D, Q, M]`` from one rank per pair and draw (``ranks`` yields
    ``n_draws`` ``[Q * M]`` int arrays, in draw order; entries of pairs with no observation are
    ignored). Draws are filled one at a time, so the only ``[D, ...]`` arrays are the outputs."""
    q, m = block.score.shape[:2]
    has = n > 0
    first = start[has]
    score, cost = block.score.reshape(-1), block.cost.reshape(-1)
    mu_q = np.full((n_draws, q * m), np.nan)
    mu_c = np.full((n_draws, q * m), np.nan)
    for d, rank in enumerate(ranks):
        k = pos[first + rank[has]]
        mu_q[d, has] = score[k]
        mu_c[d, has] = cost[k]
    has_qm = np.broadcast_to(has.reshape(q, m), (n_draws, q, m))
    sigma = np.where(has_qm, 0.0, np.nan)
    shape = (n_draws, q, m)
    return Targets(
        "single_shot", mu_q.reshape(shape), mu_c.reshape(shape), sigma, False, has_qm.astype(np.int64)
    )


def single_shot(block: ObservationBlock, n_draws: int = 100, seed: int = 0) -> Targets:
    """One observation per pair drawn uniformly from its present observations, ``n_draws`` times.

    Draw ``d`` uses ``numpy.random.default_rng(seed + d)``: it draws one uniform number per
    pair in ``[Q, M]`` order and takes the ``floor(u * n)``-th present observation of the pair
    in ``(prompt_variant_id, decode_id)`` order. ``sigma_q`` is 0.
    """
    if n_draws < 1:
        raise ValueError(f"n_draws must be >= 1, got {n_draws}")
    q, m = block.score.shape[:2]
    n, start, pos = _present_positions(block)
    # floor(u * n) < n for every u < 1 except where u * n rounds up to n (u within 2^-53 of 1):
    # the minimum keeps that draw on the pair's last observation.
    last = np.maximum(n - 1, 0)
    ranks = (
        np.minimum(np.floor(np.random.default_rng(seed + d).random(q * m) * n).astype(np.int64), last)
        for d in range(n_draws)
    )
    return _gather_draws(block, n, start, pos, ranks, n_draws)


def single_shot_official(block: ObservationBlock, n_draws: int = 100, seed: int = 42) -> Targets:
    """The paper's reference single-shot sampler, draw for draw.

    Draw ``d`` uses ``numpy.random.default_rng(seed + d)`` and walks the (query, model) groups
    that have at least one present observation in file order: queries in block order, models
    in pool order (the order a DARS file written query by query, model by model, lists them).
    For a group of ``n`` observations it calls ``rng.integers(0, n)`` once and takes that
    observation, counting the group's observations in ``(prompt_variant_id, decode_id)`` order
    (the file order within a group). ``rng.integers(0, 1)`` consumes no randomness, so a group
    with one observation does not shift the later draws. One vectorised ``rng.integers`` call
    over all groups gives exactly the numbers of those per-group calls. ``sigma_q`` is 0.
    """
    if n_draws < 1:
        raise ValueError(f"n_draws must be >= 1, got {n_draws}")
    n, start, pos = _present_positions(block)
    groups = np.flatnonzero(n > 0)

    def ranks():
        for d in range(n_draws):
            rank = np.zeros(n.size, dtype=np.int64)
            rank[groups] = np.random.default_rng(seed + d).integers(0, n[groups])
            yield rank

    return _gather_draws(block, n, start, pos, ranks(), n_draws)


def input_only(block: ObservationBlock) -> Targets:
    """Decode ``decode_id`` 0 (the first decode) of every rewrite; std over those (ddof=1)."""
    mask = block.present.copy()
    mask[:, :, ~_rewrite_views(block)] = False
    first = np.zeros(len(block.decode_ids), dtype=bool)
    first[0] = True
    mask[:, :, :, ~first] = False
    mu_q, mu_c, sd, n = _pooled(block, mask)
    return Targets("input_only", mu_q, mu_c, sd, True, n)


def output_only(block: ObservationBlock) -> Targets:
    """Every decode of one view: the original query if present, else the first rewrite."""
    original = np.flatnonzero(block.view_ids < 0)
    view = original[0] if original.size else int(np.flatnonzero(block.view_ids >= 0)[0])
    mask = np.zeros_like(block.present)
    mask[:, :, view] = block.present[:, :, view]
    mu_q, mu_c, sd, n = _pooled(block, mask)
    return Targets("output_only", mu_q, mu_c, sd, True, n)


def dars_full(block: ObservationBlock) -> Targets:
    """All observations; sigma_q = sample std (ddof=1) over all of them."""
    mu_q, mu_c, sd, n = _pooled(block, block.present)
    return Targets("dars", mu_q, mu_c, sd, True, n)


def dars_official(block: ObservationBlock) -> Targets:
    """``dars`` with the reference code's numerics (pandas' group mean and std in file order,
    bit for bit: :func:`supervision.official.file_order_mean_std`)."""
    q, m, v, s = block.score.shape
    mask = block.present.reshape(q, m, v * s)
    mu_q, sd = file_order_mean_std(block.score.reshape(q, m, v * s), mask)
    mu_c, _ = file_order_mean_std(block.cost.reshape(q, m, v * s), mask)
    return Targets("dars", mu_q, mu_c, sd, True, mask.sum(axis=-1))


def dars_no_risk(block: ObservationBlock) -> Targets:
    """All observations; no risk term (sigma_q is 0 and beta does not apply)."""
    mu_q, mu_c, _, n = _pooled(block, block.present)
    sigma = np.where(n > 0, 0.0, np.nan)
    return Targets("dars_no_risk", mu_q, mu_c, sigma, False, n)


def dars_rewrite_risk(block: ObservationBlock) -> Targets:
    """All observations; sigma_q = sample std (ddof=1) of the per-rewrite mean scores.

    A view with no present observation of the pair does not count as a rewrite.
    """
    mu_q, mu_c, _, n = _pooled(block, block.present)
    view_mean = masked_mean(block.score, block.present, axis=3)  # [Q, M, V]
    has_view = block.present.any(axis=3)
    sigma = masked_std(view_mean, has_view, axis=2, ddof=1)
    return Targets("dars_rewrite_risk", mu_q, mu_c, sigma, True, n)


def dars_decode_risk(block: ObservationBlock) -> Targets:
    """All observations; sigma_q = sqrt(mean over rewrites of the within-rewrite variance).

    Within-rewrite variance is the sample variance (ddof=1) over that rewrite's decodes; a
    rewrite with a single decode contributes 0; a rewrite with none is left out of the mean.
    """
    mu_q, mu_c, _, n = _pooled(block, block.present)
    within_sd = masked_std(block.score, block.present, axis=3, ddof=1)  # [Q, M, V]
    has_view = block.present.any(axis=3)
    mean_var = masked_mean(within_sd**2, has_view, axis=2)
    return Targets("dars_decode_risk", mu_q, mu_c, np.sqrt(mean_var), True, n)


_DETERMINISTIC: dict[str, Callable[[ObservationBlock], Targets]] = {
    "input_only": input_only,
    "output_only": output_only,
    "dars_no_risk": dars_no_risk,
    "dars_rewrite_risk": dars_rewrite_risk,
    "dars_decode_risk": dars_decode_risk,
    "dars": dars_full,
}


def make_targets(
    block: ObservationBlock,
    mode: str,
    *,
    n_draws: int = 100,
    seed: int = 0,
    sampler: str = "darsbench",
    models: tuple[str, ...] | None = None,
) -> Targets:
    """Dispatch to the supervision mode named ``mode`` (one of :data:`MODES`).

    ``sampler`` picks the single-shot sampler (one of :data:`SAMPLERS`); ``official`` also
    computes ``dars`` targets with the reference code's numerics (:func:`dars_official`);
    other modes ignore it.
    ``models`` (the pool's names, one per column) is attached to the targets.
    """
    if sampler not in SAMPLERS:
        raise ValueError(f"unknown single-shot sampler {sampler!r}; choose one of {SAMPLERS}")
    if models is not None and len(models) != block.n_models:
        raise ValueError(f"{len(models)} model names for a block of {block.n_models} models")
    if mode == "single_shot":
        if sampler == "official":
            t = single_shot_official(block, n_draws=n_draws, seed=seed)
        else:
            t = single_shot(block, n_draws=n_draws, seed=seed)
    elif mode == "dars" and sampler == "official":
        t = dars_official(block)
    else:
        try:
            fn = _DETERMINISTIC[mode]
        except KeyError:
            raise ValueError(f"unknown supervision mode {mode!r}; choose one of {MODES}") from None
        t = fn(block)
    return t if models is None else replace(t, models=tuple(str(m) for m in models))
