"""The DARS file format: file names, the one writer every producer uses, and the row reader
(docs/data.md).

The simulator, the converters and the collector all write datasets through
:func:`write_dars_jsonl`, so a schema change is made here once.
"""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from benchmark.data.errors import DataError
from benchmark.data.io import (
    atomic_write_bytes,
    atomic_write_frame,
    atomic_write_json,
    atomic_write_text,
    atomic_write_with,
    json_default,
)
from benchmark.data.schema import TRUTH_COLUMNS

TRAIN_FILE = "train_scored_generations.jsonl"
TEST_FILE = "test_scored_generations.jsonl"
METADATA_FILE = "metadata.json"
TRUTH_FILE = "truth.csv"


def _parse_long_int(text: str) -> int | float:
    """Integers of more than Python's 4300 digits become floats (inf past 1e308), as the
    columnar reader reads them; a checked field then reports the value, never a traceback."""
    return int(text) if len(text) <= 4000 else float(text)


def read_jsonl(
    path: Path, data: bytes, first_line: int = 1, encoding: str = "utf-8-sig"
) -> tuple[list[dict], np.ndarray]:
    """``json.loads`` every non-blank line; return the objects and their 1-based line numbers
    (``data`` starts at line ``first_line``).

    Whitespace-only lines are ignored anywhere in the file. Lines are split on ``\\n`` only
    (JSON strings may legally contain U+2028, which ``str.splitlines`` would split on).
    """
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        line = first_line + data[: exc.start].count(b"\n")
        raise DataError(path, line, None, f"not valid UTF-8 ({exc.reason})") from None
    loads = json.loads
    records: list[dict] = []
    lines: list[int] = []
    for lineno, line in enumerate(text.split("\n"), first_line):
        if not line or line.isspace():
            continue
        try:
            rec = loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(
                path, lineno, None, f"malformed JSON: {exc.msg} (column {exc.colno})"
            ) from None
        except RecursionError:
            raise DataError(path, lineno, None, "malformed JSON: nested too deeply") from None
        except ValueError:  # an integer literal longer than Python converts: read it as a float
            rec = loads(line, parse_int=_parse_long_int)
        if type(rec) is not dict:
            raise DataError(
                path, lineno, None, f"expected a JSON object, got {type(rec).__name__}"
            )
        records.append(rec)
        lines.append(lineno)
    return records, np.asarray(lines, dtype=np.int64)


def _records(rows: Sequence[dict] | pd.DataFrame) -> list[dict]:
    if isinstance(rows, pd.DataFrame):
        # A DataFrame cannot say "field absent"; NaN / None cells are written as absent fields.
        out = []
        for rec in rows.to_dict("records"):
            out.append({k: v for k, v in rec.items() if not (v is None or (isinstance(v, float) and np.isnan(v)))})
        return out
    return list(rows)


def _jsonl(rows: Sequence[dict] | pd.DataFrame) -> str:
    dumps = json.JSONEncoder(ensure_ascii=False, allow_nan=False, default=json_default).encode
    return "".join(dumps(r) + "\n" for r in _records(rows))


def write_dars_jsonl(
    rows_train: Sequence[dict] | pd.DataFrame,
    rows_test: Sequence[dict] | pd.DataFrame,
    out_dir: str | os.PathLike,
    name: str,
    metadata: dict | None = None,
    truth: pd.DataFrame | None = None,
) -> Path:
    """Write a dataset folder ``<out_dir>/<name>/`` that :func:`load_dars_dir` reads back.

    Rows are written as given, one strict JSON object per line (NaN / inf raise
    ``ValueError``); DataFrame cells that are NaN / None become absent fields. ``metadata``
    goes to ``metadata.json`` and ``truth`` (columns ``split, query_id, model, mu_q, mu_c,
    sigma_q``) to ``truth.csv``. Every file is written atomically. Returns the folder.
    """
    folder = Path(out_dir) / name
    atomic_write_text(folder / TRAIN_FILE, _jsonl(rows_train))
    atomic_write_text(folder / TEST_FILE, _jsonl(rows_test))
    write_dars_side_files(folder, metadata, truth)
    return folder


