"""Table-1 grid speed: every router under ``single_shot`` (100 draws) and ``dars``.

Input: a paper-sized simulated dataset (6 models, 200 train queries x 25 observations, 300 test
queries), MiniLM features (computed once and cached before timing starts). Each router runs in its
own subprocess so that its peak memory (max RSS) is its own. Prints wall time, fit time and peak
memory per router, then the total and the Table-1-shaped results.

    python bench/table1.py                       # all seven routers
    python bench/table1.py --routers knn mlp     # a subset
    python bench/table1.py --features tfidf --draws 20
    python bench/table1.py --set router.training.draws=stacked   # the neural routers' fast path
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Sequence

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

ROUTERS = ["knn", "mlp", "avengers_pro", "embedllm", "mirt", "rm_softmax", "graphrouter"]
NEURAL = ["embedllm", "mirt", "rm_softmax", "graphrouter"]
CONF = Path(__file__).resolve().parents[1] / "conf"


def _spec(router: str, mode: str, features: str, draws: int, cache: Path, extra: Sequence[str] = ()):
    """The CLI's cell spec for one Table-1 cell (``extra``: more Hydra overrides)."""
    from hydra import compose, initialize_config_dir
    from benchmark.app.cli import build_spec

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(
            config_name="config",
            overrides=[
                f"router={router}", f"supervision={mode}", f"features={features}",
                f"supervision.n_draws={draws}", f"cache_dir={cache}", *extra,
            ],
        )
    return build_spec(cfg, router)


class TreeMemory:
    """Samples the summed RSS of this process and all its descendants (joblib workers included)
    every ``interval`` seconds in a background thread; ``peak_mb`` is the largest sum seen."""

    def __init__(self, interval: float = 0.1) -> None:
        import threading

        import psutil

        self._proc = psutil.Process()
        self._interval = interval
        self._stop = threading.Event()
        self.peak_mb = 0.0
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> float:
        import psutil

        total = self._proc.memory_info().rss
        for child in self._proc.children(recursive=True):
            try:
                total += child.memory_info().rss
            except psutil.Error:
                continue
        return total / 2**20

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_mb = max(self.peak_mb, self._sample())
            self._stop.wait(self._interval)

    def __enter__(self) -> "TreeMemory":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_mb = max(self.peak_mb, self._sample())


def run_one(router: str, features: str, draws: int, cache: Path, out: Path, extra: Sequence[str] = ()) -> dict:
    """Child process: run both cells of one router; report timings and peak RSS."""
    from benchmark.app.run import run_cell

    rows = {}
    t0 = time.perf_counter()
    mem = TreeMemory().__enter__()
    for mode in ("single_shot", "dars"):
        spec = _spec(router, mode, features, draws, cache, extra if router in NEURAL else ())
        t = time.perf_counter()
        res = run_cell(spec, out / f"{router}_{mode}")
        rows[mode] = {
            "wall_s": time.perf_counter() - t,
            "fit_s": res["timings_s"]["fit"],
            "fit_route_s": res["timings_s"]["fit"] + res["timings_s"]["route"],
            "rU": res["metrics"]["rU"], "dU": res["metrics"]["dU"], "tU": res["metrics"].get("tU"),
        }
    mem.__exit__()
    peak_mb = mem.peak_mb
    return {"router": router, "wall_s": time.perf_counter() - t0, "peak_mb": peak_mb, "cells": rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--routers", nargs="+", default=ROUTERS)
    ap.add_argument("--features", default="minilm", choices=["minilm", "tfidf"])
    ap.add_argument("--draws", type=int, default=100)
    ap.add_argument("--cache", type=Path, default=None, help="cache folder (default: a fresh temp dir)")
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                    help="Hydra overrides for the neural routers, e.g. router.training.draws=stacked")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.child:
        print(json.dumps(run_one(args.child, args.features, args.draws, args.cache, args.out, args.set)))
        return

    cache = args.cache or Path(tempfile.mkdtemp(prefix="darsbench-table1-"))
    out = Path(tempfile.mkdtemp(prefix="darsbench-table1-out-"))
    # Warm the data and feature caches so that timings below measure routing, not encoding.
    from benchmark.features import compute_features
    from benchmark.data.dataset import normalise_costs

    t = time.perf_counter()
    spec = _spec("knn", "dars", args.features, args.draws, cache)
    data = normalise_costs(spec.source.load(cache), "minmax")
    compute_features(spec.featurizer, data.train_queries["text"].tolist(),
                     data.test_queries["text"].tolist(), cache_dir=cache)
    print(f"data + {args.features} features (cold, cached for the grid): {time.perf_counter() - t:.1f} s")
    print(f"dataset: {data.train.score.shape} train [Q, M, V, S], {data.test_queries.shape[0]} test queries, "
          f"{os.cpu_count()} CPU cores, load average {os.getloadavg()[0]:.1f}\n")

    total0 = time.perf_counter()
    reports = []
    for router in args.routers:
        proc = subprocess.run(
            [sys.executable, __file__, "--child", router, "--features", args.features,
             "--draws", str(args.draws), "--cache", str(cache), "--out", str(out), "--set", *args.set],
            capture_output=True, text=True,
        )
        if proc.returncode != 0:
            print(f"{router}: FAILED\n{proc.stderr[-2000:]}")
            continue
        rep = json.loads(proc.stdout.strip().splitlines()[-1])
        reports.append(rep)
        ss, da = rep["cells"]["single_shot"], rep["cells"]["dars"]
        print(
            f"{router:13s} wall {rep['wall_s']:6.1f} s | single_shot fit+route {ss['fit_route_s']:6.2f} s"
            f" | dars fit+route {da['fit_route_s']:5.2f} s | peak RSS (process tree) {rep['peak_mb']:6.0f} MB",
            flush=True,
        )
    total = time.perf_counter() - total0
    print(f"\ntotal grid wall time: {total:.1f} s ({total / 60:.2f} min); "
          f"max peak RSS {max((r['peak_mb'] for r in reports), default=0):.0f} MB\n")
    print("| router | single_shot rU | single_shot dU | dars rU | dars dU | single_shot tU | dars tU |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for rep in reports:
        ss, da = rep["cells"]["single_shot"], rep["cells"]["dars"]
        fmt = lambda m: f"{m['mean']:.4f} ± {m['std']:.4f}" if m and m["n"] > 1 else (f"{m['mean']:.4f}" if m else "-")
        print(f"| {rep['router']} | {fmt(ss['rU'])} | {fmt(ss['dU'])} | {fmt(da['rU'])} | {fmt(da['dU'])} "
              f"| {fmt(ss['tU'])} | {fmt(da['tU'])} |")


if __name__ == "__main__":
    main()
