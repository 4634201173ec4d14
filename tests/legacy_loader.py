"""The DARS loader as it was before the columnar parser (issue 9): the reference that
tests/test_loader_scale.py compares the new loader with, bit for bit. Test code only."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd
from pandas.api.types import infer_dtype

from benchmark.data.dars_format import (
    METADATA_FILE,
    TEST_FILE,
    TRAIN_FILE,
    TRUTH_COLUMNS as _TRUTH_COLUMNS,
    TRUTH_FILE,
    write_dars_jsonl,
)
from benchmark.data.dataset import DarsDataset, ObservationBlock, TruthTable
from benchmark.data.io import (
    atomic_write_frame,
    atomic_write_json,
    atomic_write_npz,
)

__all__ = [
    "LOADER_VERSION",
    "TRAIN_FILE",
    "TEST_FILE",
    "METADATA_FILE",
    "TRUTH_FILE",
    "DataError",
    "DataWarning",
    "load_dars_dir",
    "check_release_facts",
    "write_dars_jsonl",
    "read_dars_rows",
    "default_cache_dir",
]

#: Bump whenever the parsed result for the same input bytes changes (invalidates caches).
LOADER_VERSION = "1"


#: Required on every row (``cost`` may instead be given as ``usage.cost``).
REQUIRED_FIELDS: tuple[str, ...] = (
    "dataset",
    "split",
    "query_id",
    "model",
    "score",
    "cost",
    "prompt_variant_id",
    "decode_id",
)
#: Test rows: ``observation_type`` value -> DarsDataset block attribute.
OBSERVATION_TYPES: dict[str, str] = {
    "prompt_variation": "test_rewrite",
    "decoding_variation": "test_decoding",
}
#: Per-query text fields copied into the query tables when the data has them.
_QUESTION_FIELDS = ("original_question", "question", "input_question")
_CONTEXT_FIELDS = ("context", "passage")
_GOLD_FIELDS = ("gold", "gold_answer", "answer")
_TEXT_FIELDS = _QUESTION_FIELDS + _CONTEXT_FIELDS + _GOLD_FIELDS
#: Fields that should not vary between the rows of one query (warned about when they do).
_PER_QUERY_FIELDS = ("original_question",) + _CONTEXT_FIELDS + _GOLD_FIELDS
#: Fields the harness knows about; anything else is listed in ``source["extra_fields"]``.
_KNOWN_FIELDS = frozenset(
    REQUIRED_FIELDS
    + ("observation_type",)
    + _TEXT_FIELDS
    + ("usage", "request_config", "finish_reason", "score_type", "parse_success")
)
CONTEXT_CHARS = 1200  # SPEC §5: feature text = context[:1200] + "\nQuestion: " + question
_MODEL_INFO_FIELDS = ("price_in", "price_out", "params_b")

#: SPEC §2 facts about the official release: (train rows, test rows).
RELEASE_ROWS: dict[str, tuple[int, int]] = {
    "gpqa": (30_000, 8_928),
    "math-500": (30_000, 10_800),
    "drop-800": (30_000, 21_600),
}
RELEASE_MODELS: tuple[str, ...] = (
    "google/gemma-3-12b-it",
    "mistralai/mistral-small-3.2-24b-instruct",
    "qwen/qwen3-32b",
    "meta-llama/llama-3.3-70b-instruct",
    "google/gemini-2.5-flash-lite",
    "deepseek/deepseek-chat-v3.1",
)
RELEASE_TRAIN_QUERIES = 200
_BINARY_SCORE_DATASETS = ("gpqa", "math-500")

_MISSING = object()  # sentinel: field absent from a JSON object


# --------------------------------------------------------------------------------------------
# errors


class DataError(ValueError):
    """Invalid DARS input. ``path`` is the file, ``line`` the 1-based line (None when the
    problem is the whole file), ``field`` the offending field (None for malformed JSON or a
    whole-file problem)."""

    def __init__(
        self,
        path: str | os.PathLike,
        line: int | None,
        field: str | None,
        detail: str,
        *,
        other_line: int | None = None,
    ) -> None:
        self.path = str(path)
        self.line = None if line is None else int(line)
        self.field = field
        self.detail = detail
        self.other_line = None if other_line is None else int(other_line)
        where = _display_path(path) + ("" if line is None else f":{int(line)}")
        what = "" if field is None else f"field '{field}': "
        super().__init__(f"{where}: {what}{detail}")

    def __reduce__(self) -> tuple:  # picklable across processes (joblib launcher)
        return (
            type(self),
            (self.path, self.line, self.field, self.detail),
            {"other_line": self.other_line},
        )


class DataWarning(UserWarning):
    """Something in the data is surprising but loadable (reported with counts)."""


def _display_path(path: str | os.PathLike) -> str:
    p = Path(path)
    return f"{p.parent.name}/{p.name}" if p.parent.name else p.name


def _show(value: Any) -> str:
    """A short printable form of a JSON value for error messages."""
    if value is _MISSING:
        return "<missing>"
    if isinstance(value, str):
        text = repr(value)
        return text if len(text) <= 80 else text[:76] + "...'"
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=True)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


# --------------------------------------------------------------------------------------------
# parsing one JSONL file into validated columns


@dataclass
class _SplitRows:
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


def _read_jsonl(path: Path, data: bytes) -> tuple[list[dict], np.ndarray]:
    """``json.loads`` every non-blank line; return the objects and their 1-based line numbers.

    Whitespace-only lines are ignored anywhere in the file. Lines are split on ``\\n`` only
    (JSON strings may legally contain U+2028, which ``str.splitlines`` would split on).
    """
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise DataError(path, line, None, f"not valid UTF-8 ({exc.reason})") from None
    loads = json.loads
    records: list[dict] = []
    lines: list[int] = []
    for lineno, line in enumerate(text.split("\n"), 1):
        if not line or line.isspace():
            continue
        try:
            rec = loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(
                path, lineno, None, f"malformed JSON: {exc.msg} (column {exc.colno})"
            ) from None
        if type(rec) is not dict:
            raise DataError(
                path, lineno, None, f"expected a JSON object, got {type(rec).__name__}"
            )
        records.append(rec)
        lines.append(lineno)
    return records, np.asarray(lines, dtype=np.int64)


def _first(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def _as_strings(rows: _SplitRows, col: list, field: str) -> np.ndarray:
    if infer_dtype(col, skipna=False) != "string":
        i = next(k for k, v in enumerate(col) if type(v) is not str)
        raise rows.err(i, field, f"value {_show(col[i])} is not a string")
    arr = np.asarray(col, dtype=object)
    _reject_blank(rows, arr, field)
    return arr


def _reject_blank(rows: _SplitRows, values: np.ndarray, field: str) -> None:
    """An empty or whitespace-only name would silently become its own model / query."""
    blank = np.char.strip(values.astype(str)) == ""
    if blank.any():
        raise rows.err(_first(blank), field, "value '' is empty")


def _as_numbers(rows: _SplitRows, col: list, field: str) -> np.ndarray:
    if infer_dtype(col, skipna=False) in ("integer", "floating", "mixed-integer-float"):
        try:
            return np.asarray(col, dtype=np.float64)
        except OverflowError:
            pass
    for i, v in enumerate(col):
        if type(v) not in (int, float):
            raise rows.err(i, field, f"value {_show(v)} is not a number")
        try:
            float(v)
        except OverflowError:
            raise rows.err(i, field, f"value {_show(v)} is too large") from None
    raise AssertionError("unreachable")  # pragma: no cover


def _as_integers(rows: _SplitRows, col: list, field: str) -> np.ndarray:
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
        i = _first(bad)
        raise rows.err(i, field, f"value {_show(col[i])} is not an integer")
    for i, v in enumerate(col):
        if type(v) is not int:
            raise rows.err(i, field, f"value {_show(v)} is not an integer")
        if not -(2**63) <= v < 2**63:
            raise rows.err(i, field, f"value {_show(v)} is out of the int64 range")
    raise AssertionError("unreachable")  # pragma: no cover


def _as_query_ids(rows: _SplitRows, col: list) -> np.ndarray:
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
            raise rows.err(i, "query_id", f"value {_show(v)} is not a string or an integer")
        if type(v) is not first_type:
            raise rows.err(
                i,
                "query_id",
                f"value {_show(v)} is a {type(v).__name__} but line {rows.lines[0]} has a "
                f"{first_type.__name__}; one file must use one id type",
            )
    raise AssertionError("unreachable")  # pragma: no cover


def _parse_split(path: Path, data: bytes, split: str) -> _SplitRows:
    """Parse and validate one split file. Raises :class:`DataError` on the first bad row."""
    records, lines = _read_jsonl(path, data)
    if not records:
        raise DataError(path, None, None, f"split '{split}' is empty: the file has no rows")
    n = len(records)
    rows = _SplitRows(
        path=path, split=split, records=records, lines=lines, dataset="",
        query_id=np.empty(0, object), model=np.empty(0, object), score=np.empty(0),
        cost=np.empty(0), variant=np.empty(0, np.int64), decode=np.empty(0, np.int64),
        observation_type=None, n_cost_from_usage=0, extra_fields=[],
    )  # fmt: skip
    fields = list(REQUIRED_FIELDS) + (["observation_type"] if split == "test" else [])
    cols: dict[str, list] = {f: [r.get(f, _MISSING) for r in records] for f in fields}

    # cost: top-level ``cost`` wins; absent or null falls back to ``usage.cost``.
    cost_col = cols["cost"]
    from_usage = np.zeros(n, dtype=bool)
    if cost_col.count(_MISSING) or cost_col.count(None):
        for i, v in enumerate(cost_col):
            if v is _MISSING or v is None:
                usage = records[i].get("usage")
                uc = usage.get("cost") if isinstance(usage, dict) else None
                if uc is not None:
                    cost_col[i] = uc
                    from_usage[i] = True

    # missing / null required fields: report the earliest offending row
    problems: list[tuple[int, str, str]] = []
    for f, col in cols.items():
        tail = " and there is no 'usage.cost'" if f == "cost" else ""
        if col.count(_MISSING):
            problems.append((col.index(_MISSING), f, "required field is missing" + tail))
        if col.count(None):
            problems.append((col.index(None), f, "value null is not allowed" + tail))
    if problems:
        i, f, detail = min(problems)
        raise rows.err(i, f, detail)

    dataset = _as_strings(rows, cols["dataset"], "dataset")
    bad = dataset != dataset[0]
    if bad.any():
        i = _first(bad)
        raise rows.err(
            i, "dataset",
            f"value {_show(dataset[i])} differs from {_show(dataset[0])} on line {lines[0]}; "
            "one file holds one dataset",
        )  # fmt: skip
    split_col = _as_strings(rows, cols["split"], "split")
    bad = split_col != split
    if bad.any():
        i = _first(bad)
        raise rows.err(i, "split", f"value {_show(split_col[i])} in the {split} file, expected {split!r}")

    query_id = _as_query_ids(rows, cols["query_id"])
    model = _as_strings(rows, cols["model"], "model")
    score = _as_numbers(rows, cols["score"], "score")
    bad = ~np.isfinite(score)
    if bad.any():
        i = _first(bad)
        raise rows.err(i, "score", f"value {_show(score[i])} is not finite")
    bad = (score < 0.0) | (score > 1.0)
    if bad.any():
        i = _first(bad)
        raise rows.err(i, "score", f"value {_show(cols['score'][i])} is outside [0, 1]")
    try:
        cost = _as_numbers(rows, cost_col, "cost")
        bad = ~np.isfinite(cost)
        if bad.any():
            i = _first(bad)
            raise rows.err(i, "cost", f"value {_show(cost[i])} is not finite")
        bad = cost < 0.0
        if bad.any():
            i = _first(bad)
            raise rows.err(i, "cost", f"value {_show(cost_col[i])} is negative")
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
            i = _first(bad)
            raise rows.err(
                i, "observation_type",
                f"value {_show(obs_type[i])} is not one of {', '.join(map(repr, OBSERVATION_TYPES))}",
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
    rows.extra_fields = sorted(seen - _KNOWN_FIELDS)
    rows.fields = frozenset(seen)
    assert len(query_id) == n
    return rows


# --------------------------------------------------------------------------------------------
# dense blocks


def _check_duplicates(rows: _SplitRows, flat: np.ndarray) -> None:
    """Raise on two rows with the same (query, model, prompt_variant_id, decode_id)."""
    order = np.argsort(flat, kind="stable")
    same = flat[order[1:]] == flat[order[:-1]]
    if not same.any():
        return
    # The duplicate that appears earliest in the file; its partner is the key's first row.
    k = np.flatnonzero(same)
    j = int(np.argmin(order[1:][k]))
    second = int(order[1:][k][j])
    first = int(order[:-1][k][j])
    key = (
        f"query_id={_show(rows.query_id[second])}, model={_show(rows.model[second])}, "
        f"prompt_variant_id={rows.variant[second]}, decode_id={rows.decode[second]}"
    )
    raise rows.err(
        second,
        "query_id, model, prompt_variant_id, decode_id",
        f"duplicate observation ({key}); first seen on line {rows.lines[first]}",
        other_line=int(rows.lines[first]),
    )


def _dense_block(
    q: np.ndarray,
    n_q: int,
    m: np.ndarray,
    n_m: int,
    variant: np.ndarray,
    decode: np.ndarray,
    score: np.ndarray,
    cost: np.ndarray,
) -> ObservationBlock:
    """Scatter rows into ``[Q, M, V, S]`` arrays (NaN / present=False where absent).

    Views are the sorted unique ``prompt_variant_id`` values of these rows, decodes the sorted
    unique ``decode_id`` values. Keys must already be unique.
    """
    view_ids, v = np.unique(variant, return_inverse=True)
    decode_ids, s = np.unique(decode, return_inverse=True)
    shape = (n_q, n_m, len(view_ids), len(decode_ids))
    flat = np.ravel_multi_index((q, m, v.ravel(), s.ravel()), shape)
    size = int(np.prod(shape))
    score_d = np.full(size, np.nan)
    cost_d = np.full(size, np.nan)
    present = np.zeros(size, dtype=bool)
    score_d[flat] = score
    cost_d[flat] = cost
    present[flat] = True
    return ObservationBlock(
        score=score_d.reshape(shape),
        cost=cost_d.reshape(shape),
        present=present.reshape(shape),
        view_ids=view_ids.astype(np.int64),
        decode_ids=decode_ids.astype(np.int64),
    )


def _split_keys(rows: _SplitRows, q: np.ndarray, m: np.ndarray, n_q: int, n_m: int) -> np.ndarray:
    _, v = np.unique(rows.variant, return_inverse=True)
    _, s = np.unique(rows.decode, return_inverse=True)
    n_v, n_s = int(v.max()) + 1, int(s.max()) + 1
    return np.ravel_multi_index((q, m, v.ravel(), s.ravel()), (n_q, n_m, n_v, n_s))


# --------------------------------------------------------------------------------------------
# query tables


def _text_value(v: Any) -> str | None:
    """Text fields: strings as they are, null/absent as None, anything else JSON-encoded."""
    if v is None or v is _MISSING or (isinstance(v, float) and np.isnan(v)):
        return None
    return v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)


def _object_column(values: Iterable[Any]) -> pd.Series:
    return pd.Series(list(values), dtype=object)


def _normalise_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Non-numeric columns as ``object`` with ``None`` for missing (same on every pandas
    version and after a parquet round trip)."""
    out = {}
    for name in frame.columns:
        col = frame[name]
        if pd.api.types.is_numeric_dtype(col.dtype) and not pd.api.types.is_bool_dtype(col.dtype):
            out[name] = col.astype(np.float64) if col.dtype.kind == "f" else col
        else:
            obj = col.astype(object)
            out[name] = obj.where(obj.notna(), None)
    return pd.DataFrame(out, columns=list(frame.columns)).reset_index(drop=True)


