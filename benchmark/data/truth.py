"""Read ``truth.csv`` (the exact per-pair signals of simulated data) into ``[Q, M]`` tables
(docs/data.md, "truth.csv")."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from benchmark.data.dars_format import TRUTH_FILE
from benchmark.data.dataset import TruthTable
from benchmark.data.errors import DataError
from benchmark.data.parsing import first_index
from benchmark.data.schema import TRUTH_COLUMNS

def parse_truth(
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
    for col in TRUTH_COLUMNS:
        if col not in frame.columns:
            raise DataError(path, 1, col, "column is missing from the header")
    lines = np.arange(len(frame), dtype=np.int64) + 2  # header is line 1
    values = {}
    for col in ("mu_q", "mu_c", "sigma_q"):
        raw = frame[col].to_numpy(dtype=object)
        num = pd.to_numeric(frame[col], errors="coerce").to_numpy(dtype=np.float64)
        bad = ~np.isfinite(num)
        if bad.any():
            i = first_index(bad)
            raise DataError(path, lines[i], col, f"value {raw[i]!r} is not a finite number")
        lo_hi = {"mu_q": (0.0, 1.0), "mu_c": (0.0, np.inf), "sigma_q": (0.0, np.inf)}[col]
        bad = (num < lo_hi[0]) | (num > lo_hi[1])
        if bad.any():
            i = first_index(bad)
            rng = "[0, 1]" if col == "mu_q" else ">= 0"
            raise DataError(path, lines[i], col, f"value {raw[i]!r} is outside {rng}")
        values[col] = num
    split = frame["split"].to_numpy(dtype=object)
    bad = ~np.isin(split, np.asarray(["train", "test"], dtype=object))
    if bad.any():
        i = first_index(bad)
        raise DataError(path, lines[i], "split", f"value {split[i]!r} is not 'train' or 'test'")
    model_idx = pd.Index(list(models)).get_indexer(frame["model"].to_numpy(dtype=object))
    bad = model_idx < 0
    if bad.any():
        i = first_index(bad)
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
            i = sel[first_index(bad)]
            raise DataError(path, lines[i], "query_id", f"query {qid[i]!r} is not in the {name} split")
        flat = q * n_m + model_idx[sel]
        order = np.argsort(flat, kind="stable")
        same = flat[order[1:]] == flat[order[:-1]]
        if same.any():
            k = first_index(same)
            i, j = sel[order[k + 1]], sel[order[k]]
            raise DataError(
                path, lines[i], "query_id, model",
                f"duplicate pair ({qid[i]!r}, {frame['model'].iat[i]!r}); first on line {lines[j]}",
                other_line=int(lines[j]),
            )  # fmt: skip
        if flat.size != len(ids) * n_m:
            covered = np.zeros(len(ids) * n_m, dtype=bool)
            covered[flat] = True
            miss = first_index(~covered)
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

