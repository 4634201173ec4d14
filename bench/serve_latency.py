"""Router overhead of ``darsbench-serve``: request received -> upstream request sent, p50 / p99.

    python bench/serve_latency.py [--requests 2000] [--concurrency 20] [--upstream-delay-ms 0]

For knn + TF-IDF and knn + MiniLM: fits a ``dars`` cell on the default simulated dataset with
``save_router=true`` (reused from ``--work`` when there), serves the bundle (the real CLI, its own
process) over stub upstreams (benchmark.app.serve_stub, one process for the pool), and sends the
test queries from ``concurrency`` closed-loop clients in this process, one continuous load whose
first ``warmup`` answers (the clients' lockstep start) are not measured. The clients speak plain
HTTP/1.1 over keep-alive sockets, so they cost the shared cores little; the CPU time of each
process per request is printed. "overhead" is the server's own ``overhead_ms`` from its JSON-line
log: from the moment uvicorn starts parsing the request (httptools; h11: the app is called) to the
moment the first upstream request is handed to the HTTP client (queueing for the router included).
"route alone": encoding + scoring one query at a time in this process, the router's own cost
without any queue. ``--server-repo`` runs the server from another checkout (an A/B of versions).
Definitions and figures: README, "Save and serve a router".
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
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psutil
import torch
import yaml
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmark.app.cli import build_spec  # noqa: E402
from benchmark.app.run import run_cell  # noqa: E402
from benchmark.app.serve import QueryRouter  # noqa: E402
from routers.bundle import load_bundle  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fit_bundle(work: Path, features: str, dataset: str | None = None) -> tuple[Path, list[str]]:
    """The knn ``dars`` bundle over ``features`` (on ``dataset``, default: the default simulated
    one) and the test texts (fitted once per ``work``)."""
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose(config_name="config", overrides=[
            "router=knn", "supervision=dars", f"features={features}", "save_router=true",
            f"cache_dir={work / 'cache'}", *([f"dataset={dataset}"] if dataset else [])])
    out = work / f"knn-{features}" if dataset is None else work / f"knn-{features}-{dataset}"
    if not (out / "router" / "bundle.json").exists():
        run_cell(build_spec(cfg, "knn"), out)
    data = instantiate(cfg.dataset).load(work / "cache")
    return out / "router", data.test_queries["text"].tolist()


class Connection:
    """One keep-alive HTTP/1.1 connection: POST a JSON body, read the whole answer."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str) -> None:
        self.reader, self.writer, self.host = reader, writer, host

    @classmethod
    async def open(cls, host: str, port: int) -> "Connection":
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer, f"{host}:{port}")

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        self.writer.write(f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\nContent-Type: application/json\r\n"
                          f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        length = next((int(v) for k, _, v in (ln.partition(":") for ln in lines[1:])
                       if k.strip().lower() == "content-length"), None)
        if length is None:
            raise RuntimeError(f"answer without content-length: {lines[:3]}")
        return status, await self.reader.readexactly(length)

    def close(self) -> None:
        self.writer.close()


async def load(port: int, texts: list[str], n: int, concurrency: int, warmup: int = 0,
               on_mark: Any = None) -> tuple[np.ndarray, float]:
    """``n`` chat requests from ``concurrency`` closed-loop clients, one continuous load. Once
    ``warmup`` answers are back (the clients' synchronised start is over), ``on_mark()`` is
    called; returns the client-side milliseconds of the requests sent after that, and the
    seconds from the mark to the end."""
    latencies: list[float] = []
    counter = iter(range(n))
    done, mark = 0, []
    bodies = [json.dumps({"model": "darsbench-route", "messages": [{"role": "user", "content": t}]}).encode()
              for t in texts]

    def set_mark() -> None:
        mark.append(time.perf_counter())
        if on_mark is not None:
            on_mark()

    async def client_loop() -> None:
        nonlocal done
        conn = await Connection.open("127.0.0.1", port)
        try:
            for i in counter:
                measured = bool(mark)
                t = time.perf_counter()
                status, payload = await conn.post("/v1/chat/completions", bodies[i % len(bodies)])
                if measured:
                    latencies.append((time.perf_counter() - t) * 1e3)
                if status != 200:
                    raise RuntimeError(f"status {status}: {payload[:200]!r}")
                done += 1
                if done >= warmup and not mark:
                    set_mark()
        finally:
            conn.close()

    if warmup <= 0:
        set_mark()
    await asyncio.gather(*(client_loop() for _ in range(concurrency)))
    return np.asarray(latencies), time.perf_counter() - mark[0]


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


def _cpu_s(proc: psutil.Process) -> float:
    t = proc.cpu_times()
    return t.user + t.system + t.children_user + t.children_system


def measure(bundle: Path, texts: list[str], work: Path, features: str, delay_ms: float,
            args: argparse.Namespace) -> dict[str, float]:
    """One server + stubs run: server-side overhead, client latency, throughput and CPU."""
    models = json.loads((bundle / "bundle.json").read_text())["pool"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    server_env = {**env, "PYTHONPATH": str(Path(args.server_repo).resolve())}
    taskset = lambda cpus: ["taskset", "-c", cpus] if cpus else []  # noqa: E731
    stub_cmd = [*taskset(args.client_cpus), sys.executable, "-m", "benchmark.app.serve_stub",
                "--delay-s", str(delay_ms / 1e3), "--jitter", str(args.jitter)]
    stub = subprocess.Popen(stub_cmd + [a for m in models for a in ("--name", m)], env=env,
                            stdout=subprocess.PIPE, text=True)
    urls = {}
    for _ in models:  # "stub upstream 'name' at http://127.0.0.1:port/v1"
        line = stub.stdout.readline().split()
        urls[line[2].strip("'")] = line[-1]
    pool = work / f"pool-{features}.yaml"
    pool.write_text(yaml.safe_dump({"pool": [
        {"name": m, "base_url": urls[m], "model": m, "price_in": 1e-7, "price_out": 2e-7} for m in models]}))
    log = work / f"requests-{features}.jsonl"
    log.unlink(missing_ok=True)
    port = _free_port()
    server_cmd = [sys.executable, "-m", "benchmark.app.serve", "--router", str(bundle), "--pool", str(pool),
                  "--port", str(port), "--log", str(log), *args.server_args.split()]
    if args.server_cpus:
        server_cmd += ["--cpus", args.server_cpus]
    proc = subprocess.Popen(server_cmd, env=server_env, cwd=args.server_repo)
    if args.client_cpus:
        os.sched_setaffinity(0, {int(c) for c in args.client_cpus.split(",")})
    try:
        for _ in range(600):
            try:
                if httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        procs = {"server": psutil.Process(proc.pid), "stubs": psutil.Process(stub.pid),
                 "client": psutil.Process()}
        cpu0: dict[str, float] = {}
        wall0: list[float] = []

        def on_mark() -> None:  # the measured part starts: CPU counters and wall clock
            cpu0.update({k: _cpu_s(p) for k, p in procs.items()})
            wall0.append(time.time())

        client_ms, wall = asyncio.run(load(port, texts, args.warmup + args.requests, args.concurrency,
                                           args.warmup, on_mark))
        cpu = {k: (_cpu_s(p) - cpu0[k]) / len(client_ms) * 1e3 for k, p in procs.items()}
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        stub.terminate()
        stub.wait(timeout=30)
        os.sched_setaffinity(0, range(os.cpu_count() or 1))
    # The requests that reached the server after the mark (time logged at the answer, minus latency).
    rows = [r for r in map(json.loads, log.read_text().splitlines())
            if datetime.fromisoformat(r["time"]).timestamp() - r["latency_ms"] / 1e3 >= wall0[0]]
    col = lambda k: np.array([r.get(k, np.nan) for r in rows], dtype=float)  # noqa: E731
    pct = lambda a, q: float(np.percentile(a, q))  # noqa: E731
    return {"requests": len(rows),
            "overhead_p50": pct(col("overhead_ms"), 50), "overhead_p99": pct(col("overhead_ms"), 99),
            "wait_p50": pct(col("route_wait_ms"), 50), "wait_p99": pct(col("route_wait_ms"), 99),
            "batch_mean": float(col("batch").mean()),
            "client_p50": pct(client_ms, 50), "client_p99": pct(client_ms, 99),
            "req_per_s": len(client_ms) / wall, **{f"cpu_{k}": v for k, v in cpu.items()}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--concurrency", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=100,
                    help="answers before the measured part (same continuous load, not measured)")
    ap.add_argument("--features", nargs="+", default=["tfidf", "minilm"])
    ap.add_argument("--upstream-delay-ms", type=float, nargs="+", default=[0.0],
                    help="the stub upstreams answer after this delay (a model's answer time); "
                         "several values: one run each")
    ap.add_argument("--jitter", type=float, default=0.5,
                    help="upstream delays uniform in delay * (1 +- jitter); 0: every answer takes "
                         "exactly the delay, so closed-loop clients return in lockstep bursts")
    ap.add_argument("--server-args", default="", help="extra darsbench-serve arguments, one string")
    ap.add_argument("--server-cpus", default=None, help="pin the server to these CPUs (e.g. 0)")
    ap.add_argument("--client-cpus", default=None, help="pin the clients and stubs to these CPUs (e.g. 1)")
    ap.add_argument("--server-repo", default=str(REPO),
                    help="run the server from this checkout (A/B against another version)")
    ap.add_argument("--work", default=None, help="folder for the fitted bundles (reused when present)")
    args = ap.parse_args()
    load_before = os.getloadavg()
    print(f"{args.requests} requests, {args.concurrency} concurrent clients, {os.cpu_count()} cores, "
          f"upstream delays {args.upstream_delay_ms} ms (jitter {args.jitter:g}), server args {args.server_args!r}, "
          f"server cpus {args.server_cpus}, client cpus {args.client_cpus}; load average before "
          f"{load_before[0]:.2f}")
    print("overhead = the server starts parsing the request -> first upstream request handed to the "
          "HTTP client (server-side); wait = of that, waiting for and running the router")
    print("| router | upstream delay | route alone p50 / p99 | overhead p50 / p99 | wait p50 / p99 | "
          "mean batch | client p50 / p99 | req/s | CPU ms/request server / stubs / client |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.work) if args.work else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        for feat in args.features:
            bundle, texts = fit_bundle(work, feat)
            alone = route_alone(bundle, texts[:300])
            a50, a99 = np.percentile(alone, [50, 99])
            for delay in args.upstream_delay_ms:
                r = measure(bundle, texts, work, feat, delay, args)
                print(f"| knn + {feat} | {delay:g} ms | {a50:.2f} / {a99:.2f} ms | "
                      f"{r['overhead_p50']:.2f} / {r['overhead_p99']:.2f} ms | "
                      f"{r['wait_p50']:.2f} / {r['wait_p99']:.2f} ms | {r['batch_mean']:.1f} | "
                      f"{r['client_p50']:.1f} / {r['client_p99']:.1f} ms | {r['req_per_s']:.0f} | "
                      f"{r['cpu_server']:.2f} / {r['cpu_stubs']:.2f} / {r['cpu_client']:.2f} |", flush=True)
    print(f"load average after {os.getloadavg()[0]:.2f} (requests measured: {r['requests']} per router)")


if __name__ == "__main__":
    main()
