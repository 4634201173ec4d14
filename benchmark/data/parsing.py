"""Parse and validate one split file (``.jsonl``, ``.jsonl.gz`` or ``.parquet``) into typed
columns, block by block (docs/data.md, "Loading at scale").

Each block of about :data:`BLOCK_BYTES` goes through a fast columnar path (``pyarrow.json``
with an explicit schema, checks vectorised over the columns). A block that the fast path cannot
take as valid (malformed JSON, a wrong type, a failed check) is re-scanned precisely, one
``json.loads`` per line, which either accepts it or raises the exact :class:`DataError` (file,
line, field) of the first bad row. Per-query text is kept once per query, never per row.
"""

from __future__ import annotations

import gzip
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json
import pyarrow.parquet as pq
from pandas.api.types import infer_dtype
from tqdm.auto import tqdm

from benchmark.data.dars_format import read_jsonl
from benchmark.data.errors import MISSING, DataError, show
from benchmark.data.schema import (
    KNOWN_FIELDS,
    MODEL_INFO_FIELDS,
    OBSERVATION_TYPES,
    REQUIRED_FIELDS,
    TEXT_FIELDS,
)

#: Bytes of JSONL per block (and the Parquet rows per batch are sized to match).
BLOCK_BYTES = 32 << 20
PARQUET_BATCH_ROWS = 1 << 17
_OBS_NAMES = tuple(OBSERVATION_TYPES)
#: Columns the JSON reader is told the type of; every other field is inferred.
_JSON_SCHEMA = pa.schema(
    [(f, pa.string()) for f in ("dataset", "split", "model", "observation_type")]
    + [(f, pa.float64()) for f in ("score", "cost", "prompt_variant_id", "decode_id")]
)


@dataclass
class _Rows:
    """Where the rows of a block are: the file and each row's 1-based line."""

    path: Path
    lines: np.ndarray

    def err(self, i: int, field: str | None, detail: str, **kw: Any) -> DataError:
        return DataError(self.path, int(self.lines[i]), field, detail, **kw)


@dataclass
class _FileContext:
    """What earlier blocks of the file fixed: the dataset name and the query-id type."""

    dataset: str | None = None
    dataset_line: int = 0
    qid_type: type | None = None
    qid_line: int = 0


@dataclass
class _Block:
    """Validated columns of one block; strings as (codes, values) with values in order of
    first appearance and code -1 for null."""

    lines: np.ndarray
    dataset: str
    qid: tuple[np.ndarray, list]
    qid_type: type
    model: tuple[np.ndarray, list]
    score: np.ndarray
    cost: np.ndarray
    variant: np.ndarray
    decode: np.ndarray
    obs: np.ndarray | None
    text: dict[str, tuple[np.ndarray, list]]
    fields: set[str]
    n_from_usage: int


@dataclass
class SplitColumns:
    """Validated columns of one split file (one entry per row; strings as codes).

    ``q`` indexes ``query_ids`` (order of first appearance), ``m`` indexes ``model_names``
    (order of first appearance); ``text[field]`` is ``(values per query, n varying)`` for each
    per-query text field with a non-null value.
    """

    path: Path
    split: str
    dataset: str
    lines: np.ndarray
    q: np.ndarray
    query_ids: np.ndarray
    m: np.ndarray
    model_names: np.ndarray
    score: np.ndarray
    cost: np.ndarray
    variant: np.ndarray
    decode: np.ndarray
    observation_type: np.ndarray | None
    text: dict[str, tuple[np.ndarray, int]]
    fields: frozenset[str]
    extra_fields: list[str]
    n_cost_from_usage: int

    @property
    def n_rows(self) -> int:
        return int(self.q.size)

    def err(self, i: int, field: str | None, detail: str, **kw: Any) -> DataError:
        return DataError(self.path, int(self.lines[i]), field, detail, **kw)


