"""MiniLM encoding speed (texts/s) per backend, and how far each backend's embeddings are from
sentence-transformers' (max 1 - cosine). README, "Start-up and encoding speed".

    python bench/encode_speed.py                 # the gpqa_like preset's 548 feature texts
    python bench/encode_speed.py --preset math_like --repeat 3 --quantized
    python bench/encode_speed.py --routing gpqa_like math_like   # kNN metrics per backend (CLI)

Each backend is loaded and run once on a few texts before timing (model load and, for onnx, the
one-off conversion are reported separately). Prints the machine load (``uptime``) first.
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmark.data.sources import SyntheticSource  # noqa: E402
from benchmark.features import MiniLMFeaturizer  # noqa: E402


def cosine_gap(a: np.ndarray, b: np.ndarray) -> float:
    """max over rows of 1 - cos(a_i, b_i)."""
    cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    return float(np.max(1.0 - cos))


def timed(f: MiniLMFeaturizer, texts: list[str], repeat: int) -> tuple[np.ndarray, float]:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        emb = f.encode(texts)
        best = min(best, time.perf_counter() - t)
    return emb, best


ROUTING_VARIANTS = {"torch": ["features.backend=torch"], "onnx": ["features.backend=onnx"],
                    "onnx int8": ["features.backend=onnx", "features.quantize=true"]}


def routing(presets: list[str], cache: Path) -> None:
    """kNN single_shot (100 draws) + dars through the CLI on each backend's features: rU, dU
    and tU of both cells (one sweep per backend and preset, same data)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DARSBENCH_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}
    print("\n| preset | backend | single_shot rU | single_shot dU | single_shot tU | dars rU | dars dU | dars tU |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for preset in presets:
        for label, extra in ROUTING_VARIANTS.items():
            sweep = cache / "routing" / preset / label.replace(" ", "_")
            subprocess.run([sys.executable, "-m", "benchmark.app.cli", "-m", "router=knn",
                            "supervision=single_shot,dars", f"dataset={preset}", "features=minilm", *extra,
                            f"hydra.sweep.dir={sweep}"], cwd=ROOT, env=env, check=True, capture_output=True)
            with open(sweep / "leaderboard.csv", newline="") as fh:
                rows = {r["supervision"]: r for r in csv.DictReader(fh) if r["method"] == "knn"}
            cells = [f"{float(rows[m][k]):.4f}" for m in ("single_shot", "dars") for k in ("rU", "dU", "tU")]
            print(f"| {preset} | {label} | " + " | ".join(cells) + " |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="gpqa_like")
    ap.add_argument("--repeat", type=int, default=2, help="best of this many timed passes")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--quantized", action="store_true", help="also the int8 ONNX model (opt-in)")
    ap.add_argument("--routing", nargs="*", metavar="PRESET",
                    help="instead: kNN routing metrics per backend on these presets (none: gpqa_like)")
    args = ap.parse_args()
    print(subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    cache = Path(os.environ.get("DARSBENCH_CACHE") or tempfile.mkdtemp(prefix="encode-speed-"))
    if args.routing is not None:
        routing(args.routing or ["gpqa_like"], cache)
        return
    data = SyntheticSource(args.preset, args.preset, 0).load(cache)
    texts = data.train_queries["text"].tolist() + data.test_queries["text"].tolist()
    chars = np.array([len(t) for t in texts])
    print(f"{len(texts)} texts ({args.preset}), {chars.mean():.0f} characters on average "
          f"(max {chars.max()}), batch {args.batch_size}")

    variants = [("torch (sentence-transformers)", dict(backend="torch")),
                ("onnx", dict(backend="onnx"))]
    if args.quantized:
        variants.append(("onnx int8 (opt-in)", dict(backend="onnx", quantize=True)))
    reference = None
    rows = []
    for label, kw in variants:
        f = MiniLMFeaturizer(batch_size=args.batch_size, threads=args.threads, progress=False, **kw)
        t = time.perf_counter()
        f.encode(texts[:4])  # load (and for onnx convert, once per machine)
        load = time.perf_counter() - t
        emb, secs = timed(f, texts, args.repeat)
        if reference is None:
            reference = emb
        rows.append((label, load, secs, len(texts) / secs, cosine_gap(emb, reference)))
    # One text at a time on the default backend: batching and padding change nothing.
    f = MiniLMFeaturizer(batch_size=1, progress=False)
    alone = np.vstack([f.encode([t]) for t in texts[:64]])
    batched = MiniLMFeaturizer(batch_size=args.batch_size, progress=False).encode(texts)[:64]

    print(f"\n| backend | load (s) | encode (s) | texts/s | max 1 - cos vs torch |\n|---|---:|---:|---:|---:|")
    for label, load, secs, rate, gap in rows:
        print(f"| {label} | {load:.2f} | {secs:.2f} | {rate:.0f} | {gap:.1e} |")
    print(f"\ndefault backend ({f.backend}): batched vs one text at a time, 64 texts: "
          f"max 1 - cos {cosine_gap(batched, alone):.1e}")


if __name__ == "__main__":
    main()
