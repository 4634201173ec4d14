"""Training-set size of a cell: a number of training queries, or a budget of training
generations (the equal-budget experiment), and the count of generations a cell really used.
Definitions: docs/analyses.md, section "Equal budget and learning curves"."""

from __future__ import annotations

from typing import Any

import numpy as np

from benchmark.data.dataset import ObservationBlock


def generations_per_pair(block: ObservationBlock, mode: str) -> int:
    """Training generations one (query, model) pair costs under ``mode``: 1 for single_shot
    (one observation per pair), else every present observation of the pair in ``block`` (R x D
    under a protocol). A block whose pairs hold different numbers of observations has no single
    per-pair cost and is an error."""
    if mode == "single_shot":
        return 1
    per_pair = block.present.sum(axis=(2, 3))
    if per_pair.size == 0 or per_pair.min() != per_pair.max():
        raise ValueError(
            f"a generation budget needs the same number of observations per training pair; "
            f"this block has between {per_pair.min(initial=0)} and {per_pair.max(initial=0)}"
        )
    return int(per_pair.flat[0])


def training_queries(
    block: ObservationBlock, mode: str, n_queries: int | None = None, budget: int | None = None
) -> int | None:
    """How many of the first training queries a cell uses: ``n_queries``, or ``budget /
    generations_per_pair`` for a budget of ``budget`` generations per model; None: all.

    A budget that does not divide into whole queries, or asks for more queries than the data
    holds, is an error (never rounded or truncated).
    """
    if n_queries is not None and budget is not None:
        raise ValueError("give train.n_queries or train.budget, not both")
    if budget is not None:
        per = generations_per_pair(block, mode)
        if budget < 1 or budget % per:
            raise ValueError(
                f"train.budget={budget} generations per model is not a whole number of training "
                f"queries at {per} generations per (query, model) pair under {mode}"
            )
        n_queries = budget // per
    if n_queries is None:
        return None
    if not 1 <= n_queries <= block.n_queries:
        raise ValueError(
            f"the cell needs {n_queries} training queries; the data has {block.n_queries} "
            "(raise dataset.overrides.n_train on simulated data)"
        )
    return int(n_queries)


def generations_used(n_obs: np.ndarray, n_draws: int) -> dict[str, Any]:
    """Training generations behind targets with observation counts ``n_obs`` (``[Q, M]`` or
    ``[D, Q, M]``): ``total`` per draw and ``per_model`` (total / M). Every single-shot draw
    uses its own one observation per pair, so the count is per draw."""
    n_obs = np.asarray(n_obs)
    per_draw = n_obs.reshape(max(int(n_draws), 1), -1).sum(axis=1)
    if per_draw.min() != per_draw.max():
        raise ValueError(f"draws use different numbers of generations: {sorted(set(per_draw.tolist()))}")
    total = int(per_draw[0])
    return {"total": total, "per_model": total / n_obs.shape[-1]}