def first_index(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def _as_strings(rows: _Rows, col: list, field: str) -> np.ndarray:
    if infer_dtype(col, skipna=False) != "string":
        i = next(k for k, v in enumerate(col) if type(v) is not str)
        raise rows.err(i, field, f"value {show(col[i])} is not a string")
    arr = np.asarray(col, dtype=object)
    _reject_blank(rows, arr, field)
    return arr


def _reject_blank(rows: _Rows, values: np.ndarray, field: str) -> None:
    """An empty or whitespace-only name would silently become its own model / query."""
    blank = np.char.strip(values.astype(str)) == ""
    if blank.any():
        raise rows.err(first_index(blank), field, "value '' is empty")


def _as_numbers(rows: _Rows, col: list, field: str) -> np.ndarray:
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


def _as_integers(rows: _Rows, col: list, field: str) -> np.ndarray:
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


def _as_query_ids(rows: _Rows, col: list, ctx: _FileContext) -> np.ndarray:
    """Query ids may be strings or integers (not both in one file); returned as strings."""
    kind = infer_dtype(col, skipna=False)
    first_type = ctx.qid_type or type(col[0])
    first_line = ctx.qid_line if ctx.qid_type is not None else int(rows.lines[0])
    if kind == "string" and first_type is str:
        arr = np.asarray(col, dtype=object)
        _reject_blank(rows, arr, "query_id")
        return arr
    if kind == "integer" and first_type is int:
        return np.asarray([str(v) for v in col], dtype=object)
    for i, v in enumerate(col):
        if type(v) not in (str, int):
            raise rows.err(i, "query_id", f"value {show(v)} is not a string or an integer")
        if type(v) is not first_type:
            raise rows.err(
                i,
                "query_id",
                f"value {show(v)} is a {type(v).__name__} but line {first_line} has a "
                f"{first_type.__name__}; one file must use one id type",
            )
    raise AssertionError("unreachable")  # pragma: no cover


# --------------------------------------------------------------------------------------------
# the precise path: one json.loads per line, every check row by row (the reference semantics)


def _text_value(v: Any) -> str | None:
    """Text fields: strings as they are, null/absent as None, anything else JSON-encoded."""
    if v is None or v is MISSING or (isinstance(v, float) and np.isnan(v)):
        return None
    return v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)


def _factorize(values: Any) -> tuple[np.ndarray, list]:
    codes, uniques = pd.factorize(np.asarray(values, dtype=object), use_na_sentinel=True)
    return codes.astype(np.int32), list(uniques)


def _precise_block(
    path: Path, split: str, records: list[dict], lines: np.ndarray, ctx: _FileContext
) -> _Block:
    """Validate the rows of one block; raise :class:`DataError` on the first bad row."""
    rows = _Rows(path, lines)
    n = len(records)
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
    first, first_line = (ctx.dataset, ctx.dataset_line) if ctx.dataset is not None else (dataset[0], lines[0])
    bad = dataset != first
    if bad.any():
        i = first_index(bad)
        raise rows.err(
            i, "dataset",
            f"value {show(dataset[i])} differs from {show(first)} on line {first_line}; "
            "one file holds one dataset",
        )  # fmt: skip
    split_col = _as_strings(rows, cols["split"], "split")
    bad = split_col != split
    if bad.any():
        i = first_index(bad)
        raise rows.err(i, "split", f"value {show(split_col[i])} in the {split} file, expected {split!r}")

    query_id = _as_query_ids(rows, cols["query_id"], ctx)
    qid_type = ctx.qid_type or type(cols["query_id"][0])
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
    obs = None
    if split == "test":
        obs_type = _as_strings(rows, cols["observation_type"], "observation_type")
        codes = pd.Index(_OBS_NAMES).get_indexer(obs_type)
        bad = codes < 0
        if bad.any():
            i = first_index(bad)
            raise rows.err(
                i, "observation_type",
                f"value {show(obs_type[i])} is not one of {', '.join(map(repr, OBSERVATION_TYPES))}",
            )  # fmt: skip
        obs = codes.astype(np.int8)

    seen: set[str] = set().union(*map(dict.keys, records))
    text = {}
    for f in TEXT_FIELDS:
        if f in seen:
            text[f] = _factorize([_text_value(r.get(f)) for r in records])
    return _Block(
        lines=lines, dataset=str(dataset[0]), qid=_factorize(query_id), qid_type=qid_type,
        model=_factorize(model), score=score, cost=cost, variant=variant, decode=decode, obs=obs,
        text=text, fields=seen, n_from_usage=int(from_usage.sum()),
    )  # fmt: skip


# --------------------------------------------------------------------------------------------
# the fast path: Arrow columns, vectorised checks; None sends the block to the precise path


def _column(table: pa.Table, name: str) -> pa.Array | None:
    if name not in table.column_names:
        return None
    col = table.column(name)
    return col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col


