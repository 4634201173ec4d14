"""LLMRouter (``ulab-uiuc/LLMRouter``): its general routing-data format in, its score format out.

In: ``routing_data_train.jsonl`` / ``routing_data_test.jsonl`` (any names), one row per (query,
model): the query fields ``task_name, query, ground_truth, metric, choices, task_id`` plus
``model_name, response, input_tokens, output_tokens, token_num, response_time, api_key_used,
performance, embedding_id``; prices per million tokens in ``default_llm.json``
(``{model: {input_price, output_price, ...}}``) give the cost in USD. ``api_key_used`` is never
copied. Out: the ``dcrouter_preprocessed`` layout (``train.json`` / ``test.json``, a list of
``{"question", "scores": {model: score}}``). See docs/convert.md.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from benchmark.data.dataset import DarsDataset
from benchmark.data.importers.common import ConvertError, show
from benchmark.data.importers.longtable import ImportReport, check_labels, check_numbers, write_long_table
from benchmark.data.importers.table import read_table
from benchmark.data.io import atomic_write_text

#: Never copied into DARS files (an API key identifier).
DROPPED_FIELDS = ("api_key_used",)


def _prices(path: str | Path) -> dict[str, tuple[float, float]]:
    path = Path(path)
    if not path.is_file():
        raise ConvertError(path, None, None, "is a folder, not a file" if path.is_dir() else "file not found")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise ConvertError(path, None, None, f"malformed JSON ({getattr(exc, 'msg', type(exc).__name__)})") from None
    if not isinstance(data, dict):
        raise ConvertError(path, None, None, f"expected a JSON object {{model: {{input_price, output_price}}}}, got "
                           f"{type(data).__name__}")
    out = {}
    for model, info in data.items():
        for key in ("input_price", "output_price"):
            v = info.get(key) if isinstance(info, dict) else None
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise ConvertError(path, None, f"{model}.{key}", f"value {show(v)} is not a finite number >= 0 "
                                   "(USD per million tokens)")
        out[str(model)] = (float(info["input_price"]), float(info["output_price"]))
    return out


def convert_llmrouter(
    train: str | Path,
    test: str | Path,
    out: str | Path,
    *,
    name: str = "llmrouter",
    llm_data: str | Path | None = None,
    cost_proxy: str | None = None,
) -> ImportReport:
    """Import LLMRouter routing data. Cost: ``llm_data`` prices x tokens (USD), or an explicit
    ``cost_proxy`` (``tokens``: token_num per call; ``uniform``: 0)."""
    if (llm_data is None) == (cost_proxy is None):
        raise ConvertError("--llm-data", None, None, "give exactly one of --llm-data default_llm.json (prices) or "
                           "--cost-proxy tokens|uniform")
    prices = _prices(llm_data) if llm_data is not None else {}
    parts, rows = [], []
    for split, path in (("train", train), ("test", test)):
        frame, lines, unit = read_table(path)
        for col in ("query", "model_name", "performance"):
            if col not in frame.columns:
                raise ConvertError(path, None, col, "column not found (LLMRouter routing data has query, model_name, "
                                   "performance, input_tokens, output_tokens, ...)")
        names = {"query": "query", "model": "model_name", "score": "performance", "cost": "cost"}
        model = check_labels(frame.rename(columns={"model_name": "model"}), "model", path, lines, unit, names)
        score = check_numbers(frame.rename(columns={"performance": "score"}), "score", path, lines, unit,
                              lo=0.0, hi=1.0, names=names)
        if cost_proxy == "uniform":
            cost = np.zeros(len(frame))
        else:
            tok_cols = ("token_num",) if cost_proxy == "tokens" else ("input_tokens", "output_tokens")
            toks = []
            for col in tok_cols:
                if col not in frame.columns:
                    raise ConvertError(path, None, col, "column not found (needed for the cost)")
                toks.append(check_numbers(frame, col, path, lines, unit, lo=0.0, hi=None))
            if cost_proxy == "tokens":
                cost = toks[0]
            else:
                unknown = sorted(set(model) - set(prices))
                if unknown:
                    raise ConvertError(llm_data, None, unknown[0], "model of the routing data has no price entry")
                p_in = np.array([prices[m][0] for m in model])
                p_out = np.array([prices[m][1] for m in model])
                cost = (toks[0] * p_in + toks[1] * p_out) / 1e6
        # A query is LLMRouter's embedding_id (or its unique-query key); the same query may sit in both
        # files, so ids carry the split and the overlap is reported from the text.
        if "embedding_id" in frame.columns:
            qid = frame["embedding_id"].astype(str).radd(f"{split}-e")
        else:
            key = [c for c in ("task_name", "query", "ground_truth", "metric") if c in frame.columns]
            qid = frame[key].astype(str).agg("\u241f".join, axis=1).map(
                lambda s: f"{split}-{hashlib.sha256(s.encode()).hexdigest()[:16]}")
        part = pd.DataFrame({"query": qid.to_numpy(), "model": model, "score": score, "cost": cost,
                             "text": frame["query"].to_numpy(), "split": split})
        if "task_name" in frame.columns:
            part["task"] = frame["task_name"].to_numpy()
        if "response" in frame.columns:
            part["output"] = frame["response"].to_numpy()
        parts.append(part)
        rows.append(lines)
    obs = pd.concat(parts, ignore_index=True)
    cannot = ["one observation per (query, model): no rewrites and no repeated decodes, so rU == dU",
              f"fields {list(DROPPED_FIELDS)} are never copied (an API key identifier)"]
    if cost_proxy is not None:
        cannot.append(f"no cost in the source: cost proxy {cost_proxy!r} (declared with --cost-proxy)")
    return write_long_table(obs, out, name, source_format="llmrouter", source_path=train, row_of=np.concatenate(rows),
                            unit="line", cannot_know=cannot, repeats_are_decodes=False,
                            metadata_extra={"cost_unit": "USD per call (LLMRouter prices x tokens)" if llm_data else cost_proxy,
                                            "test_file": str(Path(test).resolve())})


def export_llmrouter(ds: DarsDataset, out_dir: str | Path, *, variant: int | None = None, decode: int | None = None) -> Path:
    """Write ``<out_dir>/train.json`` and ``test.json`` in the dcrouter layout; returns ``out_dir``.

    One score per (query, model): the view / decode chosen (default the first; test queries use
    the rewrite view), like the RouterBench export."""
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
