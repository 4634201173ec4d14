"""Retries, per-item errors, the budget stop and key hygiene against a scripted local server."""

from __future__ import annotations

from decimal import Decimal

import pytest
from benchmark.app import collect as cli
from benchmark.app.collect import run_cli
from benchmark.collect.client import Budget, backoff_delay
from benchmark.collect.config import RequestConfig
from benchmark.collect.store import Store
from benchmark.collect.testing import FakeOpenAIServer, read_rows, write_fake_config


def test_429_then_200_is_retried(tmp_path):
    with FakeOpenAIServer(statuses=[429, 200]) as srv:
        assert run_cli(write_fake_config(tmp_path, srv.base_url)) == 0
        assert srv.status_log == [429, 200]
    (row,) = read_rows(tmp_path)
    assert row["output_text"] == "Final Answer: 42" and row["finish_reason"] == "stop"
    with Store(tmp_path / "work", lock=False) as st:
        (g,) = list(st.iter_generations())
        assert g["attempts"] == 2
        assert st.errors() == []


def test_5xx_sequence_then_success(tmp_path):
    with FakeOpenAIServer(statuses=[500, 503, 502, 200]) as srv:
        assert run_cli(write_fake_config(tmp_path, srv.base_url, max_retries=3)) == 0
        assert srv.status_log == [500, 503, 502, 200]
    assert len(read_rows(tmp_path)) == 1


def test_timeouts_are_retried(tmp_path):
    # Every answer takes 0.5 s; the client gives up after 0.1 s, retries, then records the item.
    with FakeOpenAIServer(delay_s=0.5) as srv:
        assert run_cli(write_fake_config(tmp_path, srv.base_url, max_retries=1, timeout_s=0.1)) == cli.EXIT_INCOMPLETE
        assert len(srv.requests) == 2
    with Store(tmp_path / "work", lock=False) as st:
        (err,) = st.errors()
        assert "Timeout" in err["error"] and err["status"] is None


def test_client_error_is_recorded_run_continues_and_next_run_retries(tmp_path):
    path = write_fake_config(tmp_path, "http://127.0.0.1:1/v1", train=3, rewrites=1, decodes=1)
    with FakeOpenAIServer(statuses=[400]) as srv:
        path = write_fake_config(tmp_path, srv.base_url, train=3, rewrites=1, decodes=1)
        assert run_cli(path) == cli.EXIT_INCOMPLETE
        assert srv.status_log.count(400) == 1 and len(srv.requests) == 3  # a 400 is not retried
        assert len(read_rows(tmp_path)) == 2
        with Store(tmp_path / "work", lock=False) as st:
            (err,) = st.errors()
            assert err["status"] == 400 and err["stage"] == "generate"
        assert run_cli(path) == 0  # the failed item is retried
        assert len(srv.requests) == 4
    out = read_rows(tmp_path)
    assert len(out) == 3 and len({r["generation_key"] for r in out}) == 3


def test_retries_exhausted_are_recorded(tmp_path):
    with FakeOpenAIServer(statuses=[429] * 3) as srv:
        path = write_fake_config(tmp_path, srv.base_url, max_retries=2)
        assert run_cli(path) == cli.EXIT_INCOMPLETE
        assert len(srv.requests) == 3
        assert run_cli(path) == 0
    assert len(read_rows(tmp_path)) == 1


def test_budget_stops_before_it_is_exceeded(tmp_path, capsys):
    # price_in 0 and price_out 0.01 USD: worst case = actual = 5 tokens x 0.01 = 0.05 USD per call.
    with FakeOpenAIServer(completion_tokens=5) as srv:
        path = write_fake_config(tmp_path, srv.base_url, train=2, rewrites=2, decodes=2, price_out=0.01)
        assert run_cli(path, "--budget-usd", "0.12") == cli.EXIT_BUDGET
        assert len(srv.requests) == 2  # a third call could cost 0.15 > 0.12: never sent
        assert "budget reached" in capsys.readouterr().out
        with Store(tmp_path / "work", lock=False) as st:
            assert st.count_generations() == 2
            assert st.total_spend_usd() == pytest.approx(0.10)
        # `total` scope counts the 0.10 already spent: 0.18 leaves room for one more call.
        assert run_cli(path, "--budget-usd", "0.18", "--budget-scope", "total") == cli.EXIT_BUDGET
        assert len(srv.requests) == 3
        assert run_cli(path, "--budget-usd", "1.0") == 0
        assert len(srv.requests) == 8
    out = read_rows(tmp_path)
    assert len(out) == 8 and sum(r["cost"] for r in out) == pytest.approx(0.40)
    assert all(r["usage"]["cost"] == pytest.approx(0.05) for r in out)