def _query_table(
    rows: _SplitRows, q: np.ndarray, query_ids: np.ndarray, notes: list[str]
) -> pd.DataFrame:
    """One row per query (block order): ``query_id, text, original_question, context`` and,
    where the data has them, ``gold, input_question, question, passage``.

    A query's value of a field is taken from its rows ordered by ``prompt_variant_id`` (the
    original query first where present), then file order: the first non-null value.
    """
    n_q = len(query_ids)
    order = np.lexsort((np.arange(len(q)), rows.variant, q))
    q_sorted = q[order]
    per_query: dict[str, pd.Series] = {}
    for f in _TEXT_FIELDS:
        if f not in rows.fields:
            continue
        col = [rows.records[i].get(f) for i in order]
        if col.count(None) == len(col):
            continue
        kind = infer_dtype(col, skipna=True)
        values = col if kind in ("string", "empty") else [_text_value(v) for v in col]
        series = pd.Series(values, dtype=object)
        grouped = series.groupby(q_sorted, sort=True)
        if f in _PER_QUERY_FIELDS:
            varying = int((grouped.nunique(dropna=True) > 1).sum())
            if varying:
                notes.append(
                    f"{_display_path(rows.path)}: field '{f}' differs between the rows of "
                    f"{varying} queries; the query table keeps the value of the row with the "
                    "smallest prompt_variant_id"
                )
        first = grouped.first().reindex(np.arange(n_q))
        per_query[f] = _object_column(_text_value(v) for v in first.tolist())

    def coalesce(fields: Sequence[str]) -> list[str | None]:
        out: list[str | None] = [None] * n_q
        for f in reversed(fields):
            if f in per_query:
                vals = per_query[f].tolist()
                out = [v if v is not None else o for v, o in zip(vals, out)]
        return out

    question = coalesce(_QUESTION_FIELDS)
    context = coalesce(_CONTEXT_FIELDS)
    n_no_question = sum(v is None for v in question)
    if n_no_question:
        notes.append(
            f"{_display_path(rows.path)}: {n_no_question} of {n_q} queries have no question "
            f"text ({' / '.join(_QUESTION_FIELDS)}); their feature text is the context only"
        )
    text = []
    for ques, ctx in zip(question, context):
        ctx = ctx[:CONTEXT_CHARS] if ctx else ""
        if ques is None:
            text.append(ctx)
        else:
            text.append(f"{ctx}\nQuestion: {ques}" if ctx else ques)
    table: dict[str, pd.Series] = {
        "query_id": _object_column(query_ids),
        "text": _object_column(text),
        "original_question": _object_column(question),
        "context": _object_column(context),
    }
    if any(f in per_query for f in _GOLD_FIELDS):
        table["gold"] = _object_column(coalesce(_GOLD_FIELDS))
    for f in ("input_question", "question", "passage"):
        if f in per_query:
            table[f] = per_query[f]
    return _normalise_table(pd.DataFrame(table))


