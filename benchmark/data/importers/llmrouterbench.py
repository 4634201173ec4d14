"""LLMRouterBench (``NPULH/LLMRouterBench`` results, ``bench-release.tar.gz``) into the DARS schema.

The release unpacks to ``bench/<dataset>/<split>/<model>/<timestamp>.json``; each file holds the
run's totals and ``records``: one per prompt with ``index``, ``origin_query``, ``prompt``,
``prediction``, ``ground_truth``, ``score``, ``prompt_tokens``, ``completion_tokens``, ``cost`` (USD,
the performance-cost setting only) and ``raw_output``. One (dataset, index) is one query; the
latest timestamp of a (dataset, split, model) is read and older runs are reported, not mixed.
See docs/convert.md.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from benchmark.data.importers.common import ConvertError, show
from benchmark.data.importers.longtable import ImportReport, write_long_table


def _runs(src: Path) -> tuple[list[tuple[str, str, str, Path]], list[Path]]:
    """(dataset, split, model, file) of the latest run of each triple, and the older files."""
    latest: dict[tuple[str, str, str], Path] = {}
    older: list[Path] = []
    for f in sorted(src.glob("*/*/*/*.json")):
        dataset, split, model = f.parts[-4], f.parts[-3], f.parts[-2]
        key = (dataset, split, model)
        if key in latest:
            older.append(latest[key])
        latest[key] = f  # sorted: the greatest timestamp wins
    return [(*k, v) for k, v in sorted(latest.items())], older


def convert_llmrouterbench(
    src: str | Path,
    out: str | Path,
    *,
    name: str = "llmrouterbench",
    missing_cost: str = "error",
    test_fraction: float = 0.2,
    seed: int = 0,
) -> ImportReport:
    """Import ``<src>/<dataset>/<split>/<model>/*.json``. A record without ``cost`` is an error
    unless ``missing_cost="zero"`` (the performance setting records no cost)."""
    src = Path(src)
    if not src.is_dir():
        raise ConvertError(src, None, None, "not a folder (give the unpacked bench/ folder)")
    runs, older = _runs(src)
    if not runs:
        raise ConvertError(src, None, None, "no <dataset>/<split>/<model>/<timestamp>.json result files")
    frames, positions = [], []
    no_cost: set[str] = set()
    for dataset, split, model, f in runs:
        try:
            data = json.loads(f.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
            raise ConvertError(f, None, None, f"malformed JSON ({getattr(exc, 'msg', type(exc).__name__)})") from None
        records = data.get("records") if isinstance(data, dict) else None
        if not isinstance(records, list):
            raise ConvertError(f, None, "records", "missing, or not a list of per-prompt records")
        for i, r in enumerate(records):
            if not isinstance(r, dict):
                raise ConvertError(f, i, None, f"expected a JSON object, got {type(r).__name__}", unit="record")
            for key in ("index", "score"):
                if key not in r:
                    raise ConvertError(f, i, key, "required field is missing", unit="record")
            sc = r["score"]
            if isinstance(sc, bool) or not isinstance(sc, (int, float)) or not 0.0 <= sc <= 1.0:
                raise ConvertError(f, i, "score", f"value {show(sc)} is not a number in [0, 1]", unit="record")
            c = r.get("cost")
            if c is not None and (isinstance(c, bool) or not isinstance(c, (int, float)) or not 0.0 <= c < float("inf")):
                raise ConvertError(f, i, "cost", f"value {show(c)} is not a finite number >= 0", unit="record")
            if c is None:
                if missing_cost != "zero":
                    raise ConvertError(f, i, "cost", "no cost recorded (the performance setting has none); pass "
                                       "--missing-cost zero to import with cost 0", unit="record")
                no_cost.add(model)
        frame = pd.DataFrame.from_records(records)
        frame["_file"] = str(f)
        frame["_dataset"], frame["_split"], frame["_model"] = dataset, split, model
        frames.append(frame)
        positions.append(np.arange(len(records)))
    table = pd.concat(frames, ignore_index=True)
    idx = table["index"]
    bad = ~idx.map(lambda v: isinstance(v, (int, str)) and not isinstance(v, bool)).to_numpy()
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        raise ConvertError(table["_file"].iloc[k], int(np.concatenate(positions)[k]), "index",
                           f"value {show(idx.iloc[k])} is not an integer or string", unit="record")
    cost = table["cost"] if "cost" in table else pd.Series([None] * len(table))
    obs = pd.DataFrame({
        "query": table["_dataset"] + "/" + idx.astype(str),
        "model": table["_model"],
        "score": table["score"],
        "cost": cost.where(cost.notna(), 0.0) if missing_cost == "zero" else cost,
        "text": table["origin_query"] if "origin_query" in table else table.get("prompt"),
        "task": table["_dataset"],
    })
    if "raw_output" in table:
        obs["output"] = table["raw_output"]
    cannot = ["one observation per (prompt, model): no rewrites and no repeated decodes, so rU == dU",
              "the <split> folders are the benchmarks' own eval splits, not a router train/test split: it is made here"]
    if no_cost:
        cannot.append(f"no cost recorded for {sorted(no_cost)}: cost set to 0 (--missing-cost zero)")
    if older:
        cannot.append(f"{len(older)} older result file(s) of re-run (dataset, split, model) triples ignored, "
                      f"e.g. {older[0]}")
    # Error positions: the record index within its file (the file is named in the message).
    return write_long_table(obs, out, name, source_format="llmrouterbench", source_path=src,
                            row_of=np.concatenate(positions), unit="record", test_fraction=test_fraction, seed=seed,
                            cannot_know=cannot, repeats_are_decodes=False,
                            metadata_extra={"result_files": [str(r[3]) for r in runs],
                                            "cost_unit": "USD per call (LLMRouterBench record cost)"})
