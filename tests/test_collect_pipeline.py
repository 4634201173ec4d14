"""End-to-end collection against a scripted local server: schema, LLM rewriter, resume rules."""

from __future__ import annotations

import json
import re

import pytest

from benchmark.app import collect as cli
from benchmark.app.collect import run_cli
from benchmark.collect.store import Store, StoreLockedError
from benchmark.collect.testing import FakeOpenAIServer, read_rows, write_fake_config

REQUIRED = ("dataset", "split", "query_id", "model", "score", "cost", "prompt_variant_id", "decode_id",
            "original_question", "input_question", "question", "context", "passage", "usage", "request_config",
            "finish_reason", "score_type", "parse_success", "output_text", "predicted_answer")


def answer_from_question(body):
    """Answers right when the question has an even first number, wrong otherwise."""
    text = body["messages"][-1]["content"] if "messages" in body else body["prompt"].rsplit("Question:", 1)[-1]
    nums = [int(n) for n in re.findall(r"\d+", text)]
    return f"Final Answer: {nums[0] if nums else 0}"


def test_schema_views_and_metadata(tmp_path):
    with FakeOpenAIServer(answer=answer_from_question) as srv:
        path = write_fake_config(tmp_path, srv.base_url, train=3, test=2, rewrites=2, decodes=2, test_views=True,
                            price_in=1e-6, price_out=2e-6)
        assert run_cli(path) == 0
    train, test = read_rows(tmp_path, "train"), read_rows(tmp_path, "test")
    assert len(train) == 3 * 2 * 2 and len(test) == 2 * (2 + 2)
    for r in train + test:
        for f in REQUIRED:
            assert f in r, f
        assert set(r["usage"]) == {"prompt_tokens", "completion_tokens", "total_tokens", "cost"}
        assert r["usage"]["cost"] == pytest.approx(10 * 1e-6 + 5 * 2e-6) == pytest.approx(r["cost"])
        assert {"temperature", "top_p", "max_tokens", "seed"} <= set(r["request_config"])
    assert "observation_type" not in train[0]
    pv = [r for r in test if r["observation_type"] == "prompt_variation"]
    dv = [r for r in test if r["observation_type"] == "decoding_variation"]
    assert sorted({r["prompt_variant_id"] for r in pv}) == [0, 1] and {r["decode_id"] for r in pv} == {0}
    assert {r["prompt_variant_id"] for r in dv} == {-1} and sorted({r["decode_id"] for r in dv}) == [0, 1]
    assert sorted({r["request_config"]["temperature"] for r in dv}) == [0.3, 1.0]
    assert all(r["input_question"] == r["original_question"] for r in dv)
    assert all(r["input_question"] != r["original_question"] for r in pv + train)
    meta = json.loads((tmp_path / "out" / "fake" / "metadata.json").read_text())
    assert meta["models"] == ["m"] and meta["model_info"]["m"]["price_in"] == 1e-6
    report = json.loads((tmp_path / "out" / "fake_validity.json").read_text())
    assert report["complete"] is True
    assert report["splits"]["train"]["generations"]["duplicate_keys"] == 0
    assert report["splits"]["train"]["generations"]["rescore_agreement"] == 1.0
    assert (tmp_path / "out" / "fake_validity.md").read_text().startswith("# Validity report: fake")


def test_rerun_sends_nothing_and_rewrites_identical_files(tmp_path):
    with FakeOpenAIServer() as srv:
        path = write_fake_config(tmp_path, srv.base_url, train=2, test=1, rewrites=2, decodes=2, test_views=True)
        assert run_cli(path) == 0
        first = (tmp_path / "out" / "fake" / "train_scored_generations.jsonl").read_bytes()
        n = len(srv.requests)
        assert run_cli(path) == 0
        assert len(srv.requests) == n
    assert (tmp_path / "out" / "fake" / "train_scored_generations.jsonl").read_bytes() == first


def test_changed_split_is_refused(tmp_path, capsys):
    with FakeOpenAIServer() as srv:
        path = write_fake_config(tmp_path, srv.base_url, train=2)
        assert run_cli(path) == 0
        assert cli.main(["--config", str(path), "--no-progress", "split.seed=5"]) == cli.EXIT_CONFIG
    assert "prepared from a different source" in capsys.readouterr().err


def test_changed_decoding_makes_new_keys_and_keeps_old_records(tmp_path, capsys):
    with FakeOpenAIServer() as srv:
        path = write_fake_config(tmp_path, srv.base_url, train=2)
        assert run_cli(path) == 0
        assert run_cli(path, "decoding.temperature=0.9") == 0
        assert "not in the current plan" in capsys.readouterr().out
    out = read_rows(tmp_path)
    assert len(out) == 2 and {r["request_config"]["temperature"] for r in out} == {0.9}
    with Store(tmp_path / "work", lock=False) as st:
        assert st.count_generations() == 4


def test_work_dir_lock(tmp_path):
    with Store(tmp_path / "w"):
        with pytest.raises(StoreLockedError, match="another darsbench-collect"):
            Store(tmp_path / "w")
    Store(tmp_path / "w").close()  # released