def write_dars_side_files(
    folder: Path, metadata: dict | None, truth: pd.DataFrame | Sequence[bytes] | None
) -> None:
    """``metadata.json`` and ``truth.csv`` of a dataset folder (each atomically, where given).

    ``truth`` is a frame with :data:`TRUTH_COLUMNS`, or the file's rows already formatted in
    parts by :func:`truth_csv_rows` (so two processes can each format their own split's rows):
    the same bytes either way."""
    if metadata is not None:
        atomic_write_json(folder / METADATA_FILE, metadata)
    if truth is None:
        return
    if isinstance(truth, pd.DataFrame):
        atomic_write_frame(folder / TRUTH_FILE, _truth_columns(truth))
    else:
        atomic_write_bytes(folder / TRUTH_FILE, ",".join(TRUTH_COLUMNS).encode() + b"\n" + b"".join(truth))


def _truth_columns(truth: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in TRUTH_COLUMNS if c not in truth.columns]
    if missing:
        raise ValueError(f"truth frame lacks columns {missing}")
    return truth.loc[:, list(TRUTH_COLUMNS)]


def truth_csv_rows(truth: pd.DataFrame) -> bytes:
    """The ``truth.csv`` lines of these rows, without the header, exactly as
    :func:`write_dars_side_files` writes them (pandas formats each row on its own)."""
    return _truth_columns(truth).to_csv(index=False, header=False).encode()


def read_dars_rows(path: str | os.PathLike) -> pd.DataFrame:
    """Every field of every row of one split file (``.jsonl``, ``.jsonl.gz`` or ``.parquet``) as a
    flat DataFrame (nested objects such as ``usage`` become ``usage.cost`` ... columns), with the
    1-based ``line`` (Parquet: row) of each row.

    For diagnostics on per-generation fields (``finish_reason``, ``parse_success``, tokens,
    unknown extras) that the dense blocks do not carry. Only the file syntax is validated here.
    """
    path = Path(path)
    if path.name.endswith(".parquet"):
        records = pq.read_table(path).to_pylist()
        lines = np.arange(1, len(records) + 1, dtype=np.int64)
    else:
        data = path.read_bytes()
        if path.name.endswith(".gz"):
            data = gzip.decompress(data)
        records, lines = read_jsonl(path, data)
    frame = pd.json_normalize(records) if records else pd.DataFrame()
    frame.insert(0, "line", lines)
    return frame


# --------------------------------------------------------------------------------------------
# columnar writing (Arrow tables / record batches -> JSONL or Parquet)

#: File formats of a split file, by suffix (the loader reads any one of them).
SPLIT_SUFFIXES: tuple[str, ...] = (".jsonl", ".jsonl.gz", ".parquet")


def split_file_name(split: str, fmt: str = "jsonl") -> str:
    """``<split>_scored_generations.<fmt>`` for ``fmt`` in ``jsonl``, ``jsonl.gz``, ``parquet``."""
    if "." + fmt not in SPLIT_SUFFIXES:
        raise ValueError(f"unknown DARS file format {fmt!r}; choose from jsonl, jsonl.gz, parquet")
    return f"{split}_scored_generations.{fmt}"


_NEEDS_ESCAPE = '["\\\\\\x00-\\x1f\\x7f-\\x{10ffff}]'


def _json_strings(arr: pa.Array) -> pa.Array:
    """JSON string literals of a string array, as ``json.dumps`` writes them (ASCII only;
    Python escapes only the values that need it)."""
    arr = arr.cast(pa.string())
    quoted = pc.binary_join_element_wise('"', arr, '"', "")
    mask = pc.fill_null(pc.match_substring_regex(arr, _NEEDS_ESCAPE), False)
    if pc.any(mask).as_py():
        dumps = json.dumps
        escaped = pa.array([dumps(v) for v in arr.filter(mask).to_pylist()], type=pa.string())
        quoted = pc.replace_with_mask(quoted, mask, escaped)
    return quoted


