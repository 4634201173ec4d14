"""RouterBench (``withmartian/routerbench``) in and out of the DARS schema.

The published files ``routerbench_0shot.pkl`` and ``routerbench_5shot.pkl`` are pickled pandas
DataFrames in a wide layout: one row per prompt with ``sample_id``, ``prompt``, ``eval_name``,
``oracle_model_to_route_to`` and, per model ``M`` (11 models), ``M`` (the score, 0/1 for most
evals), ``M|model_response`` and ``M|total_cost`` (USD per call). The importer also reads the same
layout from Parquet or CSV, and the exporter writes it. See docs/convert.md.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmark.data.dars_format import TEST_FILE, TRAIN_FILE, read_dars_rows
from benchmark.data.dataset import DarsDataset
from benchmark.data.importers.common import ConvertError
from benchmark.data.importers.longtable import ImportReport, write_long_table
from benchmark.data.importers.table import read_table
from benchmark.data.io import atomic_write_bytes, atomic_write_frame

ID_COLUMNS = ("sample_id", "prompt", "eval_name")
COST_SUFFIX = "|total_cost"
RESPONSE_SUFFIX = "|model_response"
ORACLE_COLUMN = "oracle_model_to_route_to"


def read_routerbench(path: str | Path) -> tuple[pd.DataFrame, np.ndarray, str]:
    """The wide table of a RouterBench file (``.pkl`` as published; ``.parquet`` / ``.csv``)."""
    path = Path(path)
    if path.suffix.lower() in (".pkl", ".pickle"):
        if not path.is_file():
            raise ConvertError(path, None, None, "is a folder, not a file" if path.is_dir() else "file not found")
        try:  # a pickle runs code: read only files you trust (the published RouterBench files)
            frame = pd.read_pickle(path)
        except (pickle.UnpicklingError, EOFError, ValueError, AttributeError, ImportError, OSError) as exc:
            raise ConvertError(path, None, None, f"cannot unpickle: {' '.join(str(exc).split())[:200]}") from None
        if not isinstance(frame, pd.DataFrame):
            raise ConvertError(path, None, None, f"expected a pickled pandas DataFrame, got {type(frame).__name__}")
        return frame.reset_index(drop=True), np.arange(1, len(frame) + 1), "row"
    return read_table(path)


def routerbench_models(frame: pd.DataFrame, path: str | Path) -> list[str]:
    """Models in column order: every ``M`` that has an ``M|total_cost`` column."""
    missing = [c for c in ID_COLUMNS if c not in frame.columns]
    if missing:
        raise ConvertError(path, None, missing[0], f"column not found; a RouterBench table has {', '.join(ID_COLUMNS)}, "
                           "then per model M the columns M, M|model_response, M|total_cost")
    models = [str(c)[: -len(COST_SUFFIX)] for c in frame.columns if str(c).endswith(COST_SUFFIX)]
    if not models:
        raise ConvertError(path, None, None, "no 'M|total_cost' column: not the RouterBench wide layout")
    for m in models:
        if m not in frame.columns:
            raise ConvertError(path, None, m, f"column not found: {m}|total_cost has no score column {m!r}")
    return models


def _prompt_text(v: Any) -> Any:
    # A few RouterBench evals (multi-turn) store the prompt as a list of turns.
    if isinstance(v, (list, tuple, np.ndarray)):
        return "\n\n".join(str(x) for x in v)
    return v


def convert_routerbench(
    src: str | Path,
    out: str | Path,
    *,
    name: str = "routerbench",
    test_fraction: float = 0.2,
    seed: int = 0,
    responses: bool = True,
) -> ImportReport:
    """RouterBench wide table -> DARS. Real costs (``M|total_cost``) become ``cost``; the split is
    made here (seeded, stratified by ``eval_name``) unless the table has a ``split`` column."""
    frame, row_of, unit = read_routerbench(src)
    models = routerbench_models(frame, src)
    n, k = len(frame), len(models)
    obs = pd.DataFrame({
        "query": np.tile(frame["sample_id"].to_numpy(dtype=object), k),
        "model": np.repeat(np.asarray(models, dtype=object), n),
        "score": np.concatenate([frame[m].to_numpy(dtype=object) for m in models]),
        "cost": np.concatenate([frame[m + COST_SUFFIX].to_numpy(dtype=object) for m in models]),
        "text": np.tile(frame["prompt"].map(_prompt_text).to_numpy(dtype=object), k),
        "task": np.tile(frame["eval_name"].astype(str).to_numpy(dtype=object), k),
    })
    if responses and all(m + RESPONSE_SUFFIX in frame.columns for m in models):
        obs["output"] = np.concatenate([frame[m + RESPONSE_SUFFIX].to_numpy(dtype=object) for m in models])
    if "split" in frame.columns:
        obs["split"] = np.tile(frame["split"].to_numpy(dtype=object), k)
    cannot = ["one observation per (prompt, model): no rewrites and no repeated decodes, so rU == dU and every "
              "DARS mode reduces to single-shot supervision"]
    if "split" not in frame.columns:
        cannot.append("RouterBench publishes no train/test split: it is made here")
    return write_long_table(obs, out, name, source_format="routerbench", source_path=src, row_of=np.tile(row_of, k),
                            unit=unit, test_fraction=test_fraction, seed=seed, cannot_know=cannot,
                            metadata_extra={"cost_unit": "USD per call (RouterBench total_cost)"}, repeats_are_decodes=False,
                            column_names={"query": "sample_id", "text": "prompt", "task": "eval_name",
                                          "score": np.repeat(np.asarray(models, dtype=object), n),
                                          "cost": np.repeat(np.asarray([m + COST_SUFFIX for m in models], dtype=object), n)})


def query_tasks(folder: Path) -> dict[str, str]:
    """``task_type`` of each query id, read from the dataset's row files (absent: no entry)."""
    tasks: dict[str, str] = {}
    for f in (folder / TRAIN_FILE, folder / TEST_FILE):
        rows = read_dars_rows(f)
        if "task_type" in rows.columns:
            first = rows.drop_duplicates("query_id")
            tasks.update({str(q): str(t) for q, t in zip(first["query_id"], first["task_type"]) if isinstance(t, str)})
    return tasks


