"""Scale figures: time and peak RSS of each stage at 0.1M, 1M and 10M observations.

For each size, one fresh process per stage (so each peak RSS is that stage's own):

* ``write``: a compact DARS folder (20 models; train 5 rewrites x 5 decodes; test 3 + 3 rows per
  pair; a short question per row, no other text), written through ``dars_format``;
* ``parse``: ``load_dars_dir`` from a cold cache (parse, build, write the cache);
* ``reload``: ``load_dars_dir`` again (the memory-mapped cache);
* ``parse_parquet``: the same data as Parquet, loaded without the cache (time of the load only; the
  peak RSS includes writing the Parquet files when they are not there yet);
* ``simulate``: ``dataset=synthetic`` with ``dataset.overrides`` giving that many observations
  (simulation and files; the default 6-model pool);
* ``knn_dars_cold``: one ``darsbench`` cell (router=knn, supervision=dars, features=tfidf) from an
  empty cache: parse, TF-IDF, fit, route, evaluate; ``knn_dars_warm``: the same cell again (data
  and features from the cache);
* ``knn_single_shot_100``: the single-shot cell with ``supervision.n_draws=100`` (warm cache).

Usage: ``python bench/scale.py [--sizes 100000 1000000 10000000] [--work DIR] [--stages ...]``.
Prints one line per stage: observations, stage, wall seconds, peak RSS in GB, and the stage's CPU
seconds (user + system; on a shared machine the wall time also counts waiting for a core); where the
stage ran a second process, also the first process's own CPU seconds (``cpu_first_process_s``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

REPO = Path(__file__).resolve().parents[1]
N_MODELS = 20
WORDS = np.array([f"w{i}" for i in range(3000)])
STAGES = ("write", "parse", "reload", "parse_parquet", "simulate", "knn_dars_cold", "knn_dars_warm",
          "knn_single_shot_100")


def shape(n_obs: int) -> tuple[int, int]:
    """(train queries, test queries): 80% of the rows in train (500 per query), 20% in test
    (120 per query)."""
    return max(2, int(0.8 * n_obs) // (N_MODELS * 25)), max(2, int(0.2 * n_obs) // (N_MODELS * 6))


def _split_batches(split: str, n_q: int, rng: np.random.Generator, name: str):
    from benchmark.data.simulator.writing import (
        _dict,  # the simulator's dictionary-column helper
    )

    models = [f"vendor/model-{i:02d}" for i in range(N_MODELS)]
    if split == "train":
        grid = [(v, s, None) for v in range(5) for s in range(5)]
    else:
        grid = [(v, 0, 0) for v in range(3)] + [(-1, s, 1) for s in range(3)]
    per_query = N_MODELS * len(grid)
    step = max(1, 400_000 // per_query)
    skill = rng.normal(0, 1, N_MODELS)
    for q0 in range(0, n_q, step):
        q1 = min(n_q, q0 + step)
        nq = q1 - q0
        n = nq * per_query
        q = np.repeat(np.arange(nq), per_query)
        m = np.tile(np.repeat(np.arange(N_MODELS), len(grid)), nq)
        g = np.tile(np.arange(len(grid)), nq * N_MODELS)
        v = np.array([x[0] for x in grid])[g]
        s = np.array([x[1] for x in grid])[g]
        difficulty = rng.normal(0, 1, nq)
        p = 1 / (1 + np.exp(-(skill[m] - difficulty[q])))
        score = (rng.random(n) < p).astype(float)
        cost = np.round(rng.lognormal(-9, 0.5, n) * (1 + m), 12)
        ids = [f"{split}-{k:07d}" for k in range(q0, q1)]
        questions = [" ".join(rng.choice(WORDS, 12)) + "?" for _ in range(nq)]
        cols = {
            "dataset": _dict(np.zeros(n), [name]),
            "split": _dict(np.zeros(n), [split]),
            "query_id": _dict(q, ids),
            "model": _dict(m, models),
            "prompt_variant_id": pa.array(v.astype(np.int64)),
            "decode_id": pa.array(s.astype(np.int64)),
        }
        if split == "test":
            obs = np.array([x[2] for x in grid])[g]
            cols["observation_type"] = _dict(obs, ["prompt_variation", "decoding_variation"])
        cols |= {"score": pa.array(score), "cost": pa.array(cost), "original_question": _dict(q, questions)}
        yield pa.RecordBatch.from_arrays(list(cols.values()), names=list(cols))


def write_compact(root: Path, n_obs: int, fmt: str = "jsonl") -> Path:
    from benchmark.data.dars_format import write_dars_tables

    n_train, n_test = shape(n_obs)
    rng = np.random.default_rng(0)
    name = "scale"
    write_dars_tables(_split_batches("train", n_train, rng, name), _split_batches("test", n_test, rng, name),
                      root, name, fmt=fmt)  # fmt: skip
    return root / name


def _child(stage: str, n_obs: int, work: Path) -> dict:
    """Run one stage in this process; return its figures."""
    import warnings

    warnings.simplefilter("ignore")
    data = work / f"data-{n_obs}"
    cache = work / f"cache-{n_obs}"
    t0 = time.perf_counter()
    cpu0 = 0.0
    extra: dict = {}
    if stage == "write":
        folder = write_compact(data, n_obs)
        extra["jsonl_MB"] = round(sum(f.stat().st_size for f in folder.iterdir()) / 1e6, 1)
    elif stage == "parse_parquet":
        from benchmark.data.loader import load_dars_dir

        pq_root = work / f"data-parquet-{n_obs}"
        if not (pq_root / "scale").is_dir():
            write_compact(pq_root, n_obs, "parquet")
        t0 = time.perf_counter()  # the load only
        cpu0 = _cpu_seconds()
        ds = load_dars_dir(pq_root / "scale", use_cache=False)
        extra["parquet_MB"] = round(sum(f.stat().st_size for f in (pq_root / "scale").iterdir()) / 1e6, 1)
        extra["observations"] = int(sum(b.present.sum() for b in (ds.train, ds.test_rewrite, ds.test_decoding)))
    elif stage in ("parse", "reload"):
        from benchmark.data.loader import load_dars_dir

        ds = load_dars_dir(data / "scale", cache_dir=cache)
        extra["from_cache"] = ds.source["from_cache"]
        extra["observations"] = int(sum(b.present.sum() for b in (ds.train, ds.test_rewrite, ds.test_decoding)))
    elif stage == "simulate":
        from benchmark.data.sources import SyntheticSource

        shutil.rmtree(work / f"simcache-{n_obs}", ignore_errors=True)  # always a fresh simulation
        n_train = max(2, int(0.8 * n_obs) // 150)
        n_test = max(2, int(0.2 * n_obs) // 36)
        src = SyntheticSource(overrides={"n_train": n_train, "n_test": n_test})
        ds = src.load(work / f"simcache-{n_obs}")
        extra["observations"] = int(sum(b.present.sum() for b in (ds.train, ds.test_rewrite, ds.test_decoding)))
    else:
        sup = "single_shot" if stage == "knn_single_shot_100" else "dars"
        cache = work / f"cache-cells-{n_obs}"  # the cells' own cache: empty before knn_dars_cold
        if stage == "knn_dars_cold":
            shutil.rmtree(cache, ignore_errors=True)
        args = [sys.executable, "-m", "benchmark.app.cli", "router=knn", f"supervision={sup}",
                "features=tfidf", "dataset=dars", "dataset.name=scale", f"dataset.data_dir={data}",
                f"hydra.run.dir={work / ('run-' + stage + '-' + str(n_obs))}", "hydra/launcher=basic"]  # fmt: skip
        if sup == "single_shot":
            args.append("supervision.n_draws=100")
        env = {**os.environ, "DARSBENCH_CACHE": str(cache)}
        proc = subprocess.run(args, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(proc.stderr[-3000:])
        child = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = child.ru_utime + child.ru_stime
        return {"seconds": time.perf_counter() - t0, "peak_rss_gb": child.ru_maxrss / 1e6,
                "cpu_s": round(cpu, 1), **extra}  # fmt: skip
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)  # the simulator's second process
    if kids.ru_utime + kids.ru_stime > 0:
        # the first process waits for the second only at the end: its own CPU time is about the
        # wall time of the stage on an idle machine with a core for each
        extra["cpu_first_process_s"] = round(own.ru_utime + own.ru_stime, 1)
    return {
        "seconds": time.perf_counter() - t0,
        "peak_rss_gb": max(own.ru_maxrss, kids.ru_maxrss) / 1e6,
        "cpu_s": round(_cpu_seconds() - cpu0, 1),  # the machine may be shared: CPU time too
        **extra,
    }


def _cpu_seconds() -> float:
    """User + system CPU seconds of this process and its finished children."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000, 10_000_000])
    parser.add_argument("--stages", nargs="+", default=list(STAGES), choices=STAGES)
    parser.add_argument("--work", type=Path, default=None, help="keep data and caches here")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        stage, n_obs, work = args.child
        print(json.dumps(_child(stage, int(n_obs), Path(work))))
        return
    work = args.work or Path(tempfile.mkdtemp(prefix="darsbench-scale-"))
    print(f"{'observations':>12} {'stage':<20} {'seconds':>8} {'peak RSS GB':>11}  notes")
    for n_obs in args.sizes:
        for stage in args.stages:
            proc = subprocess.run([sys.executable, __file__, "--child", stage, str(n_obs), str(work)],
                                  capture_output=True, text=True, cwd=REPO)  # fmt: skip
            if proc.returncode != 0:
                print(f"{n_obs:>12} {stage:<20} failed: {proc.stderr.strip().splitlines()[-1:]}")
                continue
            res = json.loads(proc.stdout.strip().splitlines()[-1])
            notes = {k: v for k, v in res.items() if k not in ("seconds", "peak_rss_gb")}
            print(f"{n_obs:>12} {stage:<20} {res['seconds']:8.1f} {res['peak_rss_gb']:11.2f}  {notes or ''}",
                  flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
