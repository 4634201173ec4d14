"""The in-memory data model: dense observation blocks over ``[query, model, view, decode]``.

A split of a DARS dataset is held as one or more :class:`ObservationBlock` objects. Every
computation in the harness (supervision targets, metrics, diagnostics) is a vectorised
reduction over these four axes. Missing observations are masked with ``present == False``
and carry ``NaN`` in ``score`` and ``cost``; they are never filled.

Conventions
-----------
* ``view_ids[v]`` is the ``prompt_variant_id`` of view ``v``. Rewrites have ids ``>= 0``; the
  original query (test ``decoding_variation`` rows) has a negative id.
* ``decode_ids[s]`` is the ``decode_id`` of decode ``s``.
* Both id arrays are sorted ascending, so "the first ``n`` views" means the ``n`` smallest ids.
* ``cost`` holds raw USD until :func:`normalise_costs` returns a copy with normalised cost.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np
import pandas as pd

from benchmark.data.errors import DataWarning

CostNorm = Literal["minmax", "max", "none"]


@dataclass(frozen=True)
class ObservationBlock:
    """Dense observations of one split (or one test view) of a dataset.

    Attributes:
        score: float64 ``[Q, M, V, S]`` quality in [0, 1]; NaN where absent.
        cost: float64 ``[Q, M, V, S]`` cost (raw USD or normalised); NaN where absent.
        present: bool ``[Q, M, V, S]``.
        view_ids: int64 ``[V]`` prompt_variant_id of each view, ascending.
        decode_ids: int64 ``[S]`` decode_id of each decode, ascending.
    """

    score: np.ndarray
    cost: np.ndarray
    present: np.ndarray
    view_ids: np.ndarray
    decode_ids: np.ndarray

    def __post_init__(self) -> None:
        shape = self.score.shape
        if self.score.ndim != 4:
            raise ValueError(f"score must be 4-d [Q, M, V, S], got shape {shape}")
        if self.cost.shape != shape or self.present.shape != shape:
            raise ValueError(
                f"score {shape}, cost {self.cost.shape} and present {self.present.shape} differ"
            )
        if self.view_ids.shape != (shape[2],) or self.decode_ids.shape != (shape[3],):
            raise ValueError("view_ids / decode_ids do not match the V / S axes")
        if self.present.dtype != np.bool_:
            raise ValueError("present must be boolean")

    @property
    def n_queries(self) -> int:
        return self.score.shape[0]

    @property
    def n_models(self) -> int:
        return self.score.shape[1]

    @property
    def n_observations(self) -> int:
        return int(self.present.sum())

    def subset_views(self, view_mask: np.ndarray) -> "ObservationBlock":
        """Keep the views where ``view_mask`` is true."""
        view_mask = np.asarray(view_mask, dtype=bool)
        return replace(
            self,
            score=self.score[:, :, view_mask],
            cost=self.cost[:, :, view_mask],
            present=self.present[:, :, view_mask],
            view_ids=self.view_ids[view_mask],
        )

    def subset_decodes(self, decode_mask: np.ndarray) -> "ObservationBlock":
        """Keep the decodes where ``decode_mask`` is true."""
        decode_mask = np.asarray(decode_mask, dtype=bool)
        return replace(
            self,
            score=self.score[:, :, :, decode_mask],
            cost=self.cost[:, :, :, decode_mask],
            present=self.present[:, :, :, decode_mask],
            decode_ids=self.decode_ids[decode_mask],
        )

    def subset_queries(self, index: np.ndarray) -> "ObservationBlock":
        """Keep the queries at ``index`` (integer or boolean index on axis 0)."""
        return replace(
            self,
            score=self.score[index],
            cost=self.cost[index],
            present=self.present[index],
        )

    def with_cost(self, cost: np.ndarray) -> "ObservationBlock":
        return replace(self, cost=cost)


@dataclass(frozen=True)
class TruthTable:
    """Ground-truth pair parameters (simulated data only), aligned to a split's query order.

    ``mu_q``: expected quality; ``mu_c``: expected raw cost (USD); ``sigma_q``: population
    standard deviation of quality over the pair's observation distribution. All ``[Q, M]``.
    """

    mu_q: np.ndarray
    mu_c: np.ndarray
    sigma_q: np.ndarray


@dataclass(frozen=True)
class CostScale:
    """The affine map from raw cost to normalised cost: ``c~ = (c - offset) / scale``."""

    method: str
    offset: float
    scale: float

    def apply(self, cost: np.ndarray) -> np.ndarray:
        return (cost - self.offset) / self.scale


@dataclass(frozen=True)
class DarsDataset:
    """A DARS dataset: the training block, the two test views, query and model tables.

    Attributes:
        name: dataset name (e.g. ``gpqa``).
        models: model names in pool order.
        train: training observations (rewrites x decodes).
        test_rewrite: test ``prompt_variation`` observations.
        test_decoding: test ``decoding_variation`` observations.
        train_queries / test_queries: one row per query, in block order, with at least
            ``query_id``, ``text`` (the feature text of SPEC §5), ``original_question``.
        model_table: one row per model in pool order: ``model`` and, where known,
            ``price_in`` / ``price_out`` / ``params_b``.
        cost_scale: set once costs are normalised (None while costs are raw USD).
        train_truth / test_truth: ground truth for simulated data, else None.
        source: where the data came from (paths, content hash) for provenance.
    """

    name: str
    models: tuple[str, ...]
    train: ObservationBlock
    test_rewrite: ObservationBlock
    test_decoding: ObservationBlock
    train_queries: pd.DataFrame
    test_queries: pd.DataFrame
    model_table: pd.DataFrame
    cost_scale: CostScale | None = None
    train_truth: TruthTable | None = None
    test_truth: TruthTable | None = None
    source: dict = field(default_factory=dict)

    @property
    def n_models(self) -> int:
        return len(self.models)

    @property
    def test_views(self) -> dict[str, ObservationBlock]:
        """The held-out evaluation views, keyed by metric prefix (``r`` rewrite, ``d`` decoding)."""
        return {"r": self.test_rewrite, "d": self.test_decoding}


def _finite_cost_range(blocks: list[ObservationBlock]) -> tuple[float, float]:
    values = np.concatenate([b.cost[b.present] for b in blocks])
    if values.size == 0:
        raise ValueError("cannot normalise costs: no observations")
    return float(values.min()), float(values.max())


def cost_scale_for(dataset: DarsDataset, method: CostNorm) -> CostScale:
    """SPEC §3: min-max (default), max, or no normalisation, over train and test together."""
    if dataset.cost_scale is not None:
        raise ValueError(f"costs of {dataset.name!r} are already normalised")
    blocks = [dataset.train, dataset.test_rewrite, dataset.test_decoding]
    c_min, c_max = _finite_cost_range(blocks)
    if method == "minmax":
        span = c_max - c_min
        # All costs equal: every normalised cost is 0 (a zero span would divide by zero).
        return CostScale("minmax", c_min, span if span > 0 else 1.0)
    if method == "max":
        return CostScale("max", 0.0, c_max if c_max > 0 else 1.0)
    if method == "none":
        return CostScale("none", 0.0, 1.0)
    raise ValueError(f"unknown cost normalisation {method!r}; choose minmax, max or none")


def normalise_costs(dataset: DarsDataset, method: CostNorm = "minmax") -> DarsDataset:
    """Return a copy of ``dataset`` whose block costs are normalised (SPEC §3)."""
    cs = cost_scale_for(dataset, method)

    def norm(block: ObservationBlock) -> ObservationBlock:
        return block.with_cost(cs.apply(block.cost))

    def norm_truth(t: TruthTable | None) -> TruthTable | None:
        return None if t is None else replace(t, mu_c=cs.apply(t.mu_c))

    return replace(
        dataset,
        train=norm(dataset.train),
        test_rewrite=norm(dataset.test_rewrite),
        test_decoding=norm(dataset.test_decoding),
        cost_scale=cs,
        train_truth=norm_truth(dataset.train_truth),
        test_truth=norm_truth(dataset.test_truth),
    )


def apply_protocol(
    block: ObservationBlock, n_rewrites: int | None = None, n_decodes: int | None = None
) -> ObservationBlock:
    """SPEC §4 protocol: keep the first ``n_rewrites`` views and the first ``n_decodes`` decodes.

    ``None`` keeps every view / decode. Asking for more than the data holds is an error, not a
    silent truncation.
    """
    before = block.present
    if n_rewrites is not None:
        if not 1 <= n_rewrites <= len(block.view_ids):
            raise ValueError(
                f"protocol asks for {n_rewrites} rewrites; the data has {len(block.view_ids)}"
            )
        keep = np.zeros(len(block.view_ids), dtype=bool)
        keep[:n_rewrites] = True
        block = block.subset_views(keep)
    if n_decodes is not None:
        if not 1 <= n_decodes <= len(block.decode_ids):
            raise ValueError(
                f"protocol asks for {n_decodes} decodes; the data has {len(block.decode_ids)}"
            )
        keep = np.zeros(len(block.decode_ids), dtype=bool)
        keep[:n_decodes] = True
        block = block.subset_decodes(keep)
    had = before.any(axis=(2, 3))
    lost = int((had & ~block.present.any(axis=(2, 3))).sum())
    if lost:
        warnings.warn(
            f"protocol (n_rewrites={n_rewrites}, n_decodes={n_decodes}) leaves {lost} training "
            "(query, model) pairs with observations in the full data without any; their targets "
            "are NaN and the routers' fallbacks apply",
            DataWarning,
            stacklevel=2,
        )
    return block