# --------------------------------------------------------------------------------------------
# metadata.json and truth.csv


def _parse_metadata(path: Path, data: bytes) -> dict:
    """Validate ``metadata.json`` (every key optional; see docs/data.md)."""
    try:
        meta = json.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        line = getattr(exc, "lineno", None)
        raise DataError(path, line, None, f"malformed JSON: {exc}") from None
    if not isinstance(meta, dict):
        raise DataError(path, None, None, f"expected a JSON object, got {type(meta).__name__}")
    if "dataset" in meta and not isinstance(meta["dataset"], str):
        raise DataError(path, None, "dataset", f"value {_show(meta['dataset'])} is not a string")
    if meta.get("models") is not None:
        models = meta["models"]
        if not isinstance(models, list) or not models:
            raise DataError(path, None, "models", "expected a non-empty list of model names")
        names = []
        for k, entry in enumerate(models):
            if isinstance(entry, dict):  # tolerated: [{"name": ...}, ...]
                entry = entry.get("name", entry.get("model"))
            if not isinstance(entry, str):
                raise DataError(path, None, "models", f"entry {k} ({_show(models[k])}) is not a model name")
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
            for key in _MODEL_INFO_FIELDS:
                v = entry.get(key)
                if v is None:
                    continue
                if type(v) not in (int, float) or not np.isfinite(v) or v < 0:
                    raise DataError(
                        path, None, f"model_info.{model}.{key}",
                        f"value {_show(v)} is not a finite non-negative number or null",
                    )  # fmt: skip
    return meta