def _encode(col: pa.Array) -> tuple[np.ndarray, list] | None:
    """(codes, distinct values in order of first appearance), code -1 for null; None for a
    type the fast path does not take."""
    t = col.type
    if pa.types.is_dictionary(t):
        codes = col.indices.to_numpy(zero_copy_only=False)
        if col.indices.null_count:
            codes = np.where(np.asarray(col.indices.is_valid()), codes, -1)
        codes = codes.astype(np.int64)
        # dictionaries may hold unused or repeated entries (a Parquet batch carries its row
        # group's whole dictionary): only the used entries become Python values, taken in order
        # of first appearance, so repeated values merge into their first appearance
        uniq, first = np.unique(codes[codes >= 0], return_index=True)
        used = uniq[np.argsort(first, kind="stable")]
        seen: dict = {}
        ids = [seen.setdefault(v, len(seen)) for v in col.dictionary.take(pa.array(used)).to_pylist()]
        lut = np.full(len(col.dictionary) + 1, -1, dtype=np.int64)  # lut[-1]: null stays -1
        lut[used] = ids
        return lut[codes].astype(np.int32), list(seen)
    if not (pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_integer(t)
            or pa.types.is_boolean(t) or pa.types.is_null(t)):  # fmt: skip
        return None
    enc = pc.dictionary_encode(col)
    codes = enc.indices.to_numpy(zero_copy_only=False)
    if enc.indices.null_count:
        codes = np.where(np.asarray(enc.indices.is_valid()), codes, -1)
    return codes.astype(np.int32), enc.dictionary.to_pylist()


def _string_codes(col: pa.Array | None) -> tuple[np.ndarray, list] | None:
    """Codes of a required string column: no null, no blank value; else None."""
    if col is None or col.null_count:
        return None
    t = col.type.value_type if pa.types.is_dictionary(col.type) else col.type
    if not (pa.types.is_string(t) or pa.types.is_large_string(t)):
        return None
    enc = _encode(col)
    if enc is None or any(not v.strip() for v in enc[1]):
        return None
    return enc


def _floats(col: pa.Array | None) -> np.ndarray | None:
    if col is None or not (pa.types.is_floating(col.type) or pa.types.is_integer(col.type)):
        return None
    if pa.types.is_integer(col.type) and col.null_count == 0:
        ints = col.to_numpy()
        if ints.size and np.abs(ints).max() >= 2**53:
            return None
    return col.cast(pa.float64()).to_numpy(zero_copy_only=False)  # nulls become NaN


def _integers(col: pa.Array | None) -> np.ndarray | None:
    if col is None or col.null_count:
        return None
    if pa.types.is_integer(col.type):
        return col.cast(pa.int64()).to_numpy()
    if not pa.types.is_floating(col.type):
        return None
    arr = col.to_numpy()
    if not (np.isfinite(arr) & (arr == np.round(arr)) & (np.abs(arr) < 2.0**53)).all():
        return None
    return arr.astype(np.int64)


def _fast_block(split: str, table: pa.Table, lines: np.ndarray, ctx: _FileContext) -> _Block | None:
    """The block's columns when every check passes on the Arrow columns; None otherwise."""
    dataset = _string_codes(_column(table, "dataset"))
    if dataset is None or len(dataset[1]) != 1 or ctx.dataset not in (None, dataset[1][0]):
        return None
    split_col = _string_codes(_column(table, "split"))
    if split_col is None or split_col[1] != [split]:
        return None
    qcol = _column(table, "query_id")
    if qcol is None or qcol.null_count:
        return None
    qt = qcol.type.value_type if pa.types.is_dictionary(qcol.type) else qcol.type
    if pa.types.is_integer(qt):
        qid_type: type = int
        enc = _encode(qcol)
        if enc is None:
            return None
        qid = (enc[0], [str(v) for v in enc[1]])
    else:
        qid_type = str
        qid = _string_codes(qcol)
    if qid is None or ctx.qid_type not in (None, qid_type):
        return None
    model = _string_codes(_column(table, "model"))
    score = _floats(_column(table, "score"))
    if model is None or score is None or not ((score >= 0.0) & (score <= 1.0)).all():
        return None  # NaN fails the range check too
    cost = _floats(_column(table, "cost"))
    if cost is None:
        return None
    from_usage = np.isnan(cost) & np.asarray(_column(table, "cost").is_null())
    n_from_usage = 0
    if from_usage.any():
        usage = _column(table, "usage")
        if usage is None or not pa.types.is_struct(usage.type) or usage.type.get_field_index("cost") < 0:
            return None
        uc = _floats(pc.struct_field(usage, "cost"))
        if uc is None or np.isnan(uc[from_usage]).any():
            return None
        cost = np.where(from_usage, uc, cost)
        n_from_usage = int(from_usage.sum())
    if not (np.isfinite(cost) & (cost >= 0.0)).all():
        return None
    variant = _integers(_column(table, "prompt_variant_id"))
    decode = _integers(_column(table, "decode_id"))
    if variant is None or decode is None:
        return None
    obs = None
    if split == "test":
        enc = _string_codes(_column(table, "observation_type"))
        if enc is None or not set(enc[1]) <= set(_OBS_NAMES):
            return None
        obs = np.asarray([_OBS_NAMES.index(v) for v in enc[1]], dtype=np.int8)[enc[0]]
    text = {}
    fields = set(table.column_names)
    for f in TEXT_FIELDS:
        col = _column(table, f)
        if col is None:
            continue
        enc = _encode(col)
        if enc is None:
            return None
        codes, values = enc
        if values and not isinstance(values[0], str):
            values = [json.dumps(v, ensure_ascii=False) for v in values]  # as _text_value does
            codes, values = _merge_equal(codes, values)
        text[f] = (codes, values)
    return _Block(
        lines=lines, dataset=dataset[1][0], qid=qid, qid_type=qid_type, model=model, score=score,
        cost=cost, variant=variant, decode=decode, obs=obs, text=text, fields=fields,
        n_from_usage=n_from_usage,
    )  # fmt: skip


