"""From validated columns to the dense ``[Q, M, V, S]`` blocks and the query / model tables
(docs/data.md, "From rows to blocks" and "Query tables")."""

from __future__ import annotations

from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd

from benchmark.data.dars_format import METADATA_FILE
from benchmark.data.dataset import ObservationBlock
from benchmark.data.errors import display_path, show
from benchmark.data.parsing import SplitColumns
from benchmark.data.schema import (
    CONTEXT_CHARS,
    CONTEXT_FIELDS,
    GOLD_FIELDS,
    MODEL_INFO_FIELDS,
    PER_QUERY_FIELDS,
    QUESTION_FIELDS,
    TEXT_FIELDS,
)


def check_duplicates(rows: SplitColumns, flat: np.ndarray) -> None:
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
        f"query_id={show(rows.query_ids[rows.q[second]])}, model={show(rows.model_names[rows.m[second]])}, "
        f"prompt_variant_id={rows.variant[second]}, decode_id={rows.decode[second]}"
    )
    raise rows.err(
        second,
        "query_id, model, prompt_variant_id, decode_id",
        f"duplicate observation ({key}); first seen on line {rows.lines[first]}",
        other_line=int(rows.lines[first]),
    )


def dense_block(
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


def split_keys(rows: SplitColumns, q: np.ndarray, m: np.ndarray, n_q: int, n_m: int) -> np.ndarray:
    _, v = np.unique(rows.variant, return_inverse=True)
    _, s = np.unique(rows.decode, return_inverse=True)
    n_v, n_s = int(v.max()) + 1, int(s.max()) + 1
    return np.ravel_multi_index((q, m, v.ravel(), s.ravel()), (n_q, n_m, n_v, n_s))


# --------------------------------------------------------------------------------------------
# query tables


def _object_column(values: Iterable[Any]) -> pd.Series:
    return pd.Series(list(values), dtype=object)


def normalise_table(frame: pd.DataFrame) -> pd.DataFrame:
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


def query_table(rows: SplitColumns, notes: list[str]) -> pd.DataFrame:
    """One row per query (block order): ``query_id, text, original_question, context`` and,
    where the data has them, ``gold, input_question, question, passage``.

    A query's value of a field is taken from its rows ordered by ``prompt_variant_id`` (the
    original query first where present), then file order: the first non-null value (the parser
    keeps it per query, :class:`~benchmark.data.parsing.SplitColumns`).
    """
    query_ids = rows.query_ids
    n_q = len(query_ids)
    per_query: dict[str, pd.Series] = {}
    for f in TEXT_FIELDS:
        if f not in rows.text:
            continue
        values, varying = rows.text[f]
        if f in PER_QUERY_FIELDS and varying:
            notes.append(
                f"{display_path(rows.path)}: field '{f}' differs between the rows of "
                f"{varying} queries; the query table keeps the value of the row with the "
                "smallest prompt_variant_id"
            )
        per_query[f] = _object_column(values)

    def coalesce(fields: Sequence[str]) -> list[str | None]:
        out: list[str | None] = [None] * n_q
        for f in reversed(fields):
            if f in per_query:
                vals = per_query[f].tolist()
                out = [v if v is not None else o for v, o in zip(vals, out)]
        return out

    question = coalesce(QUESTION_FIELDS)
    context = coalesce(CONTEXT_FIELDS)
    n_no_question = sum(v is None for v in question)
    if n_no_question:
        notes.append(
            f"{display_path(rows.path)}: {n_no_question} of {n_q} queries have no question "
            f"text ({' / '.join(QUESTION_FIELDS)}); their feature text is the context only"
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
    if any(f in per_query for f in GOLD_FIELDS):
        table["gold"] = _object_column(coalesce(GOLD_FIELDS))
    for f in ("input_question", "question", "passage"):
        if f in per_query:
            table[f] = per_query[f]
    return normalise_table(pd.DataFrame(table))



def model_table(models: Sequence[str], meta: dict, notes: list[str]) -> pd.DataFrame:
    info = meta.get("model_info") or {}
    table: dict[str, Any] = {"model": _object_column(models)}
    for key in MODEL_INFO_FIELDS:
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
    return normalise_table(pd.DataFrame(table))

