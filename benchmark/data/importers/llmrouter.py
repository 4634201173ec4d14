"""Export to LLMRouter's per-query score format (the layout of its ``dcrouter_preprocessed`` data).

``train.json`` / ``test.json``: a JSON list of ``{"question": str, "scores": {model: float}}`` with
one score per (query, model): the view / decode chosen (default the first; test queries use the
rewrite view), like the RouterBench export. :func:`~benchmark.data.importers.dcrouter.convert_dcrouter`
reads it back. See docs/convert.md.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from benchmark.data.dataset import DarsDataset
from benchmark.data.importers.common import ConvertError
from benchmark.data.io import atomic_write_text


def export_llmrouter(ds: DarsDataset, out_dir: str | Path, *, variant: int | None = None, decode: int | None = None) -> Path:
    """Write ``<out_dir>/train.json`` and ``test.json``; returns ``out_dir``."""
    out_dir = Path(out_dir)
    for split, block, queries in (("train", ds.train, ds.train_queries), ("test", ds.test_rewrite, ds.test_queries)):
        v = 0 if variant is None else (list(block.view_ids).index(variant) if variant in block.view_ids else None)
        d = 0 if decode is None else (list(block.decode_ids).index(decode) if decode in block.decode_ids else None)
        if v is None or d is None:
            raise ConvertError(out_dir, None, "--variant/--decode", f"the {split} block has no view {variant} / decode {decode}")
        score, present = block.score[:, :, v, d], block.present[:, :, v, d]
        if not present.all():
            q, m = np.argwhere(~present)[0]
            raise ConvertError(out_dir, None, None, f"{split}: query {queries['query_id'].iloc[q]!r} has no observation of "
                               f"{ds.models[m]} at that view/decode (LLMRouter's format needs every pair)")
        texts = queries["original_question"].fillna(queries["text"]).fillna("").astype(str).tolist()
        items = [{"question": t, "scores": dict(zip(ds.models, map(float, row)))} for t, row in zip(texts, score)]
        atomic_write_text(out_dir / f"{split}.json", json.dumps(items, ensure_ascii=False, allow_nan=False))
    return out_dir