def _merge_equal(codes: np.ndarray, values: list) -> tuple[np.ndarray, list]:
    """Give equal values one code (after a conversion that may map two values to one text)."""
    seen: dict = {}
    lut = np.array([seen.setdefault(v, len(seen)) for v in values] + [-1], dtype=np.int32)
    return lut[codes], list(seen)


# --------------------------------------------------------------------------------------------
# reading blocks


def _line_rows(chunk: bytes, first_line: int) -> np.ndarray | None:
    """Line numbers of the rows of a chunk when every non-blank line is one JSON object
    (``{`` first, ``}`` last, an optional CR); None when a line needs the precise path."""
    a = np.frombuffer(chunk, dtype=np.uint8)
    nl = np.flatnonzero(a == 10)
    starts = np.concatenate(([0], nl + 1))
    ends = np.concatenate((nl, [a.size]))
    ends = ends - ((ends > starts) & (a[np.maximum(ends - 1, 0)] == 13))
    full = ends > starts
    s, e = starts[full], ends[full]
    if s.size and not ((a[s] == 123).all() and (a[e - 1] == 125).all()):
        return None
    # Deep nesting crashes Arrow's recursive JSON parser: a line with many opening brackets
    # (an upper bound of its depth) goes to the precise path, which reports it. A line has at
    # most as many brackets as bytes, so blocks of short lines skip the count.
    if not s.size or (e - s).max() <= _MAX_OPEN_BRACKETS:
        return first_line + np.flatnonzero(full).astype(np.int64)
    opening = np.flatnonzero((a == 91) | (a == 123))
    if opening.size > _MAX_OPEN_BRACKETS:
        per_line = np.bincount(np.searchsorted(nl, opening), minlength=starts.size)
        if per_line.max() > _MAX_OPEN_BRACKETS:
            return None
    return first_line + np.flatnonzero(full).astype(np.int64)


_MAX_OPEN_BRACKETS = 500
_READ_OPTIONS = pa_json.ReadOptions(use_threads=True, block_size=4 << 20)
_PARSE_OPTIONS = pa_json.ParseOptions(
    explicit_schema=_JSON_SCHEMA, unexpected_field_behavior="infer", newlines_in_values=False
)


def _json_block(path: Path, split: str, chunk: bytes, first_line: int, ctx: _FileContext) -> _Block | None:
    lines = _line_rows(chunk, first_line)
    if lines is not None and lines.size:
        try:
            table = pa_json.read_json(io.BytesIO(chunk), _READ_OPTIONS, _PARSE_OPTIONS)
            table.validate(full=True)  # the JSON reader does not check UTF-8; this does
            table.column_names  # noqa: B018 - field names must decode too
        except (pa.ArrowInvalid, UnicodeDecodeError):
            table = None
        if table is not None and table.num_rows == lines.size:
            block = _fast_block(split, table, lines, ctx)
            if block is not None:
                return block
    records, lines = read_jsonl(path, chunk, first_line=first_line, encoding="utf-8")
    return _precise_block(path, split, records, lines, ctx) if records else None


