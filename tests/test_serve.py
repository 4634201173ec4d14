"""darsbench-serve over real HTTP: the server CLI as a subprocess, real upstream servers on
127.0.0.1 (benchmark.app.serve_stub), a hand-built bundle whose decision flips with lambda."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import numpy as np
import pytest
import yaml

from benchmark.app.serve import ServeError, _lines, load_pool, report, routing_setting
from benchmark.app.serve_stub import StubUpstream
from benchmark.features import TfidfFeaturizer
from routers.bundle import QueryEncoder, save_bundle
from routers.knn import KNNRouter
from supervision.modes import Targets

REPO = Path(__file__).resolve().parents[1]
KEY_ENV = "DARSBENCH_TEST_UPSTREAM_KEY"
KEY = "sk-serve-test-0123456789abcdef"
#: Training texts: "math" queries, where the expensive model "big" is far better.
TEXTS = ["solve the equation x + 1 = 3", "compute the integral of x", "what is 7 times 8",
         "write a short poem about rain", "name a colour of the sky", "say hello politely"]
QUERY = "solve the integral equation"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_bundle(path: Path) -> Path:
    """knn (k=2) over TF-IDF; on math texts big: q 0.9 c 0.8, small: q 0.3 c 0.1.

    A math query: utility big 0.9 - 0.8 lam, small 0.3 - 0.1 lam: big for lam < 6/7, small above.
    """
    feat = TfidfFeaturizer()
    enc = QueryEncoder.fit(feat, TEXTS)
    X = enc.encode(TEXTS)
    math_q = np.array([1, 1, 1, 0, 0, 0], bool)
    mu_q = np.where(math_q[:, None], [0.9, 0.3], [0.5, 0.5])
    mu_c = np.tile([0.8, 0.1], (6, 1))
    t = Targets("dars", mu_q, mu_c, np.zeros((6, 2)), True, np.ones((6, 2), int))
    router = KNNRouter(k=2).fit(X, t, lam=0.1, beta=0.0)
    return save_bundle(path, router, enc, ["big", "small"], lam=0.1, beta=0.0,
                       meta={"router_name": "knn"})


class Server:
    """``darsbench-serve`` in a subprocess (real CLI, real port)."""

    def __init__(self, tmp: Path, bundle: Path, stubs: dict[str, Any], *extra: str,
                 model_ids: dict[str, str] | None = None):
        self.tmp = tmp
        ids = model_ids or {n: f"{n}-upstream-id" for n in stubs}
        pool = [{"name": n, "base_url": s.base_url, "model": ids[n],
                 "api_key_env": KEY_ENV if n == "big" else None,
                 "price_in": 1e-6 if n == "big" else 1e-7, "price_out": 2e-6 if n == "big" else 2e-7}
                for n, s in stubs.items()]
        self.pool_file = tmp / "pool.yaml"
        self.pool_file.write_text(yaml.safe_dump({"pool": pool}))
        self.log = tmp / "requests.jsonl"
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, KEY_ENV: KEY, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
        self.out = open(tmp / "server.out", "w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "benchmark.app.serve", "--router", str(bundle), "--pool",
             str(self.pool_file), "--port", str(self.port), "--log", str(self.log),
             "--timeout-s", "5", *extra],
            env=env, stdout=self.out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, (tmp / "server.out").read_text()
            try:
                if httpx.get(self.url + "/v1/models", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.2)
        raise RuntimeError("darsbench-serve did not start")

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)
        self.out.close()


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("serve")
    bundle = make_bundle(tmp / "bundle")
    stubs = {"big": StubUpstream("big").start(), "small": StubUpstream("small").start()}
    server = Server(tmp, bundle, stubs)
    yield server, stubs
    server.close()
    for s in stubs.values():
        s.stop()


def _chat(url: str, **body) -> httpx.Response:
    payload = {"model": "darsbench-route", "messages": [{"role": "user", "content": QUERY}], **body}
    return httpx.post(url + "/v1/chat/completions", json=payload, timeout=30)


def test_chat_is_routed_answered_and_reported(served):
    server, stubs = served
    r = _chat(server.url)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["choices"][0]["message"]["content"] == "answer from big"
    assert r.headers["x-darsbench-model"] == "big" and r.headers["x-darsbench-fallbacks"] == "0"
    info = body["darsbench"]
    assert info["served_by"] == "big" and info["fallback"] is False and info["lam"] == 0.1
    # Predicted utilities are the knn targets of the two math neighbours: 0.9 - 0.08, 0.3 - 0.01.
    assert info["predicted"]["utility"]["big"] == pytest.approx(0.82)
    assert info["predicted"]["utility"]["small"] == pytest.approx(0.29)
    assert json.loads(r.headers["x-darsbench-utilities"]) == info["predicted"]["utility"]
    # The upstream got its own model id and the key from the environment, nothing of ours.
    sent = stubs["big"].requests[-1]
    assert sent["model"] == "big-upstream-id" and "darsbench" not in sent
    assert stubs["big"].headers[-1]["authorization"] == f"Bearer {KEY}"


def test_per_request_lambda_flips_the_decision(served):
    server, stubs = served
    n_small = len(stubs["small"].requests)
    for extra in ({"model": "darsbench-route:lam=1.0"}, {"lambda": 1.0}, {"darsbench": {"lambda": 1.0}}):
        r = _chat(server.url, **extra)
        assert r.status_code == 200, r.text
        assert r.headers["x-darsbench-model"] == "small"
        assert r.json()["choices"][0]["message"]["content"] == "answer from small"
        assert r.json()["darsbench"]["lam"] == 1.0
    assert len(stubs["small"].requests) == n_small + 3
    route = httpx.post(server.url + "/route", json={"query": QUERY, "lambda": 1.0}).json()
    assert route["model"] == "small" and route["ranking"] == ["small", "big"]
    assert httpx.post(server.url + "/route", json={"query": QUERY, "lambda": 0.5}).json()["model"] == "big"
    bad = _chat(server.url, model="darsbench-route:lam=-1")
    assert bad.status_code == 400 and "lam" in bad.json()["error"]["message"]


def test_streaming(served):
    server, _ = served
    payload = {"model": "darsbench-route", "stream": True, "messages": [{"role": "user", "content": QUERY}]}
    with httpx.stream("POST", server.url + "/v1/chat/completions", json=payload, timeout=30) as r:
        assert r.status_code == 200 and r.headers["x-darsbench-model"] == "big"
        assert r.headers["content-type"].startswith("text/event-stream")
        events = [line[6:] for line in r.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert chunks[0]["darsbench"]["served_by"] == "big"
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
    assert text == "answer from big"


def test_models_health_log_and_report(served):
    server, _ = served
    models = httpx.get(server.url + "/v1/models").json()["data"]
    assert [m["id"] for m in models] == ["darsbench-route"] and models[0]["pool"] == ["big", "small"]
    health = httpx.get(server.url + "/health")
    assert health.status_code == 200 and health.json()["reachable"] == {"big": True, "small": True}
    time.sleep(0.2)  # the streamed request is logged when its stream closes
    rows = [json.loads(line) for line in server.log.read_text().splitlines()]
    chats = [r for r in rows if r["kind"] == "chat"]
    assert len(chats) >= 5
    first = chats[0]
    assert first["served_by"] == "big" and first["prompt_tokens"] == 11 and first["completion_tokens"] == 7
    assert first["cost_usd"] == pytest.approx(11 * 1e-6 + 7 * 2e-6)
    assert first["latency_ms"] >= first["overhead_ms"] > 0
    assert all("prompt" not in r for r in rows)  # no prompt without --log-prompts
    table = report(server.log)
    assert table.loc["total", "requests"] == len(chats)
    assert table.loc["small", "requests"] == 3
    assert table.loc["small", "cost_usd"] == pytest.approx(3 * (11 * 1e-7 + 7 * 2e-7))
    out = subprocess.run([sys.executable, "-m", "benchmark.app.serve", "report", str(server.log)],
                         capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert out.returncode == 0 and "| small | 3 |" in out.stdout


def test_fallback_when_an_upstream_stops_then_503(tmp_path):
    bundle = make_bundle(tmp_path / "bundle")
    stubs = {"big": StubUpstream("big").start(), "small": StubUpstream("small").start()}
    server = Server(tmp_path, bundle, stubs, "--log-prompts")
    try:
        assert _chat(server.url).headers["x-darsbench-model"] == "big"
        stubs["big"].stop()  # the chosen model goes away mid-test
        r = _chat(server.url)
        assert r.status_code == 200 and r.headers["x-darsbench-model"] == "small"
        info = r.json()["darsbench"]
        assert info["routed_to"] == "big" and info["served_by"] == "small"
        assert info["fallback"] is True and info["tries"][0]["model"] == "big"
        assert "error" in info["tries"][0] and info["tries"][1] == {"model": "small", "status": 200}
        assert r.headers["x-darsbench-fallbacks"] == "1"
        stubs["small"].status = 500  # the other one fails too: nothing left
        r = _chat(server.url)
        assert r.status_code == 503
        err = r.json()["error"]
        assert err["type"] == "no_upstream_available" and [t["model"] for t in err["tries"]] == ["big", "small"]
        assert httpx.get(server.url + "/health").json()["reachable"]["big"] is False
        stubs["small"].stop()
        assert httpx.get(server.url + "/health").status_code == 503
    finally:
        server.close()
        for s in stubs.values():
            s.stop()
    rows = [json.loads(line) for line in server.log.read_text().splitlines()]
    assert [r["status"] for r in rows] == [200, 200, 503]
    assert rows[0]["prompt"] == QUERY  # --log-prompts
    # The key never reaches a file: log, bundle, pool file, server output.
    for f in tmp_path.rglob("*"):
        if f.is_file():
            assert KEY.encode() not in f.read_bytes(), f


def test_key_never_written(served):
    server, _ = served
    for f in server.tmp.rglob("*"):
        if f.is_file():
            assert KEY.encode() not in f.read_bytes(), f


def test_pool_file_errors_name_the_field(tmp_path):
    p = tmp_path / "pool.yaml"
    p.write_text(yaml.safe_dump({"pool": [{"name": "big", "base_url": "http://x/v1", "model": "m",
                                           "api_key": "sk-abcdefghijkl"}]}))
    with pytest.raises(ServeError, match=r"pool\[0\]\.api_key: keys never go in files"):
        load_pool(p, ["big"])
    p.write_text(yaml.safe_dump([{"name": "big", "base_url": "http://x/v1", "model": "m", "price_in": -1}]))
    with pytest.raises(ServeError, match=r"pool\[0\]\.price_in"):
        load_pool(p, ["big"])
    p.write_text(yaml.safe_dump([{"name": "big", "base_url": "http://x/v1", "model": "m"}]))
    with pytest.raises(ServeError, match=r"missing \['small'\]"):
        load_pool(p, ["big", "small"])
    # A collection config is a valid pool file.
    pool = load_pool(REPO / "conf" / "collect" / "tinypool.yaml", ["smollm2-135m-instruct", "gemma-3-270m"])
    assert pool["gemma-3-270m"].price_out == 4e-8


def test_routing_setting():
    assert routing_setting({"model": "darsbench-route"}, 0.1, 0.2) == (0.1, 0.2)
    assert routing_setting({"model": "darsbench-route:lam=0.3,beta=0"}, 0.1, 0.2) == (0.3, 0.0)
    assert routing_setting({"model": "darsbench-route:lam=0.3", "lambda": 0.5}, 0.1, 0.2) == (0.5, 0.2)
    with pytest.raises(ValueError, match="model"):
        routing_setting({"model": "gpt-4"}, 0.1, 0.2)
    with pytest.raises(ValueError, match="unknown setting"):
        routing_setting({"model": "darsbench-route:temp=1"}, 0.1, 0.2)


@pytest.mark.parametrize("mode", ["thread", "inline"])
def test_routing_modes_and_plain_asyncio_h11_serve_the_same(tmp_path, mode):
    """--route-in thread / inline over the standard-library loop and h11: same decisions, and
    the log's timing fields (the arrival is stamped by the middleware under h11)."""
    bundle = make_bundle(tmp_path / "bundle")
    stubs = {"big": StubUpstream("big").start(), "small": StubUpstream("small").start()}
    server = Server(tmp_path, bundle, stubs, "--route-in", mode, "--route-workers", "2",
                    "--loop", "asyncio", "--http", "h11")
    try:
        assert _chat(server.url).headers["x-darsbench-model"] == "big"
        assert _chat(server.url, model="darsbench-route:lam=1.0").headers["x-darsbench-model"] == "small"
    finally:
        server.close()
        for s in stubs.values():
            s.stop()
    rows = [json.loads(line) for line in server.log.read_text().splitlines()]
    assert [r["served_by"] for r in rows] == ["big", "small"]
    for r in rows:
        assert r["batch"] == 1 and 0 < r["route_ms"] and 0 < r["route_wait_ms"] <= r["overhead_ms"]


def test_relay_splits_lines_across_chunk_boundaries():
    """The relay's line reader over a real socket that cuts lines (and a CRLF) across writes."""
    long = "x" * 200_000  # longer than aiohttp's own readline limit
    pieces = [b"data: {\"a\"", b": 1}\r", b"\n\r\ndata: " + long.encode(), b"\n\n", b"data: [DONE]"]

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n")
        for piece in pieces:
            writer.write(piece)
            await writer.drain()
            await asyncio.sleep(0.01)  # separate TCP segments
        writer.close()

    async def main() -> list[str]:
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{port}/") as resp:
            lines = [line async for line in _lines(resp)]
        server.close()
        await server.wait_closed()
        return lines

    assert asyncio.run(main()) == ['data: {"a": 1}', "", "data: " + long, "", "data: [DONE]"]
