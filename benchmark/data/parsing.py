"""Parse and validate one ``*_scored_generations.jsonl`` file into typed columns (docs/data.md).

Every problem raises :class:`~benchmark.data.errors.DataError` naming file, line and field; the
earliest bad row of a file is reported.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pandas.api.types import infer_dtype

from benchmark.data.dars_format import read_jsonl
from benchmark.data.errors import MISSING, DataError, show
from benchmark.data.schema import KNOWN_FIELDS, MODEL_INFO_FIELDS, OBSERVATION_TYPES, REQUIRED_FIELDS


@dataclass
class SplitRows:
    """Validated columns of one ``*_scored_generations.jsonl`` file (one entry per row)."""

    path: Path
    split: str
    records: list[dict]
    lines: np.ndarray  # int64 1-based line number of each row
    dataset: str
    query_id: np.ndarray  # object, str
    model: np.ndarray  # object, str
    score: np.ndarray  # float64
    cost: np.ndarray  # float64, raw USD
    variant: np.ndarray  # int64 prompt_variant_id
    decode: np.ndarray  # int64 decode_id
    observation_type: np.ndarray | None  # object, str (test only)
    n_cost_from_usage: int
    extra_fields: list[str]
    fields: frozenset[str] = frozenset()  # every field name seen in the file

    def err(self, i: int, field: str | None, detail: str, **kw: Any) -> DataError:
        return DataError(self.path, int(self.lines[i]), field, detail, **kw)


def first_index(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def _as_strings(rows: SplitRows, col: list, field: str) -> np.ndarray:
    if infer_dtype(col, skipna=False) != "string":
        i = next(k for k, v in enumerate(col) if type(v) is not str)
        raise rows.err(i, field, f"value {show(col[i])} is not a string")
    arr = np.asarray(col, dtype=object)
    _reject_blank(rows, arr, field)
    return arr


def _reject_blank(rows: SplitRows, values: np.ndarray, field: str) -> None:
    """An empty or whitespace-only name would silently become its own model / query."""
    blank = np.char.strip(values.astype(str)) == ""
    if blank.any():
        raise rows.err(first_index(blank), field, "value '' is empty")


def _as_numbers(rows: SplitRows, col: list, field: str) -> np.ndarray:
    if infer_dtype(col, skipna=False) in ("integer", "floating", "mixed-integer-float"):
        try:
            return np.asarray(col, dtype=np.float64)
        except OverflowError:
            pass
    for i, v in enumerate(col):
        if type(v) not in (int, float):
            raise rows.err(i, field, f"value {show(v)} is not a number")
        try:
            float(v)
        except OverflowError:
            raise rows.err(i, field, f"value {show(v)} is too large") from None
    raise AssertionError("unreachable")  # pragma: no cover


def _as_integers(rows: SplitRows, col: list, field: str) -> np.ndarray:
    kind = infer_dtype(col, skipna=False)
    if kind == "integer":
        try:
            return np.asarray(col, dtype=np.int64)
        except OverflowError:
            pass
    elif kind in ("floating", "mixed-integer-float"):
        arr = np.asarray(col, dtype=np.float64)
        bad = ~(np.isfinite(arr) & (arr == np.round(arr)) & (np.abs(arr) < 2.0**53))
        if not bad.any():
            return arr.astype(np.int64)
        i = first_index(bad)
        raise rows.err(i, field, f"value {show(col[i])} is not an integer")
    for i, v in enumerate(col):
        if type(v) is not int:
            raise rows.err(i, field, f"value {show(v)} is not an integer")
        if not -(2**63) <= v < 2**63:
            raise rows.err(i, field, f"value {show(v)} is out of the int64 range")
    raise AssertionError("unreachable")  # pragma: no cover


def _as_query_ids(rows: SplitRows, col: list) -> np.ndarray:
    """Query ids may be strings or integers (not both in one file); returned as strings."""
    kind = infer_dtype(col, skipna=False)
    if kind == "string":
        arr = np.asarray(col, dtype=object)
        _reject_blank(rows, arr, "query_id")
        return arr
    if kind == "integer":
        return np.asarray([str(v) for v in col], dtype=object)
    first_type = type(col[0])
    for i, v in enumerate(col):
        if type(v) not in (str, int):
            raise rows.err(i, "query_id", f"value {show(v)} is not a string or an integer")
        if type(v) is not first_type:
            raise rows.err(
                i,
                "query_id",
                f"value {show(v)} is a {type(v).__name__} but line {rows.lines[0]} has a "
                f"{first_type.__name__}; one file must use one id type",
            )
    raise AssertionError("unreachable")  # pragma: no cover


def parse_split(path: Path, data: bytes, split: str) -> SplitRows:
    """Parse and validate one split file. Raises :class:`DataError` on the first bad row."""
    records, lines = read_jsonl(path, data)
    if not records:
        raise DataError(path, None, None, f"split '{split}' is empty: the file has no rows")
    n = len(records)
    rows = SplitRows(
        path=path, split=split, records=records, lines=lines, dataset="",
        query_id=np.empty(0, object), model=np.empty(0, object), score=np.empty(0),
        cost=np.empty(0), variant=np.empty(0, np.int64), decode=np.empty(0, np.int64),
        observation_type=None, n_cost_from_usage=0, extra_fields=[],
    )  # fmt: skip
    fields = list(REQUIRED_FIELDS) + (["observation_type"] if split == "test" else [])
    cols: dict[str, list] = {f: [r.get(f, MISSING) for r in records] for f in fields}

    # cost: top-level ``cost`` wins; absent or null falls back to ``usage.cost``.
    cost_col = cols["cost"]
    from_usage = np.zeros(n, dtype=bool)
    if cost_col.count(MISSING) or cost_col.count(None):
        for i, v in enumerate(cost_col):
            if v is MISSING or v is None:
                usage = records[i].get("usage")
                uc = usage.get("cost") if isinstance(usage, dict) else None
                if uc is not None:
                    cost_col[i] = uc
                    from_usage[i] = True

    # missing / null required fields: report the earliest offending row
    problems: list[tuple[int, str, str]] = []
    for f, col in cols.items():
        tail = " and there is no 'usage.cost'" if f == "cost" else ""
        if col.count(MISSING):
            problems.append((col.index(MISSING), f, "required field is missing" + tail))
        if col.count(None):
            problems.append((col.index(None), f, "value null is not allowed" + tail))
    if problems:
        i, f, detail = min(problems)
        raise rows.err(i, f, detail)

    dataset = _as_strings(rows, cols["dataset"], "dataset")
    bad = dataset != dataset[0]
    if bad.any():
        i = first_index(bad)
        raise rows.err(
            i, "dataset",
            f"value {show(dataset[i])} differs from {show(dataset[0])} on line {lines[0]}; "
            "one file holds one dataset",
        )  # fmt: skip
    split_col = _as_strings(rows, cols["split"], "split")
    bad = split_col != split
    if bad.any():
        i = first_index(bad)
        raise rows.err(i, "split", f"value {show(split_col[i])} in the {split} file, expected {split!r}")

    query_id = _as_query_ids(rows, cols["query_id"])
    model = _as_strings(rows, cols["model"], "model")
    score = _as_numbers(rows, cols["score"], "score")
    bad = ~np.isfinite(score)
    if bad.any():
        i = first_index(bad)
        raise rows.err(i, "score", f"value {show(score[i])} is not finite")
    bad = (score < 0.0) | (score > 1.0)
    if bad.any():
        i = first_index(bad)
        raise rows.err(i, "score", f"value {show(cols['score'][i])} is outside [0, 1]")
    try:
        cost = _as_numbers(rows, cost_col, "cost")
        bad = ~np.isfinite(cost)
        if bad.any():
            i = first_index(bad)
            raise rows.err(i, "cost", f"value {show(cost[i])} is not finite")
        bad = cost < 0.0
        if bad.any():
            i = first_index(bad)
            raise rows.err(i, "cost", f"value {show(cost_col[i])} is negative")
    except DataError as exc:
        i = int(np.searchsorted(lines, exc.line))
        if from_usage[i]:  # the value came from ``usage.cost``: name that field
            raise rows.err(i, "usage.cost", exc.detail) from None
        raise
    variant = _as_integers(rows, cols["prompt_variant_id"], "prompt_variant_id")
    decode = _as_integers(rows, cols["decode_id"], "decode_id")
    obs_type = None
    if split == "test":
        obs_type = _as_strings(rows, cols["observation_type"], "observation_type")
        bad = ~np.isin(obs_type, np.asarray(list(OBSERVATION_TYPES), dtype=object))
        if bad.any():
            i = first_index(bad)
            raise rows.err(
                i, "observation_type",
                f"value {show(obs_type[i])} is not one of {', '.join(map(repr, OBSERVATION_TYPES))}",
            )  # fmt: skip

    seen: set[str] = set().union(*map(dict.keys, records))
    rows.dataset = str(dataset[0])
    rows.query_id = query_id
    rows.model = model
    rows.score = score
    rows.cost = cost
    rows.variant = variant
    rows.decode = decode
    rows.observation_type = obs_type
    rows.n_cost_from_usage = int(from_usage.sum())
    rows.extra_fields = sorted(seen - KNOWN_FIELDS)
    rows.fields = frozenset(seen)
    assert len(query_id) == n
    return rows




def parse_metadata(path: Path, data: bytes) -> dict:
    """Validate ``metadata.json`` (every key optional; see docs/data.md)."""
    try:
        meta = json.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        line = getattr(exc, "lineno", None)
        raise DataError(path, line, None, f"malformed JSON: {exc}") from None
    if not isinstance(meta, dict):
        raise DataError(path, None, None, f"expected a JSON object, got {type(meta).__name__}")
    if "dataset" in meta and not isinstance(meta["dataset"], str):
        raise DataError(path, None, "dataset", f"value {show(meta['dataset'])} is not a string")
    if meta.get("models") is not None:
        models = meta["models"]
        if not isinstance(models, list) or not models:
            raise DataError(path, None, "models", "expected a non-empty list of model names")
        names = []
        for k, entry in enumerate(models):
            if isinstance(entry, dict):  # tolerated: [{"name": ...}, ...]
                entry = entry.get("name", entry.get("model"))
            if not isinstance(entry, str):
                raise DataError(path, None, "models", f"entry {k} ({show(models[k])}) is not a model name")
            names.append(entry)
        dupes = sorted({x for x in names if names.count(x) > 1})
        if dupes:
            raise DataError(path, None, "models", f"lists {', '.join(map(repr, dupes))} more than once")
        meta["models"] = names
    info = meta.get("model_info")
    if info is not None:
        if not isinstance(info, dict):
            raise DataError(path, None, "model_info", "expected an object {model: {...}}")
        for model, entry in info.items():
            if not isinstance(entry, dict):
                raise DataError(path, None, f"model_info.{model}", "expected an object")
            for key in MODEL_INFO_FIELDS:
                v = entry.get(key)
                if v is None:
                    continue
                if type(v) not in (int, float) or not np.isfinite(v) or v < 0:
                    raise DataError(
                        path, None, f"model_info.{model}.{key}",
                        f"value {show(v)} is not a finite non-negative number or null",
                    )  # fmt: skip
    return meta

