"""Loader speed: parse a release-sized synthetic DARS folder cold, without cache, and cached.

Writes 30,000 train rows (200 queries x 6 models x 5 rewrites x 5 decodes) and 10,800 test
rows (300 queries x 6 models x (3 rewrites + 3 decodes)) with release-like fields (question,
context, a ~800-character response, usage, request_config) to a temporary folder and prints
wall-clock seconds. Usage: ``python bench/loader_speed.py [--keep DIR]``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from benchmark.data.loader import DataWarning, load_dars_dir, write_dars_jsonl

MODELS = [f"vendor/model-{i}" for i in range(6)]


def _rows(rng: np.random.Generator, split: str, n_q: int) -> list[dict]:
    words = np.array("the of a to in is that for it as with was on be by this are or".split())
    rows: list[dict] = []
    for q in range(n_q):
        qid = f"{split}-{q:04d}"
        question = " ".join(rng.choice(words, 60)) + "?"
        context = " ".join(rng.choice(words, 300)) if q % 2 else None
        if split == "train":
            grid = [(v, s, None) for v in range(5) for s in range(5)]
        else:
            grid = [(v, 0, "prompt_variation") for v in range(3)]
            grid += [(-1, s, "decoding_variation") for s in range(3)]
        for m in MODELS:
            for v, s, obs in grid:
                cost = float(rng.uniform(1e-5, 5e-3))
                r = {
                    "dataset": "synth",
                    "split": split,
                    "query_id": qid,
                    "model": m,
                    "prompt_variant_id": v,
                    "decode_id": s,
                    "score": float(rng.integers(0, 2)),
                    "cost": cost,
                    "original_question": question,
                    "input_question": f"(rewrite {v}) {question}",
                    "context": context,
                    "response": " ".join(rng.choice(words, 160)) + "\nFinal Answer: B",
                    "usage": {"prompt_tokens": 120, "completion_tokens": 160, "total_tokens": 280, "cost": cost},
                    "request_config": {"temperature": 0.7, "top_p": 0.95, "max_tokens": 768},
                    "finish_reason": "stop",
                    "score_type": "binary",
                    "parse_success": True,
                }
                if obs is not None:
                    r["observation_type"] = obs
                rows.append(r)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keep", type=Path, default=None, help="write the data here instead of a temp dir")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        root = args.keep or Path(tmp)
        t0 = time.perf_counter()
        train, test = _rows(rng, "train", 200), _rows(rng, "test", 300)
        folder = write_dars_jsonl(train, test, root / "data", "synth")
        t_write = time.perf_counter() - t0
        sizes = {p.name: p.stat().st_size / 2**20 for p in folder.iterdir()}
        print(f"rows: train {len(train):,}, test {len(test):,}; " + ", ".join(f"{k} {v:.1f} MiB" for k, v in sizes.items()))
        print(f"generate + write:        {t_write:6.2f} s")
        cache = Path(tmp) / "cache"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DataWarning)
            timings = {}
            for label, kw in (
                ("parse, no cache", {"use_cache": False}),
                ("cold (parse + write cache)", {"cache_dir": cache}),
                ("cached", {"cache_dir": cache}),
            ):
                best = np.inf
                for _ in range(3 if label != "cold (parse + write cache)" else 1):
                    t0 = time.perf_counter()
                    ds = load_dars_dir(root / "data", "synth", **kw)
                    best = min(best, time.perf_counter() - t0)
                timings[label] = best
                print(f"{label + ':':<28}{best:6.2f} s   from_cache={ds.source['from_cache']}")
        print(f"train block {ds.train.score.shape}, test views {ds.test_rewrite.score.shape} / {ds.test_decoding.score.shape}")


if __name__ == "__main__":
    main()