def _model_table(models: Sequence[str], meta: dict, notes: list[str]) -> pd.DataFrame:
    info = meta.get("model_info") or {}
    table: dict[str, Any] = {"model": _object_column(models)}
    for key in _MODEL_INFO_FIELDS:
        if any(isinstance(e, dict) and key in e for e in info.values()):
            table[key] = np.asarray(
                [np.nan if (info.get(m) or {}).get(key) is None else float(info[m][key]) for m in models],
                dtype=np.float64,
            )
    unknown = sorted(set(info) - set(models))
    if unknown:
        notes.append(
            f"{METADATA_FILE}: model_info describes {len(unknown)} model(s) not in the pool: "
            + ", ".join(unknown)
        )
    return _normalise_table(pd.DataFrame(table))


def _parse_truth(
    path: Path,
    data: bytes,
    query_ids: dict[str, np.ndarray],
    models: Sequence[str],
    notes: list[str],
) -> dict[str, TruthTable | None]:
    """Read ``truth.csv`` (``split,query_id,model,mu_q,mu_c,sigma_q``) into ``[Q, M]`` tables
    aligned to each split's query order and the pool order. A split with rows must cover every
    (query, model) pair exactly once."""
    try:
        frame = pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False)
    except (ValueError, pd.errors.ParserError) as exc:
        raise DataError(path, None, None, f"cannot read CSV: {exc}") from None
    for col in _TRUTH_COLUMNS:
        if col not in frame.columns:
            raise DataError(path, 1, col, "column is missing from the header")
    lines = np.arange(len(frame), dtype=np.int64) + 2  # header is line 1
    values = {}
    for col in ("mu_q", "mu_c", "sigma_q"):
        raw = frame[col].to_numpy(dtype=object)
        num = pd.to_numeric(frame[col], errors="coerce").to_numpy(dtype=np.float64)
        bad = ~np.isfinite(num)
        if bad.any():
            i = _first(bad)
            raise DataError(path, lines[i], col, f"value {raw[i]!r} is not a finite number")
        lo_hi = {"mu_q": (0.0, 1.0), "mu_c": (0.0, np.inf), "sigma_q": (0.0, np.inf)}[col]
        bad = (num < lo_hi[0]) | (num > lo_hi[1])
        if bad.any():
            i = _first(bad)
            rng = "[0, 1]" if col == "mu_q" else ">= 0"
            raise DataError(path, lines[i], col, f"value {raw[i]!r} is outside {rng}")
        values[col] = num
    split = frame["split"].to_numpy(dtype=object)
    bad = ~np.isin(split, np.asarray(["train", "test"], dtype=object))
    if bad.any():
        i = _first(bad)
        raise DataError(path, lines[i], "split", f"value {split[i]!r} is not 'train' or 'test'")
    model_idx = pd.Index(list(models)).get_indexer(frame["model"].to_numpy(dtype=object))
    bad = model_idx < 0
    if bad.any():
        i = _first(bad)
        raise DataError(path, lines[i], "model", f"model {frame['model'].iat[i]!r} is not in the pool")
    qid = frame["query_id"].to_numpy(dtype=object)
    out: dict[str, TruthTable | None] = {}
    n_m = len(models)
    for name in ("train", "test"):
        sel = np.flatnonzero(split == name)
        ids = query_ids[name]
        if sel.size == 0:
            out[name] = None
            notes.append(f"{TRUTH_FILE}: no rows for split '{name}'; its truth table is None")
            continue
        q = pd.Index(ids).get_indexer(qid[sel])
        bad = q < 0
        if bad.any():
            i = sel[_first(bad)]
            raise DataError(path, lines[i], "query_id", f"query {qid[i]!r} is not in the {name} split")
        flat = q * n_m + model_idx[sel]
        order = np.argsort(flat, kind="stable")
        same = flat[order[1:]] == flat[order[:-1]]
        if same.any():
            k = _first(same)
            i, j = sel[order[k + 1]], sel[order[k]]
            raise DataError(
                path, lines[i], "query_id, model",
                f"duplicate pair ({qid[i]!r}, {frame['model'].iat[i]!r}); first on line {lines[j]}",
                other_line=int(lines[j]),
            )  # fmt: skip
        if flat.size != len(ids) * n_m:
            covered = np.zeros(len(ids) * n_m, dtype=bool)
            covered[flat] = True
            miss = _first(~covered)
            raise DataError(
                path, None, "query_id, model",
                f"{int((~covered).sum())} {name} (query, model) pairs have no row, e.g. "
                f"({ids[miss // n_m]!r}, {models[miss % n_m]!r})",
            )  # fmt: skip
        arrays = {}
        for col in ("mu_q", "mu_c", "sigma_q"):
            a = np.empty(len(ids) * n_m)
            a[flat] = values[col][sel]
            arrays[col] = a.reshape(len(ids), n_m)
        out[name] = TruthTable(**arrays)
    return out


