"""The committed real dataset `tinypool` loads with the foundation loader and passes its checks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from benchmark.collect.validity import generation_table

ROOT = Path(__file__).resolve().parents[1] / "benchmark" / "data" / "datasets" / "tinypool"


def _rows(split: str) -> list[dict]:
    return [json.loads(line) for line in (ROOT / "tinypool" / f"{split}_scored_generations.jsonl").read_text().splitlines()]


def test_tinypool_loads_with_load_dars_dir(tmp_path):
    loader = pytest.importorskip("benchmark.data.loader", reason="benchmark.data.loader (the foundation loader) is not there yet")
    ds = loader.load_dars_dir(ROOT, "tinypool", cache_dir=tmp_path)
    assert list(ds.models) == ["smollm2-135m-instruct", "gemma-3-270m"]
    assert ds.train.score.shape == (40, 2, 5, 5) and ds.train.present.all()
    assert ds.test_rewrite.score.shape == (20, 2, 3, 1) and ds.test_rewrite.present.all()
    assert ds.test_decoding.score.shape == (20, 2, 1, 3) and list(ds.test_decoding.view_ids) == [-1]
    acc = np.nanmean(ds.train.score, axis=(0, 2, 3))
    assert np.all((acc > 0) & (acc < 1))  # neither model always right or always wrong
    prices = ds.model_table.set_index("model")
    assert prices.loc["smollm2-135m-instruct", "price_out"] > prices.loc["gemma-3-270m", "price_out"]


def test_tinypool_rows_are_valid():
    for split, n in (("train", 2000), ("test", 240)):
        rows = _rows(split)
        t = generation_table(rows, n)
        assert t["rows"] == n and t["duplicate_keys"] == 0 and t["duplicate_cells"] == 0
        assert t["finite_scores"] == 1.0 and t["scores_in_range"] == 1.0 and t["rescore_agreement"] == 1.0
        assert all(r["usage"]["completion_tokens"] > 0 and r["cost"] > 0 for r in rows)
