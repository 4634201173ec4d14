"""Long observation tables -> DARS folders: the part every table-shaped importer shares.

An importer turns its source into one long frame (a row per observation) with the columns
``query, model, score, cost`` and optional ``variant, decode, text, task, split, output``, then
:func:`write_long_table` checks it, numbers repeated rows as decodes, splits by query when the
source has no split (seeded, stratified by task), counts duplicates and train/test overlap, and
writes through :func:`~benchmark.data.dars_format.write_dars_jsonl`. See docs/convert.md.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from benchmark.data.dars_format import write_dars_jsonl
from benchmark.data.importers.common import ConvertError, show

REQUIRED = ("query", "model", "score", "cost")
OPTIONAL = ("variant", "decode", "text", "task", "split", "output")


@dataclass
class ImportReport:
    """What an importer wrote (returned, and printed by ``darsbench-convert``)."""

    folder: Path
    source_format: str
    models: list[str]
    n_train_queries: int
    n_test_queries: int
    n_train_rows: int
    n_test_rows: int
    split: str  # "source" or "seeded ..."
    repeated_as_decodes: int
    duplicate_texts: int
    train_test_overlap: int
    cannot_know: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [f"wrote {self.folder} ({self.source_format})",
               f"  models ({len(self.models)}): {', '.join(self.models)}",
               f"  train: {self.n_train_queries} queries, {self.n_train_rows} rows; "
               f"test: {self.n_test_queries} queries, {self.n_test_rows} rows",
               f"  split: {self.split}",
               f"  duplicates: {self.repeated_as_decodes} repeated (query, model, variant) rows kept as extra decodes; "
               f"{self.duplicate_texts} queries share their text with another query",
               f"  train/test overlap: {self.train_test_overlap} test queries have the text of a training query"]
        out += [f"  CANNOT KNOW: {c}" for c in self.cannot_know]
        return out


def _norm_text(s: pd.Series) -> pd.Series:
    return s.fillna("").astype(str).str.strip().str.casefold().map(lambda t: re.sub(r"\s+", " ", t))


def _name(names: Mapping[str, Any], col: str, i: int) -> str:
    """The source column of role ``col`` at row ``i`` (one name, or one per row)."""
    name = names.get(col, col)
    return str(name[i]) if isinstance(name, np.ndarray) else str(name)


def check_numbers(frame: pd.DataFrame, col: str, path: str | Path, row_of: np.ndarray, unit: str,
                  *, lo: float, hi: float | None, names: Mapping[str, Any] | None = None) -> np.ndarray:
    """The column as float64; the first non-number, non-finite or out-of-range value raises a
    :class:`ConvertError` naming the file, row and source column."""
    raw = frame[col]
    is_bool = raw.map(lambda v: isinstance(v, (bool, np.bool_))).to_numpy()
    num = pd.to_numeric(raw.where(~is_bool, None), errors="coerce").to_numpy(dtype=float)
    bad = ~np.isfinite(num) | (num < lo) | (False if hi is None else (num > hi))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        value, v = raw.iloc[i], num[i]
        what = ("is not a number" if np.isnan(v) and not (isinstance(value, float) and math.isnan(value))
                else "is not finite" if not np.isfinite(v)
                else f"is outside [{lo:g}, {hi:g}]" if hi is not None else f"is below {lo:g}")
        raise ConvertError(path, int(row_of[i]), _name(names or {}, col, i),
                           f"value {show(value)} {what} ({int(bad.sum())} bad values)", unit=unit)
    return num


def check_labels(frame: pd.DataFrame, col: str, path: str | Path, row_of: np.ndarray, unit: str,
                 names: Mapping[str, Any] | None = None) -> np.ndarray:
    """The column as non-empty strings (integers allowed, kept as their decimal text)."""
    raw = frame[col]
    ok = raw.map(lambda v: (isinstance(v, str) and v.strip() != "")
                 or (isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)))).to_numpy()
    if not ok.all():
        i = int(np.flatnonzero(~ok)[0])
        raise ConvertError(path, int(row_of[i]), _name(names or {}, col, i), f"value {show(raw.iloc[i])} is not a non-empty string "
                           f"({int((~ok).sum())} bad values)", unit=unit)
    return raw.astype(str).to_numpy()


def seeded_split(queries: np.ndarray, tasks: np.ndarray | None, test_fraction: float, seed: int) -> np.ndarray:
    """``True`` for the test queries: within each task (sorted), the sorted query ids are
    permuted by ``numpy.random.default_rng(seed)`` and the first round(n * test_fraction) go to
    test. The same ids, tasks and seed give the same split whatever the row order."""
    order = np.argsort(queries, kind="stable")
    q_sorted = queries[order]
    t_sorted = np.zeros(len(q_sorted), dtype=object) if tasks is None else tasks[order]
    rng = np.random.default_rng(seed)
    test_sorted = np.zeros(len(q_sorted), dtype=bool)
    for task in sorted(set(t_sorted.tolist()), key=str):
        idx = np.flatnonzero(t_sorted == task)
        n_test = int(round(len(idx) * test_fraction))
        test_sorted[idx[rng.permutation(len(idx))[:n_test]]] = True
    out = np.zeros(len(queries), dtype=bool)
    out[order] = test_sorted
    return out


def write_long_table(
    obs: pd.DataFrame,
    out: str | Path,
    name: str,
    *,
    source_format: str,
    source_path: str | Path,
    row_of: np.ndarray,
    unit: str = "row",
    test_fraction: float = 0.2,
    seed: int = 0,
    cannot_know: Sequence[str] = (),
    metadata_extra: dict[str, Any] | None = None,
    repeats_are_decodes: bool = True,
    column_names: Mapping[str, Any] | None = None,
) -> ImportReport:
    """Check the long frame, assign decodes / split / views, write ``<out>/<name>/``.

    ``column_names`` maps a role (``score``...) to its source column (or one name per row) for
    the error messages. ``repeats_are_decodes``: rows repeating a (query, model, variant) without a decode column are
    decodes 0, 1, ... (False: such a repeat is an error naming both rows)."""
    if not 0.0 < test_fraction < 1.0:
        raise ConvertError(source_path, None, "--test-fraction", f"value {test_fraction} is not in (0, 1)")
    if obs.empty:
        raise ConvertError(source_path, None, None, "the source has no rows")
    names = column_names or {}
    q = check_labels(obs, "query", source_path, row_of, unit, names)
    m = check_labels(obs, "model", source_path, row_of, unit, names)
    score = check_numbers(obs, "score", source_path, row_of, unit, lo=0.0, hi=1.0, names=names)
    cost = check_numbers(obs, "cost", source_path, row_of, unit, lo=0.0, hi=None, names=names)
    frame = pd.DataFrame({"query_id": q, "model": m, "score": score, "cost": cost})
    has_variant = "variant" in obs
    for col, target in (("variant", "prompt_variant_id"), ("decode", "decode_id")):
        if col in obs:
            vals = check_numbers(obs, col, source_path, row_of, unit, lo=-math.inf, hi=None, names=names)
            if not np.all(vals == np.round(vals)):
                i = int(np.flatnonzero(vals != np.round(vals))[0])
                raise ConvertError(source_path, int(row_of[i]), _name(names, col, i), f"value {show(obs[col].iloc[i])} is not an integer",
                                   unit=unit)
            frame[target] = vals.astype(np.int64)
        else:
            frame[target] = 0
    for col in ("text", "task", "output"):
        if col in obs:
            frame[col] = obs[col].where(obs[col].notna(), None).map(lambda v: v if v is None else str(v)).to_numpy()

    # Repeated (query, model, variant) rows become decodes, in order of appearance.
    repeated = 0
    key = ["query_id", "model", "prompt_variant_id"]
    if "decode" not in obs and repeats_are_decodes:
        frame["decode_id"] = frame.groupby(key, sort=False).cumcount().astype(np.int64)
        repeated = int((frame["decode_id"] > 0).sum())
    dup = frame.duplicated(key + ["decode_id"], keep="first").to_numpy()
    if dup.any():
        i = int(np.flatnonzero(dup)[0])
        first = frame.index[(frame[key + ["decode_id"]] == frame.loc[i, key + ["decode_id"]]).all(axis=1)][0]
        raise ConvertError(source_path, int(row_of[i]), _name(names, "query", i), f"repeats the observation of {unit} {int(row_of[first])} "
                           f"(query {frame.loc[i, 'query_id']!r}, model {frame.loc[i, 'model']!r}); "
                           f"{int(dup.sum())} repeated keys", unit=unit)

    # Per-query fields: the first row of each query.
    queries = frame.drop_duplicates("query_id", keep="first")
    uq = queries["query_id"].to_numpy()
    task_of = queries["task"].to_numpy() if "task" in frame else None
    if "split" in obs:
        split_raw = obs["split"].astype(str).str.strip().str.lower().to_numpy()
        bad = ~np.isin(split_raw, ["train", "test"])
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ConvertError(source_path, int(row_of[i]), _name(names, "split", i), f"value {show(obs['split'].iloc[i])} is not train or test",
                               unit=unit)
        frame["split"] = split_raw
        per_q = frame.groupby("query_id", sort=False)["split"].nunique()
        if (per_q > 1).any():
            qid = per_q.index[per_q.to_numpy() > 1][0]
            raise ConvertError(source_path, None, "split", f"query {qid!r} has rows in both train and test")
        split_note = "from the source"
        test_q = set(frame.loc[frame["split"] == "test", "query_id"])
    else:
        is_test = seeded_split(uq, task_of, test_fraction, seed)
        test_q = set(uq[is_test].tolist())
        split_note = (f"seeded by query (seed {seed}, test fraction {test_fraction}"
                      + (", stratified by task)" if task_of is not None else ")"))
        frame["split"] = np.where(frame["query_id"].isin(test_q), "test", "train")
    n_test_q = len(test_q)
    if n_test_q == 0 or n_test_q == len(uq):
        raise ConvertError(source_path, None, "split", f"{n_test_q} of {len(uq)} queries are test queries; both splits need queries")

    dup_texts = overlap = 0
    if "text" in frame:
        qt = _norm_text(queries["text"])
        dup_texts = int(qt.duplicated(keep=False).sum())
        q_is_test = queries["query_id"].isin(test_q).to_numpy()
        overlap = int(np.isin(qt.to_numpy()[q_is_test], qt.to_numpy()[~q_is_test]).sum())

    rows = frame.rename(columns={"text": "original_question", "task": "task_type", "output": "output_text"})
    rows.insert(0, "dataset", name)
    train = rows[rows["split"] == "train"].copy()
    test = rows[rows["split"] == "test"].copy()
    notes = list(cannot_know)
    if has_variant:
        test["observation_type"] = np.where(test["prompt_variant_id"] < 0, "decoding_variation", "prompt_variation")
        views = set(test["observation_type"])
        if views != {"prompt_variation", "decoding_variation"}:
            missing = ({"prompt_variation", "decoding_variation"} - views).pop()
            raise ConvertError(source_path, None, "variant",
                               f"the test queries have no {missing} rows (DARS test data holds rewrites with variant >= 0 "
                               "and decodes of the original query with variant < 0)")
    else:
        pv = test.assign(observation_type="prompt_variation", prompt_variant_id=0)
        dv = test.assign(observation_type="decoding_variation", prompt_variant_id=-1)
        test = pd.concat([pv, dv], ignore_index=True)
        notes.append("no rewrite ids: both test views hold the same observations (rU == dU)")
    if int(frame.groupby(["query_id", "model"]).size().max()) == 1:
        notes.append("one observation per (query, model): only single-shot supervision is meaningful")
    models = list(dict.fromkeys(frame["model"].tolist()))
    metadata = {
        "dataset": name, "models": models, "source_format": source_format, "source_file": str(Path(source_path).resolve()),
        "split": split_note, "cannot_know": notes, "duplicate_texts": dup_texts,
        "repeated_rows_as_decodes": repeated, "test_queries_with_training_text": overlap, **(metadata_extra or {}),
    }
    folder = write_dars_jsonl(train, test, out, name, metadata=metadata)
    return ImportReport(
        folder=folder, source_format=source_format, models=models, n_train_queries=len(uq) - n_test_q,
        n_test_queries=n_test_q, n_train_rows=len(train), n_test_rows=len(test), split=split_note,
        repeated_as_decodes=repeated, duplicate_texts=dup_texts, train_test_overlap=overlap, cannot_know=notes)