def test_budget_reserves_worst_case_including_prompt():
    b = Budget(1.0)
    assert b.reserve(Decimal("0.6"))
    assert not b.reserve(Decimal("0.5"))  # 0.6 reserved + 0.5 > 1.0
    assert b.exhausted
    b.settle(Decimal("0.6"), Decimal("0.2"))
    assert b.spent == Decimal("0.2") and b.reserved == 0
    assert b.reserve(Decimal("0.8"))
    assert not Budget(0.3, already_spent_usd=0.25).reserve(Decimal("0.1"))
    assert Budget(None).reserve(Decimal("1e9"))


def test_backoff_is_seeded_and_capped():
    cfg = RequestConfig(backoff_base_s=1.0, backoff_max_s=8.0, seed=0)
    d = [backoff_delay(cfg, "k", a) for a in range(6)]
    assert d == [backoff_delay(cfg, "k", a) for a in range(6)]  # same key, same delays
    assert all(0.5 <= d[0] < 1.5 for _ in [0]) and max(d) <= 8.0
    assert backoff_delay(cfg, "k", 0) != backoff_delay(cfg, "other", 0)
    assert backoff_delay(cfg, "k", 0, retry_after=5.0) >= 5.0


def test_key_is_read_from_env_and_never_written(tmp_path, monkeypatch):
    secret = "sk-test-SECRET-0123456789"
    monkeypatch.setenv("DARSBENCH_FAKE_KEY", secret)
    with FakeOpenAIServer(statuses=[401], echo_auth=True) as srv:
        path = write_fake_config(tmp_path, srv.base_url, train=2, test=1, test_views=True, key_env="DARSBENCH_FAKE_KEY")
        assert run_cli(path) == cli.EXIT_INCOMPLETE
        assert run_cli(path) == 0
        assert all(h.get("authorization") == f"Bearer {secret}" for h in srv.headers)
    with Store(tmp_path / "work", lock=False) as st:
        (err,) = st.errors()
        assert err["status"] == 401 and "***" in err["error"] and secret not in err["error"]
    for f in list((tmp_path / "out").rglob("*")) + list((tmp_path / "work").rglob("*")) + [path]:
        if f.is_file():
            assert secret.encode() not in f.read_bytes(), f


def test_missing_key_env_stops_before_any_request(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("DARSBENCH_MISSING_KEY", raising=False)
    with FakeOpenAIServer() as srv:
        path = write_fake_config(tmp_path, srv.base_url, key_env="DARSBENCH_MISSING_KEY")
        assert run_cli(path) == cli.EXIT_CONFIG
        assert srv.requests == []
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["darsbench-collect: environment variable DARSBENCH_MISSING_KEY (API key of m) is not set or empty"]
    assert not (tmp_path / "work").exists()


def test_concurrency_limit_is_respected(tmp_path):
    import threading

    active = 0
    peak = 0
    lock = threading.Lock()

    def answer(body):
        nonlocal active, peak
        import time

        with lock:
            active += 1
            peak = max(peak, active)
        time.sleep(0.05)
        with lock:
            active -= 1
        return "Final Answer: 1"

    with FakeOpenAIServer(answer=answer) as srv:
        assert run_cli(write_fake_config(tmp_path, srv.base_url, train=4, rewrites=2, decodes=2, concurrency=3)) == 0
        assert len(srv.requests) == 16
    assert peak == 3