def _open_error(path: Path, exc: BaseException) -> DataError:
    return DataError(path, None, None, f"cannot read the file: {exc}")


def _jsonl_chunks(path: Path, bar: tqdm) -> Iterator[tuple[bytes, int]]:
    """``(chunk, first line)``: whole lines, about :data:`BLOCK_BYTES` each; a leading BOM is
    dropped (as ``utf-8-sig`` decoding does)."""
    try:
        raw = open(path, "rb")
    except OSError as exc:
        raise _open_error(path, exc) from None
    with raw:
        fh = gzip.GzipFile(fileobj=raw, mode="rb") if path.name.endswith(".gz") else raw
        carry = b""
        line = 1
        first = True
        while True:
            try:
                data = fh.read(BLOCK_BYTES)
            except (OSError, EOFError, gzip.BadGzipFile) as exc:
                raise _open_error(path, exc) from None
            bar.update(raw.tell() - bar.n)
            if first:
                first = False
                if data.startswith(b"\xef\xbb\xbf"):
                    data = data[3:]
            if not data:
                break
            data = carry + data
            cut = data.rfind(b"\n") + 1
            if cut == 0:
                carry = data
                continue
            chunk, carry = data[:cut], data[cut:]
            yield chunk, line
            line += chunk.count(b"\n")
        if carry:
            yield carry, line


def _parquet_blocks(path: Path, split: str, ctx: _FileContext, bar: tqdm) -> Iterator[_Block]:
    try:
        pf = pq.ParquetFile(path)
        batches = pf.iter_batches(batch_size=PARQUET_BATCH_ROWS)
        row = 0
        for batch in batches:
            table = pa.Table.from_batches([batch])
            lines = np.arange(row + 1, row + 1 + table.num_rows, dtype=np.int64)
            row += table.num_rows
            bar.update(table.num_rows)
            if not table.num_rows:
                continue
            block = _fast_block(split, table, lines, ctx)
            yield block if block is not None else _precise_block(path, split, table.to_pylist(), lines, ctx)
    except (pa.ArrowException, OSError) as exc:
        raise _open_error(path, exc) from None


# --------------------------------------------------------------------------------------------
# putting blocks together


class _TextAgg:
    """Per query, the value of a text field at its row with the smallest prompt_variant_id
    (then the earliest row) and whether two rows disagree, built block by block."""

    def __init__(self) -> None:
        self.best_var = np.empty(0, dtype=np.int64)
        self.best_val = np.empty(0, dtype=object)
        self.ref = np.empty(0, dtype=object)
        self.has = np.empty(0, dtype=bool)
        self.varying = np.empty(0, dtype=bool)

    def grow(self, n_q: int) -> None:
        k = n_q - self.has.size
        if k > 0:
            self.best_var = np.concatenate([self.best_var, np.full(k, np.iinfo(np.int64).max)])
            self.best_val = np.concatenate([self.best_val, np.full(k, None, dtype=object)])
            self.ref = np.concatenate([self.ref, np.full(k, None, dtype=object)])
            self.has = np.concatenate([self.has, np.zeros(k, dtype=bool)])
            self.varying = np.concatenate([self.varying, np.zeros(k, dtype=bool)])

    def add(self, gq: np.ndarray, variant: np.ndarray, codes: np.ndarray, values: list) -> None:
        rows = np.flatnonzero(codes >= 0)
        if not rows.size:
            return
        qq, vv, cc = gq[rows], variant[rows], codes[rows]
        order = np.lexsort((rows, vv, qq))
        qs = qq[order]
        start = np.flatnonzero(np.concatenate(([True], qs[1:] != qs[:-1])))
        uq = qs[start]
        c_sorted = cc[order]
        lo = np.minimum.reduceat(c_sorted, start)
        hi = np.maximum.reduceat(c_sorted, start)
        self.varying[uq[lo != hi]] = True
        vals = np.empty(uq.size, dtype=object)
        vals[:] = [values[k] for k in lo]
        have = self.has[uq]
        differs = np.zeros(uq.size, dtype=bool)
        differs[have] = self.ref[uq[have]] != vals[have]
        self.varying[uq[differs]] = True
        self.ref[uq[~have]] = vals[~have]
        self.has[uq] = True
        cand = order[start]
        better = vv[cand] < self.best_var[uq]
        best = np.empty(uq.size, dtype=object)
        best[:] = [values[k] for k in cc[cand]]
        self.best_var[uq[better]] = vv[cand][better]
        self.best_val[uq[better]] = best[better]


