"""The DARS file format: file names, and the one writer every producer uses (docs/data.md).

The loader (:mod:`benchmark.data.loader`), the simulator, the converters and the collector all
write datasets through :func:`write_dars_jsonl`, so a schema change is made here once.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from benchmark.data.io import atomic_write_frame, atomic_write_json, atomic_write_text, json_default

TRAIN_FILE = "train_scored_generations.jsonl"
TEST_FILE = "test_scored_generations.jsonl"
METADATA_FILE = "metadata.json"
TRUTH_FILE = "truth.csv"
#: Columns of ``truth.csv`` (simulated data: the exact per-pair signals).
TRUTH_COLUMNS = ("split", "query_id", "model", "mu_q", "mu_c", "sigma_q")


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
    if metadata is not None:
        atomic_write_json(folder / METADATA_FILE, metadata)
    if truth is not None:
        missing = [c for c in TRUTH_COLUMNS if c not in truth.columns]
        if missing:
            raise ValueError(f"truth frame lacks columns {missing}")
        atomic_write_frame(folder / TRUTH_FILE, truth.loc[:, list(TRUTH_COLUMNS)])
    return folder
