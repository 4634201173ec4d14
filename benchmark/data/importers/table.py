"""The generic importer: any long table (CSV, Parquet or JSONL) with a declared column mapping.

One row = one observation; ``--query --model --score --cost`` name the required columns and
``--variant --decode --text --task --split`` the optional ones. Rows repeating a (query, model,
variant) without a decode column become decodes 0, 1, ... in file order, so any multi-sample data
becomes DARS data. See docs/convert.md.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping

import numpy as np
import pandas as pd

from benchmark.data.importers.common import ConvertError
from benchmark.data.importers.longtable import OPTIONAL, REQUIRED, ImportReport, write_long_table

TABLE_SUFFIXES = (".csv", ".parquet", ".pq", ".jsonl", ".json", ".ndjson")


def read_table(path: str | Path) -> tuple[pd.DataFrame, np.ndarray, str]:
    """The table, the source position of each row (CSV/Parquet: 1-based data row; JSONL: line),
    and the unit of those positions."""
    path = Path(path)
    if path.is_dir():
        raise ConvertError(path, None, None, "is a folder, not a file")
    if not path.is_file():
        raise ConvertError(path, None, None, "file not found")
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            frame = pd.read_csv(path, dtype=object, keep_default_na=False, na_values=[""])
            return frame, np.arange(1, len(frame) + 1), "row"
        if suffix in (".parquet", ".pq"):
            frame = pd.read_parquet(path)
            return frame, np.arange(1, len(frame) + 1), "row"
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        raise ConvertError(path, None, None, f"cannot read the table: {' '.join(str(exc).split())[:200]}") from None
    if suffix in (".jsonl", ".json", ".ndjson"):
        records, lines = [], []
        with path.open("r", encoding="utf-8-sig") as fh:
            for lineno, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                except (json.JSONDecodeError, RecursionError) as exc:
                    raise ConvertError(path, lineno, None, f"malformed JSON ({getattr(exc, 'msg', 'nested too deeply')})",
                                       unit="line") from None
                if not isinstance(rec, dict):
                    raise ConvertError(path, lineno, None, f"expected a JSON object, got {type(rec).__name__}", unit="line")
                records.append(rec)
                lines.append(lineno)
        return pd.DataFrame.from_records(records), np.asarray(lines, dtype=np.int64), "line"
    raise ConvertError(path, None, None, f"unknown table type {suffix!r}; use one of {', '.join(TABLE_SUFFIXES)}")


def convert_table(
    src: str | Path,
    out: str | Path,
    columns: Mapping[str, str | None],
    *,
    name: str,
    test_fraction: float = 0.2,
    seed: int = 0,
) -> ImportReport:
    """Import a long table; ``columns`` maps ``query, model, score, cost`` (required) and
    ``variant, decode, text, task, split`` (optional) to the table's column names."""
    frame, row_of, unit = read_table(src)
    picked = {}
    for role in REQUIRED + OPTIONAL:
        col = columns.get(role)
        if col is None:
            if role in REQUIRED:
                raise ConvertError(src, None, f"--{role}", "is required (the column holding it)")
            continue
        if col not in frame.columns:
            raise ConvertError(src, None, col, f"column not found (--{role}); the table has columns "
                               f"{', '.join(map(str, frame.columns[:20]))}")
        picked[role] = frame[col]
    obs = pd.DataFrame(picked)
    cannot = []
    if "variant" not in picked:
        cannot.append("no rewrite (prompt variant) column: input-side variation is unknown")
    if "split" not in picked:
        cannot.append("no split column: the train/test split is made here")
    return write_long_table(obs, out, name, source_format="table", source_path=src, row_of=row_of, unit=unit,
                            test_fraction=test_fraction, seed=seed, cannot_know=cannot,
                            metadata_extra={"column_mapping": {k: v for k, v in columns.items() if v is not None}},
                            column_names={k: v for k, v in columns.items() if v is not None})