def _json_values(arr: pa.Array) -> pa.Array:
    """The JSON text of every value of a column (``null`` for nulls); NaN / inf raise."""
    t = arr.type
    if pa.types.is_dictionary(t):
        words = _json_values(arr.dictionary)
        out = words.take(arr.indices)
    elif pa.types.is_string(t) or pa.types.is_large_string(t):
        out = _json_strings(arr)
    elif pa.types.is_floating(t):
        values = arr.cast(pa.float64()).to_numpy(zero_copy_only=False)
        valid = np.asarray(arr.is_valid())
        if not np.isfinite(values[valid]).all():
            raise ValueError("NaN and infinite values cannot be written as strict JSON")
        # Python's repr (shortest round trip), computed once per distinct value
        uniq, inverse = np.unique(np.where(valid, values, 0.0), return_inverse=True)
        out = pa.array([repr(float(x)) for x in uniq], type=pa.string()).take(pa.array(inverse.ravel()))
        if not valid.all():
            out = pc.if_else(pa.array(valid), out, pa.scalar(None, pa.string()))
    elif pa.types.is_integer(t) or pa.types.is_boolean(t):
        out = arr.cast(pa.string())
    elif pa.types.is_null(t):
        return pa.array(["null"] * len(arr), type=pa.string())
    elif pa.types.is_struct(t):
        pieces: list = []
        for k in range(t.num_fields):
            sep = "{" if k == 0 else ", "
            pieces += [sep + json.dumps(t.field(k).name) + ": ", _json_values(arr.field(k))]
        out = pc.binary_join_element_wise(*pieces, "}", "") if pieces else pa.array(["{}"] * len(arr))
        if arr.null_count:
            out = pc.if_else(arr.is_valid(), out, pa.scalar(None, pa.string()))
    else:  # lists and other nested values: rare, encoded value by value
        dumps = json.JSONEncoder(ensure_ascii=False, allow_nan=False, default=json_default).encode
        out = pa.array([None if v is None else dumps(v) for v in arr.to_pylist()], type=pa.string())
    return pc.fill_null(out, "null")


def _jsonl_bytes(batch: pa.RecordBatch) -> memoryview:
    """One JSON object per row, in column order, as the bytes of a JSONL chunk."""
    pieces: list = []
    for k, name in enumerate(batch.schema.names):
        pieces += [("{" if k == 0 else ", ") + json.dumps(name, ensure_ascii=False) + ": "]
        pieces.append(_json_values(batch.column(k)))
    lines = pc.binary_join_element_wise(*pieces, "}\n", "").cast(pa.large_string())
    if isinstance(lines, pa.ChunkedArray):
        lines = lines.combine_chunks()
    offsets = np.frombuffer(lines.buffers()[1], dtype=np.int64)
    start, end = int(offsets[lines.offset]), int(offsets[lines.offset + len(lines)])
    return memoryview(lines.buffers()[2])[start:end]


def write_split_batches(
    path: str | os.PathLike, batches: Iterable[pa.RecordBatch], fmt: str = "jsonl"
) -> Path:
    """Write record batches to one split file, atomically: JSONL (optionally gzip) encoded
    column by column with Arrow compute, or Parquet. Null cells are written as JSON ``null``."""

    def counted(bar: tqdm) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            yield batch
            bar.update(batch.num_rows)

    def write(tmp: str) -> None:
        with tqdm(unit="rows", unit_scale=True, desc=f"writing {Path(path).name}", disable=None,
                  delay=2.0, leave=False) as bar:  # fmt: skip
            if fmt == "parquet":
                writer = None
                try:
                    for batch in counted(bar):
                        if writer is None:
                            writer = pq.ParquetWriter(tmp, batch.schema)
                        writer.write_batch(batch)
                finally:
                    if writer is not None:
                        writer.close()
                if writer is None:
                    raise ValueError(f"{path}: no rows to write")
                return
            with open(tmp, "wb") as raw:
                # gzip header without file name or time stamp: the same rows give the same bytes
                fh = gzip.GzipFile(filename="", fileobj=raw, mode="wb", mtime=0) if fmt == "jsonl.gz" else raw
                for batch in counted(bar):
                    if batch.num_rows:
                        fh.write(_jsonl_bytes(batch))
                if fh is not raw:
                    fh.close()

    split_file_name("train", fmt)  # validates fmt
    return atomic_write_with(path, write)


def write_dars_tables(
    batches_train: Iterable[pa.RecordBatch],
    batches_test: Iterable[pa.RecordBatch],
    out_dir: str | os.PathLike,
    name: str,
    metadata: dict | None = None,
    truth: pd.DataFrame | None = None,
    fmt: str = "jsonl",
) -> Path:
    """The columnar twin of :func:`write_dars_jsonl`: splits given as Arrow record batches,
    written as ``jsonl``, ``jsonl.gz`` or ``parquet``. Returns ``<out_dir>/<name>``."""
    folder = Path(out_dir) / name
    write_split_batches(folder / split_file_name("train", fmt), batches_train, fmt)
    write_split_batches(folder / split_file_name("test", fmt), batches_test, fmt)
    write_dars_side_files(folder, metadata, truth)
    return folder