def test_stages_subset_and_bad_stage(tmp_path, capsys):
    with FakeOpenAIServer() as srv:
        path = write_fake_config(tmp_path, srv.base_url, train=2)
        assert cli.main(["--config", str(path), "--no-progress", "--stages", "prepare,rewrite"]) == 0
        assert srv.requests == []
        assert cli.main(["--config", str(path), "--no-progress", "--stages", "fly"]) == cli.EXIT_CONFIG
        assert run_cli(path) == 0
    assert len(read_rows(tmp_path)) == 2


def test_llm_rewriter_retries_a_flagged_rewrite(tmp_path):
    calls = {"rewrite": 0}

    def answer(body):
        system = body["messages"][0]["content"]
        if system.startswith("Paraphrase"):
            calls["rewrite"] += 1
            question = body["messages"][1]["content"].split("Question to rewrite:\n", 1)[1].split("\n", 1)[0]
            if calls["rewrite"] == 1:
                return "Rewrite: a question with no numbers at all"  # drops the quantities: flagged, retried
            return f"Rewrite: Please work out: {question} (variant {calls['rewrite']})"
        return "Final Answer: 1"

    import yaml

    with FakeOpenAIServer(answer=answer) as srv:
        path = write_fake_config(tmp_path, srv.base_url, train=1, rewrites=2)
        cfg = yaml.safe_load(path.read_text())
        cfg["rewriter"] = {"kind": "llm", "max_attempts": 3, "constraints": "Keep it short.",
                           "endpoint": {"name": "rw", "base_url": srv.base_url, "model": "rw", "price_in": 0, "price_out": 0}}
        path.write_text(yaml.safe_dump(cfg))
        assert run_cli(path) == 0
    with Store(tmp_path / "work", lock=False) as st:
        rws = st.rewrites("train")
    assert len(rws) == 2
    assert rws[0]["attempts"] == 2 and rws[0]["flags"] == [] and rws[0]["method"] == "llm:rw"
    assert "Please work out" in rws[0]["text"] and rws[0]["text"] != rws[1]["text"]
    out = read_rows(tmp_path)
    assert {r["rewrite_method"] for r in out} == {"llm:rw"}


def test_collected_files_load_with_the_foundation_loader(tmp_path):
    loader = pytest.importorskip("benchmark.data.loader", reason="benchmark.data.loader (the foundation loader) is not there yet")
    with FakeOpenAIServer(answer=answer_from_question) as srv:
        path = write_fake_config(tmp_path, srv.base_url, train=3, test=2, rewrites=2, decodes=2, test_views=True,
                            price_in=1e-6, price_out=2e-6)
        assert run_cli(path) == 0
    ds = loader.load_dars_dir(tmp_path / "out", "fake", cache_dir=tmp_path / "cache")
    assert list(ds.models) == ["m"]
    assert ds.train.score.shape == (3, 1, 2, 2) and ds.train.n_observations == 12
    assert ds.test_rewrite.n_observations == 4 and ds.test_decoding.n_observations == 4
    assert list(ds.test_decoding.view_ids) == [-1]


def test_changed_prices_are_reported(tmp_path, capsys):
    with FakeOpenAIServer() as srv:
        path = write_fake_config(tmp_path, srv.base_url, train=1, price_out=0.01)
        assert run_cli(path) == 0
        assert run_cli(path, "pool.0.price_out=0.02") == 0
        assert "model prices changed" in capsys.readouterr().out
    (row,) = read_rows(tmp_path)
    assert row["cost"] == pytest.approx(0.05)  # as billed at the first price


def test_ctrl_c_stops_cleanly_and_resumes(tmp_path):
    import signal
    import sqlite3
    import subprocess
    import sys
    import time

    # One request at a time, 0.25 s each: after the third record ~5 s of work remain, so the
    # interrupt always lands mid-run even on a loaded machine.
    with FakeOpenAIServer(delay_s=0.25) as srv:
        path = write_fake_config(tmp_path, srv.base_url, train=4, rewrites=2, decodes=3)  # 24 calls
        # A background job of a non-interactive shell (as CI may run us) inherits SIGINT as
        # *ignored*, and Python then installs no KeyboardInterrupt handler: restore the default.
        proc = subprocess.Popen([sys.executable, "-m", "benchmark.app.collect", "--config", str(path), "--no-progress"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        db = tmp_path / "work" / "collect.sqlite"
        deadline = time.monotonic() + 60
        n = 0
        while n < 3 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
            if db.exists():
                try:
                    con = sqlite3.connect(db, timeout=5)
                    n = con.execute("SELECT COUNT(*) FROM generations").fetchone()[0]
                    con.close()
                except sqlite3.OperationalError:
                    n = 0
        assert proc.poll() is None
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == cli.EXIT_INTERRUPTED, err
        assert b"interrupted; completed items are saved" in err
        with Store(tmp_path / "work", lock=False) as st:
            assert 3 <= st.count_generations() < 24
            assert st.conn.execute("SELECT status FROM runs").fetchone()[0] == "interrupted"
        assert run_cli(path) == 0
    out = read_rows(tmp_path)
    assert len(out) == 24 and len({r["generation_key"] for r in out}) == 24