def export_routerbench(ds: DarsDataset, out: str | Path, *, variant: int | None = None, decode: int | None = None,
                       tasks: dict[str, str] | None = None) -> Path:
    """Write a DARS dataset in RouterBench's wide layout (one row per query; ``.pkl``, ``.parquet``
    or ``.csv`` by the suffix of ``out``), plus a ``split`` column.

    RouterBench holds one observation per (prompt, model): the exported one is, per block, the
    view ``variant`` and decode ``decode`` (default: the first of each axis; test queries use the
    rewrite view). A single-shot dataset round-trips exactly; for a multi-draw dataset this is
    one single-shot draw.
    """
    out = Path(out)
    parts = []
    for split, block, queries in (("train", ds.train, ds.train_queries), ("test", ds.test_rewrite, ds.test_queries)):
        v = 0 if variant is None else int(np.flatnonzero(block.view_ids == variant)[0]) if variant in block.view_ids else None
        d = 0 if decode is None else int(np.flatnonzero(block.decode_ids == decode)[0]) if decode in block.decode_ids else None
        if v is None or d is None:
            raise ConvertError(out, None, "--variant/--decode", f"the {split} block has no view {variant} / decode {decode}")
        score, cost, present = block.score[:, :, v, d], block.cost[:, :, v, d], block.present[:, :, v, d]
        if not present.all():
            q, m = np.argwhere(~present)[0]
            raise ConvertError(out, None, None, f"{split}: query {_query_ids(queries)[q]!r} has "
                               f"no observation of {ds.models[m]} at that view/decode (RouterBench needs every pair)")
        ids = _query_ids(queries)
        eval_name = [(tasks or {}).get(q, ds.name) for q in ids]
        frame = pd.DataFrame({"sample_id": ids, "prompt": _query_texts(queries), "eval_name": eval_name})
        # RouterBench's oracle column: the best-scoring model, the cheaper one on a tie.
        cheap_first = np.argsort(cost, axis=1, kind="stable")
        order = cheap_first[np.arange(len(score)), np.argmax(np.take_along_axis(score, cheap_first, axis=1), axis=1)]
        frame[ORACLE_COLUMN] = [ds.models[i] for i in order]
        for j, m in enumerate(ds.models):
            frame[m] = score[:, j]
            frame[m + RESPONSE_SUFFIX] = ""
            frame[m + COST_SUFFIX] = cost[:, j]
        frame["split"] = split
        parts.append(frame)
    wide = pd.concat(parts, ignore_index=True)
    suffix = out.suffix.lower()
    if suffix in (".pkl", ".pickle"):
        atomic_write_bytes(out, pickle.dumps(wide, protocol=4))
    elif suffix in (".parquet", ".csv"):
        atomic_write_frame(out, wide)
    else:
        raise ConvertError(out, None, None, "the output name must end in .pkl, .parquet or .csv")
    return out


def _query_ids(queries: Any) -> list[str]:
    return [str(x) for x in (queries["query_id"] if "query_id" in getattr(queries, "columns", []) else queries.index)]


def _query_texts(queries: Any) -> list[str]:
    for col in ("original_question", "question", "input_question"):
        if col in getattr(queries, "columns", []):
            return ["" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v) for v in queries[col]]
    return [""] * len(queries)
