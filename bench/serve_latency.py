"""Router overhead of ``darsbench-serve``: request received -> upstream request sent, p50 / p99.

    python bench/serve_latency.py [--requests 2000] [--concurrency 20]

For knn + TF-IDF and knn + MiniLM: fits a ``dars`` cell on the default simulated dataset with
``save_router=true``, serves the bundle (the real CLI, a subprocess) over local stub upstreams
(benchmark.app.serve_stub, one per pool model), sends the test queries from ``concurrency``
clients at once, and reads the server's own per-request ``overhead_ms`` from its JSON-line log
(queueing for the routing threads included). "route alone": encoding + scoring one query at a
time in this process, the router's own cost without any queue.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import torch
import yaml
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmark.app.cli import build_spec  # noqa: E402
from benchmark.app.run import run_cell  # noqa: E402
from benchmark.app.serve import QueryRouter  # noqa: E402
from benchmark.app.serve_stub import StubUpstream  # noqa: E402
from routers.bundle import load_bundle  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fit_bundle(work: Path, features: str) -> tuple[Path, list[str]]:
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose(config_name="config", overrides=[
            "router=knn", "supervision=dars", f"features={features}", "save_router=true",
            f"cache_dir={work / 'cache'}"])
    out = work / f"knn-{features}"
    run_cell(build_spec(cfg, "knn"), out)
    data = instantiate(cfg.dataset).load(work / "cache")
    return out / "router", data.test_queries["text"].tolist()


async def load(url: str, texts: list[str], n: int, concurrency: int) -> np.ndarray:
    latencies: list[float] = []
    counter = iter(range(n))

    async def client_loop(client: httpx.AsyncClient) -> None:
        for i in counter:
            body = {"model": "darsbench-route",
                    "messages": [{"role": "user", "content": texts[i % len(texts)]}]}
            t = time.perf_counter()
            r = await client.post(url + "/v1/chat/completions", json=body)
            latencies.append((time.perf_counter() - t) * 1e3)
            r.raise_for_status()

    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(timeout=300, limits=limits) as client:
        await asyncio.gather(*(client_loop(client) for _ in range(concurrency)))
    return np.asarray(latencies)


def route_alone(bundle: Path, texts: list[str]) -> np.ndarray:
    """Milliseconds of encoding + scoring one query, one after another, one torch thread."""
    torch.set_num_threads(1)
    router = QueryRouter(load_bundle(bundle))
    out = []
    for t in texts:
        t0 = time.perf_counter()
        router.route(t, 0.05, 0.2)
        out.append((time.perf_counter() - t0) * 1e3)
    return np.asarray(out)


def measure(work: Path, features: str, n: int, concurrency: int, warmup: int) -> dict[str, float]:
    bundle, texts = fit_bundle(work, features)
    alone = route_alone(bundle, texts[:300])
    models = json.loads((bundle / "bundle.json").read_text())["pool"]
    stubs = [StubUpstream(m).start() for m in models]
    pool = work / f"pool-{features}.yaml"
    pool.write_text(yaml.safe_dump({"pool": [
        {"name": s.name, "base_url": s.base_url, "model": s.name, "price_in": 1e-7, "price_out": 2e-7}
        for s in stubs]}))
    log = work / f"requests-{features}.jsonl"
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "benchmark.app.serve", "--router", str(bundle),
                             "--pool", str(pool), "--port", str(port), "--log", str(log)], env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                if httpx.get(url + "/v1/models", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        asyncio.run(load(url, texts, warmup, concurrency))
        t = time.perf_counter()
        client_ms = asyncio.run(load(url, texts, n, concurrency))
        wall = time.perf_counter() - t
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        for s in stubs:
            s.stop()
    rows = [json.loads(line) for line in log.read_text().splitlines()][warmup:]
    overhead = np.array([r["overhead_ms"] for r in rows])
    return {"alone_p50_ms": np.percentile(alone, 50), "alone_p99_ms": np.percentile(alone, 99),
            "requests": len(rows), "overhead_p50_ms": np.percentile(overhead, 50),
            "overhead_p99_ms": np.percentile(overhead, 99),
            "client_p50_ms": np.percentile(client_ms, 50), "client_p99_ms": np.percentile(client_ms, 99),
            "req_per_s": n / wall}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--concurrency", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--features", nargs="+", default=["tfidf", "minilm"])
    args = ap.parse_args()
    print(f"{args.requests} requests, {args.concurrency} concurrent clients, {os.cpu_count()} cores; "
          "overhead = request received -> upstream request sent (server-side)")
    print("| router | route alone p50 / p99 | requests | overhead p50 | overhead p99 | client p50 | "
          "client p99 | req/s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for feat in args.features:
            r = measure(Path(tmp), feat, args.requests, args.concurrency, args.warmup)
            print(f"| knn + {feat} | {r['alone_p50_ms']:.2f} / {r['alone_p99_ms']:.2f} ms | "
                  f"{r['requests']} | {r['overhead_p50_ms']:.2f} ms | "
                  f"{r['overhead_p99_ms']:.2f} ms | {r['client_p50_ms']:.2f} ms | "
                  f"{r['client_p99_ms']:.2f} ms | {r['req_per_s']:.0f} |", flush=True)


if __name__ == "__main__":
    main()