# --------------------------------------------------------------------------------------------
# cache


def default_cache_dir() -> Path:
    """``$DARSBENCH_CACHE`` if set, else ``~/.cache/darsbench``."""
    env = os.environ.get("DARSBENCH_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "darsbench"


_BLOCKS = ("train", "test_rewrite", "test_decoding")
_BLOCK_ARRAYS = ("score", "cost", "present", "view_ids", "decode_ids")


def _content_hash(name: str, files: dict[str, bytes | None]) -> str:
    h = hashlib.sha256()
    h.update(f"darsbench-loader-v{LOADER_VERSION}\0{name}\0".encode())
    for role in sorted(files):
        data = files[role]
        if data is None:
            h.update(f"{role}\0absent\0".encode())
        else:
            h.update(f"{role}\0{len(data)}\0".encode())
            h.update(data)
    return h.hexdigest()


def _cache_folder(cache_root: Path, name: str, content_hash: str) -> Path:
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", name) or "dataset"
    return cache_root / "dars" / f"{safe}-{content_hash[:24]}"


def _write_cache(folder: Path, ds: DarsDataset, content_hash: str, extra: dict) -> None:
    arrays: dict[str, np.ndarray] = {}
    for b in _BLOCKS:
        block = getattr(ds, b)
        for a in _BLOCK_ARRAYS:
            arrays[f"{b}.{a}"] = getattr(block, a)
    for split in ("train", "test"):
        truth = getattr(ds, f"{split}_truth")
        if truth is not None:
            for a in ("mu_q", "mu_c", "sigma_q"):
                arrays[f"{split}_truth.{a}"] = getattr(truth, a)
    atomic_write_npz(folder / "arrays.npz", **arrays)
    atomic_write_frame(folder / "train_queries.parquet", ds.train_queries)
    atomic_write_frame(folder / "test_queries.parquet", ds.test_queries)
    atomic_write_frame(folder / "model_table.parquet", ds.model_table)
    # meta.json last: its presence (with the matching hash) marks a complete cache entry.
    atomic_write_json(
        folder / "meta.json",
        {
            "loader_version": LOADER_VERSION,
            "content_hash": content_hash,
            "name": ds.name,
            "models": list(ds.models),
            **extra,
        },
    )


def _read_cache(folder: Path, content_hash: str) -> tuple[dict, dict] | None:
    meta_path = folder / "meta.json"
    if not meta_path.is_file():
        return None
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    if meta.get("content_hash") != content_hash or meta.get("loader_version") != LOADER_VERSION:
        return None
    with np.load(folder / "arrays.npz", allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    parts: dict[str, Any] = {}
    for b in _BLOCKS:
        parts[b] = ObservationBlock(**{a: arrays[f"{b}.{a}"] for a in _BLOCK_ARRAYS})
    for split in ("train", "test"):
        key = f"{split}_truth.mu_q"
        parts[f"{split}_truth"] = (
            TruthTable(**{a: arrays[f"{split}_truth.{a}"] for a in ("mu_q", "mu_c", "sigma_q")})
            if key in arrays
            else None
        )
    for t in ("train_queries", "test_queries", "model_table"):
        parts[t] = _normalise_table(pd.read_parquet(folder / f"{t}.parquet"))
    parts["models"] = tuple(meta["models"])
    parts["name"] = meta["name"]
    return parts, meta


# --------------------------------------------------------------------------------------------
# public API


def _resolve_folder(data_dir: str | os.PathLike, name: str | None) -> tuple[Path, str]:
    root = Path(data_dir).expanduser()
    if name is None:
        return root, root.resolve().name
    if (root / name).is_dir():
        return root / name, name
    if (root / TRAIN_FILE).is_file() or (root / TEST_FILE).is_file():
        return root, name
    return root / name, name


def _read_optional(path: Path) -> bytes | None:
    return path.read_bytes() if path.is_file() else None


def load_dars_dir(
    data_dir: str | os.PathLike,
    name: str | None = None,
    *,
    cache_dir: str | os.PathLike | None = None,
    use_cache: bool = True,
) -> DarsDataset:
    """Load one DARS dataset folder into a :class:`DarsDataset` with raw USD costs.

    Args:
        data_dir: the folder holding ``<name>/``, or the dataset folder itself.
        name: dataset folder name; defaults to the name of ``data_dir`` when ``data_dir`` is
            the dataset folder.
        cache_dir: cache root (default :func:`default_cache_dir`).
        use_cache: read and write the parse cache (False: always parse, write nothing).

    Returns:
        The dataset; ``source`` holds ``paths``, ``content_hash``, ``from_cache``,
        ``cache_path``, ``metadata``, ``extra_fields`` and ``n_cost_from_usage``.

    Raises:
        DataError: a missing/empty split file or any invalid row, naming file, line and field.
    """
    folder, name = _resolve_folder(data_dir, name)
    paths = {
        "train": folder / TRAIN_FILE,
        "test": folder / TEST_FILE,
        "metadata": folder / METADATA_FILE,
        "truth": folder / TRUTH_FILE,
    }
    if not folder.is_dir():
        raise DataError(folder, None, None, f"dataset folder not found (expected {TRAIN_FILE} and {TEST_FILE} in it)")
    files: dict[str, bytes | None] = {}
    for role, p in paths.items():
        files[role] = _read_optional(p)
        if role in ("train", "test") and files[role] is None:
            raise DataError(p, None, None, f"split '{role}' is empty: file not found")
    content_hash = _content_hash(name, files)
    source_paths = [str(p) for role, p in paths.items() if files[role] is not None]

    cache_folder = None
    if use_cache:
        cache_folder = _cache_folder(
            Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir(),
            name,
            content_hash,
        )
        try:
            hit = _read_cache(cache_folder, content_hash)
        except Exception as exc:  # a damaged cache entry is rebuilt, never trusted
            warnings.warn(f"ignoring unreadable cache {cache_folder}: {exc}", DataWarning, stacklevel=2)
            hit = None
        if hit is not None:
            parts, meta = hit
            for msg in meta.get("warnings", []):
                warnings.warn(msg, DataWarning, stacklevel=2)
            return DarsDataset(
                **parts,
                source={
                    "paths": source_paths,
                    "content_hash": content_hash,
                    "from_cache": True,
                    "cache_path": str(cache_folder),
                    "metadata": meta.get("metadata", {}),
                    "extra_fields": meta.get("extra_fields", []),
                    "n_cost_from_usage": meta.get("n_cost_from_usage", 0),
                    "loader_version": LOADER_VERSION,
                },
            )

    notes: list[str] = []
    ds, extra = _build_dataset(name, paths, files, notes)
    ds = replace(
        ds,
        source={
            "paths": source_paths,
            "content_hash": content_hash,
            "from_cache": False,
            "cache_path": None if cache_folder is None else str(cache_folder),
            **extra,
            "loader_version": LOADER_VERSION,
        },
    )
    if cache_folder is not None:
        try:
            _write_cache(cache_folder, ds, content_hash, {**extra, "warnings": notes})
        except Exception as exc:  # the cache is an optimisation; never fail the load on it
            notes.append(f"could not write the cache {cache_folder}: {exc}")
    for msg in notes:
        warnings.warn(msg, DataWarning, stacklevel=2)
    return ds


def _build_dataset(
    name: str, paths: dict[str, Path], files: dict[str, bytes | None], notes: list[str]
) -> tuple[DarsDataset, dict]:
    """Parse the files (already read) and assemble the dataset; append warnings to ``notes``."""
    meta = _parse_metadata(paths["metadata"], files["metadata"]) if files["metadata"] is not None else {}
    train = _parse_split(paths["train"], files["train"], "train")
    test = _parse_split(paths["test"], files["test"], "test")

    for rows in (train, test):
        if rows.dataset != name:
            notes.append(
                f"{_display_path(rows.path)}: rows say dataset {rows.dataset!r}, loaded as {name!r}"
            )
    if train.dataset != test.dataset:
        raise DataError(
            test.path, int(test.lines[0]), "dataset",
            f"value {test.dataset!r} differs from the train file's {train.dataset!r}",
        )  # fmt: skip
    if "dataset" in meta and meta["dataset"] != train.dataset:
        notes.append(f"{METADATA_FILE}: dataset {meta['dataset']!r} differs from the rows' {train.dataset!r}")

    # ---- pool
    train_models = pd.unique(train.model)
    in_train = pd.Index(train_models).get_indexer(test.model) >= 0
    if not in_train.all():
        i = _first(~in_train)
        raise test.err(
            i, "model", f"model {_show(test.model[i])} has no training observations ({TRAIN_FILE})"
        )
    if meta.get("models") is not None:
        models = list(meta["models"])
        known = pd.Index(models).get_indexer(train.model) >= 0
        if not known.all():
            i = _first(~known)
            raise train.err(i, "model", f"model {_show(train.model[i])} is not listed in {METADATA_FILE} 'models'")
        have = set(train_models)
        unused = [m for m in models if m not in have]
        if unused:
            notes.append(
                f"{METADATA_FILE}: {len(unused)} listed model(s) have no observations and are left "
                f"out of the pool: {', '.join(unused)}"
            )
            models = [m for m in models if m in have]
    else:
        models = sorted(str(m) for m in train_models)
    no_test = sorted(set(train_models) - set(pd.unique(test.model)))
    if no_test:
        notes.append(
            f"{TEST_FILE}: {len(no_test)} model(s) have no test observations: {', '.join(no_test)}"
        )
    n_m = len(models)
    pool = pd.Index(models)

    # ---- train block
    q_train, train_ids = pd.factorize(train.query_id)
    train_ids = np.asarray(train_ids, dtype=object)
    m_train = pool.get_indexer(train.model)
    _check_duplicates(train, _split_keys(train, q_train, m_train, len(train_ids), n_m))
    train_block = _dense_block(
        q_train, len(train_ids), m_train, n_m, train.variant, train.decode, train.score, train.cost
    )

    # ---- test blocks (one shared query order)
    q_test, test_ids = pd.factorize(test.query_id)
    test_ids = np.asarray(test_ids, dtype=object)
    m_test = pool.get_indexer(test.model)
    _check_duplicates(test, _split_keys(test, q_test, m_test, len(test_ids), n_m))
    blocks: dict[str, ObservationBlock] = {}
    for obs_type, attr in OBSERVATION_TYPES.items():
        sel = test.observation_type == obs_type
        if not sel.any():
            raise DataError(
                test.path, None, "observation_type", f"no {obs_type!r} rows: the test file needs both views"
            )
        blocks[attr] = _dense_block(
            q_test[sel], len(test_ids), m_test[sel], n_m,
            test.variant[sel], test.decode[sel], test.score[sel], test.cost[sel],
        )  # fmt: skip
        # SPEC §2 convention: rewrites have prompt_variant_id >= 0, the original query < 0.
        wrong = (test.variant[sel] < 0) if obs_type == "prompt_variation" else (test.variant[sel] >= 0)
        if wrong.any():
            sign = "< 0" if obs_type == "prompt_variation" else ">= 0"
            notes.append(
                f"{_display_path(test.path)}: {int(wrong.sum())} {obs_type} rows have "
                f"prompt_variant_id {sign} (expected {'>= 0' if sign == '< 0' else '< 0'}), "
                f"first on line {test.lines[np.flatnonzero(sel)[_first(wrong)]]}"
            )

    both = np.intersect1d(train_ids.astype(str), test_ids.astype(str))
    if both.size:
        notes.append(
            f"{both.size} query_id(s) appear in both the train and the test split, e.g. {both[0]!r}"
        )

    truth = {"train": None, "test": None}
    if files["truth"] is not None:
        truth = _parse_truth(
            paths["truth"], files["truth"], {"train": train_ids, "test": test_ids}, models, notes
        )

    ds = DarsDataset(
        name=name,
        models=tuple(models),
        train=train_block,
        test_rewrite=blocks["test_rewrite"],
        test_decoding=blocks["test_decoding"],
        train_queries=_query_table(train, q_train, train_ids, notes),
        test_queries=_query_table(test, q_test, test_ids, notes),
        model_table=_model_table(models, meta, notes),
        train_truth=truth["train"],
        test_truth=truth["test"],
    )
    if files["truth"] is None:
        notes.extend(check_release_facts(ds))
    extra = {
        "metadata": meta,
        "extra_fields": sorted(set(train.extra_fields) | set(test.extra_fields)),
        "n_cost_from_usage": train.n_cost_from_usage + test.n_cost_from_usage,
    }
    return ds, extra


def check_release_facts(dataset: DarsDataset) -> list[str]:
    """Compare a dataset named ``gpqa`` / ``math-500`` / ``drop-800`` with the SPEC §2 facts of
    the official release. Returns human-readable warnings (empty when everything matches or
    the name is not a release dataset); never raises."""
    name = dataset.name.lower()
    if name not in RELEASE_ROWS:
        return []
    out: list[str] = []
    pre = f"{dataset.name}: differs from the official release:"
    want_train, want_test = RELEASE_ROWS[name]
    n_train = dataset.train.n_observations
    n_test = dataset.test_rewrite.n_observations + dataset.test_decoding.n_observations
    if n_train != want_train:
        out.append(f"{pre} {n_train} train rows, release has {want_train}")
    if n_test != want_test:
        out.append(f"{pre} {n_test} test rows, release has {want_test}")
    if dataset.train.n_queries != RELEASE_TRAIN_QUERIES:
        out.append(f"{pre} {dataset.train.n_queries} training queries, release has {RELEASE_TRAIN_QUERIES}")
    if set(dataset.models) != set(RELEASE_MODELS):
        missing = sorted(set(RELEASE_MODELS) - set(dataset.models))
        extra = sorted(set(dataset.models) - set(RELEASE_MODELS))
        out.append(f"{pre} models missing {missing}, unexpected {extra}")
    for label, ids in (("prompt_variant_id", dataset.train.view_ids), ("decode_id", dataset.train.decode_ids)):
        if ids.tolist() != list(range(5)):
            out.append(f"{pre} train {label}s {ids.tolist()}, release has 0..4")
    per_pair = dataset.train.present.sum(axis=(2, 3))
    if (per_pair != 25).any():
        out.append(f"{pre} {int((per_pair != 25).sum())} train (query, model) pairs lack 25 observations")
    for view, block, sign_ok in (
        ("prompt_variation", dataset.test_rewrite, dataset.test_rewrite.view_ids >= 0),
        ("decoding_variation", dataset.test_decoding, dataset.test_decoding.view_ids < 0),
    ):
        per_pair = block.present.sum(axis=(2, 3))
        if (per_pair != 3).any():
            out.append(f"{pre} {int((per_pair != 3).sum())} test (query, model) pairs lack 3 {view} rows")
        if not sign_ok.all():
            out.append(f"{pre} {view} prompt_variant_ids {block.view_ids.tolist()} break the sign convention")
    if name in _BINARY_SCORE_DATASETS:
        scores = np.concatenate(
            [b.score[b.present] for b in (dataset.train, dataset.test_rewrite, dataset.test_decoding)]
        )
        n_frac = int(((scores != 0.0) & (scores != 1.0)).sum())
        if n_frac:
            out.append(f"{pre} {n_frac} scores are not 0 or 1 (release scores are binary)")
    return out


def read_dars_rows(path: str | os.PathLike) -> pd.DataFrame:
    """Every field of every row of one JSONL file as a flat DataFrame (nested objects such as
    ``usage`` become ``usage.cost`` ... columns), with the 1-based ``line`` of each row.

    For diagnostics on per-generation fields (``finish_reason``, ``parse_success``, tokens,
    unknown extras) that the dense blocks do not carry. Only JSON syntax is validated here.
    """
    path = Path(path)
    records, lines = _read_jsonl(path, path.read_bytes())
    frame = pd.json_normalize(records) if records else pd.DataFrame()
    frame.insert(0, "line", lines)
    return frame