class _Accumulator:
    def __init__(self, path: Path, split: str) -> None:
        self.path, self.split = path, split
        self.ctx = _FileContext()
        self.qid_index: dict[str, int] = {}
        self.model_index: dict[str, int] = {}
        self.parts: dict[str, list[np.ndarray]] = {
            k: [] for k in ("lines", "q", "m", "score", "cost", "variant", "decode", "obs")
        }
        self.text: dict[str, _TextAgg] = {}
        self.fields: set[str] = set()
        self.n_from_usage = 0

    def add(self, b: _Block) -> None:
        qlut = np.array([self.qid_index.setdefault(v, len(self.qid_index)) for v in b.qid[1]], dtype=np.int64)
        mlut = np.array([self.model_index.setdefault(v, len(self.model_index)) for v in b.model[1]], dtype=np.int64)
        gq = qlut[b.qid[0]]
        if self.ctx.dataset is None:
            self.ctx.dataset, self.ctx.dataset_line = b.dataset, int(b.lines[0])
            self.ctx.qid_type, self.ctx.qid_line = b.qid_type, int(b.lines[0])
        for k, v in (("lines", b.lines), ("q", gq), ("m", mlut[b.model[0]]), ("score", b.score),
                     ("cost", b.cost), ("variant", b.variant), ("decode", b.decode), ("obs", b.obs)):  # fmt: skip
            if v is not None:
                self.parts[k].append(v)
        for f, (codes, values) in b.text.items():
            agg = self.text.setdefault(f, _TextAgg())
            agg.grow(len(self.qid_index))
            agg.add(gq, b.variant, codes, values)
        self.fields |= b.fields
        self.n_from_usage += b.n_from_usage

    def result(self) -> SplitColumns:
        cat = {k: np.concatenate(v) if v else None for k, v in self.parts.items()}
        n_q = len(self.qid_index)
        text = {}
        for f, agg in self.text.items():
            agg.grow(n_q)
            if agg.has.any():
                text[f] = (agg.best_val, int(agg.varying.sum()))
        return SplitColumns(
            path=self.path, split=self.split, dataset=str(self.ctx.dataset), lines=cat["lines"],
            q=cat["q"], query_ids=np.asarray(list(self.qid_index), dtype=object),
            m=cat["m"], model_names=np.asarray(list(self.model_index), dtype=object),
            score=cat["score"], cost=cat["cost"], variant=cat["variant"], decode=cat["decode"],
            observation_type=cat["obs"], text=text, fields=frozenset(self.fields),
            extra_fields=sorted(self.fields - KNOWN_FIELDS), n_cost_from_usage=self.n_from_usage,
        )  # fmt: skip


def parse_split(path: Path, split: str) -> SplitColumns:
    """Parse and validate one split file (``.jsonl``, ``.jsonl.gz`` or ``.parquet``).

    Raises :class:`DataError` naming file, line and field on the first bad row (the first bad
    block, then the first bad row of the checks in their documented order).
    """
    path = Path(path)
    acc = _Accumulator(path, split)
    parquet = path.name.endswith(".parquet")
    try:
        size = pq.ParquetFile(path).metadata.num_rows if parquet else path.stat().st_size
    except (pa.ArrowException, OSError) as exc:
        raise _open_error(path, exc) from None
    with tqdm(total=size, unit="rows" if parquet else "B", unit_scale=True, desc=f"reading {path.name}",
              disable=None, delay=2.0, leave=False) as bar:  # fmt: skip
        if parquet:
            for block in _parquet_blocks(path, split, acc.ctx, bar):
                acc.add(block)
        else:
            for chunk, line in _jsonl_chunks(path, bar):
                block = _json_block(path, split, chunk, line, acc.ctx)
                if block is not None:
                    acc.add(block)
    if not acc.parts["q"]:
        raise DataError(path, None, None, f"split '{split}' is empty: the file has no rows")
    return acc.result()


# --------------------------------------------------------------------------------------------
# metadata.json


def parse_metadata(path: Path, data: bytes) -> dict:
    """Validate ``metadata.json`` (every key optional; see docs/data.md)."""
    try:
        meta = json.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        line = getattr(exc, "lineno", None)
        raise DataError(path, line, None, f"malformed JSON: {exc}") from None
    except RecursionError:
        raise DataError(path, None, None, "malformed JSON: nested too deeply") from None
    except ValueError as exc:  # e.g. an integer literal longer than Python converts
        raise DataError(path, None, None, f"malformed JSON: {exc}") from None
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

