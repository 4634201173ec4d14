"""Speed of the RouterBench importer and exporter at RouterBench's published size.

    python bench/convert_speed.py [--rows 36497]

Builds a wide table in RouterBench's layout (11 models; random 0/1 scores and costs, short
responses) in a temporary folder, then times Parquet -> DARS, loading the result, and DARS ->
RouterBench (Parquet). Prints the figures; asserts nothing about time.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from benchmark.data.importers.routerbench import convert_routerbench, export_routerbench, query_tasks
from benchmark.data.loader import load_dars_dir

MODELS = [f"model-{i:02d}" for i in range(11)]


def wide_table(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    evals = np.array(["mmlu", "gsm8k", "hellaswag", "arc", "winogrande", "mbpp", "mtbench"])
    cols: dict[str, object] = {
        "sample_id": [f"s{i}" for i in range(n)],
        "prompt": [f"prompt number {i} " * 8 for i in range(n)],
        "eval_name": evals[rng.integers(0, len(evals), n)],
        "oracle_model_to_route_to": MODELS[0],
    }
    for j, m in enumerate(MODELS):
        cols[m] = rng.integers(0, 2, n).astype(float)
        cols[f"{m}|model_response"] = "a short answer"
        cols[f"{m}|total_cost"] = rng.uniform(1e-6, 1e-3, n)
    return pd.DataFrame(cols)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=36497)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "rb.parquet"
        wide_table(args.rows).to_parquet(src)
        t0 = time.perf_counter()
        rep = convert_routerbench(src, tmp, name="rb")
        t1 = time.perf_counter()
        ds = load_dars_dir(tmp, "rb", use_cache=False)
        t2 = time.perf_counter()
        export_routerbench(ds, Path(tmp) / "back.parquet", tasks=query_tasks(rep.folder))
        t3 = time.perf_counter()
        size = sum(f.stat().st_size for f in rep.folder.iterdir()) / 1e6
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    print(f"rows {args.rows} x {len(MODELS)} models = {rep.n_train_rows // 1 + rep.n_test_rows // 2} observations")
    print(f"import  (Parquet -> DARS JSONL, {size:.0f} MB written): {t1 - t0:.2f} s")
    print(f"load    (load_dars_dir, no cache):                    {t2 - t1:.2f} s")
    print(f"export  (DARS -> RouterBench Parquet):                {t3 - t2:.2f} s")
    print(f"peak RSS {rss:.2f} GB")


if __name__ == "__main__":
    main()
