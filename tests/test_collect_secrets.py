"""Secrets never land anywhere, stale runs, and the darsbench-collect command line (Hydra)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from benchmark.app import collect as cli
from benchmark.app.collect import run_cli
from benchmark.collect.client import scrub, secret_forms
from benchmark.collect.config import looks_like_credential
from benchmark.collect.store import Store
from benchmark.collect.testing import FakeOpenAIServer, read_rows, write_fake_config

KEYS = [
    "sk-test-SECRET-0123456789abcdef",
    "hf_AbCdEfGhIjKlMnOpQrStUvWxYz012345",
    'k3y"with\\quote/slash+plus=eq',
    "ghp_0123456789abcdefABCDEF0123456789abcd",
]


def _all_files(root: Path) -> list[Path]:
    return [f for f in root.rglob("*") if f.is_file()]


@pytest.mark.parametrize("secret", KEYS)
def test_no_form_of_the_key_in_any_written_file(tmp_path, monkeypatch, secret):
    monkeypatch.setenv("DARSBENCH_FAKE_KEY", secret)
    # 401 with the credential quoted back, then a 500 burst: errors stored, then success.
    with FakeOpenAIServer(statuses=[401, 500, 500, 500, 500], echo_auth=True) as srv:
        path = write_fake_config(tmp_path, srv.base_url, train=2, test=1, test_views=True, key_env="DARSBENCH_FAKE_KEY",
                                 max_retries=1)
        assert run_cli(path) == cli.EXIT_INCOMPLETE
        assert run_cli(path) == 0
        assert all(h.get("authorization") == f"Bearer {secret}" for h in srv.headers)
    with Store(tmp_path / "work", lock=False) as st:
        errors = st.errors()
        assert len(errors) >= 2 and any("***" in e["error"] for e in errors)
    files = _all_files(tmp_path)
    assert any(f.suffix == ".sqlite" for f in files) and any(f.name == "config.yaml" for f in files)
    assert any(f.name == "fake_validity.md" for f in files)
    for form in secret_forms(secret):
        for f in files:
            assert form.encode() not in f.read_bytes(), (form, f)


def test_secret_forms_cover_escaped_quoted_and_stripped():
    key = 'ab"c\\d\r\n'
    forms = secret_forms(key)
    assert 'ab"c\\d' in forms  # stripped
    assert 'ab\\"c\\\\d\\r\\n' in forms  # JSON-escaped
    assert "ab\"c\\\\d\\r\\n" in forms  # repr-escaped
    text = f"bad header {key!r} / {json.dumps(key)} / {key.strip()} / Bearer%20{'ab%22c%5Cd%0D%0A'}"
    assert scrub(text, key).count("***") == 4 and "ab" not in scrub(text, key).replace("***", "")


@pytest.mark.parametrize(
    ("value", "what"),
    [("sk-abc123456\n", "whitespace"), ("sk-abc123456\r", "whitespace"), (" sk-abc123456", "whitespace"),
     ("sk-abcé123456", "non-ASCII"), ("sk-abc\x01123456", "control"), ("", "not set")],
)
def test_bad_key_in_env_is_one_line_naming_the_variable(tmp_path, monkeypatch, capsys, value, what):
    monkeypatch.setenv("DARSBENCH_FAKE_KEY", value)
    with FakeOpenAIServer() as srv:
        path = write_fake_config(tmp_path, srv.base_url, key_env="DARSBENCH_FAKE_KEY")
        assert run_cli(path) == cli.EXIT_CONFIG
        assert srv.requests == []
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "DARSBENCH_FAKE_KEY" in err and what in err
    if value.strip():
        assert value.strip() not in err
    assert not (tmp_path / "work").exists()


@pytest.mark.parametrize(
    "patch",
    [
        {"api_key": "x"},
        {"extra_body": {"headers": {"Authorization": "Bearer x"}}},
        {"extra_body": {"access_token": "x"}},
        {"extra_body": {"nested": [{"clientSecret": "x"}]}},
        {"extra_body": {"password": "x"}},
        {"extra_body": {"X-Api-Key": "x"}},
        {"extra_body": {"note": "sk-live-0123456789abcdef"}},
    ],
)
def test_credential_fields_are_refused_at_any_depth(tmp_path, capsys, patch):
    path = write_fake_config(tmp_path, "http://127.0.0.1:9/v1")
    cfg = yaml.safe_load(path.read_text())
    cfg["pool"][0].update(patch)
    path.write_text(yaml.safe_dump(cfg))
    assert run_cli(path) == cli.EXIT_CONFIG
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pool[0]" in err[0] and ("credential" in err[0] or "API key" in err[0])
    assert not (tmp_path / "work").exists()


@pytest.mark.parametrize("override", ["pool.0.extra_body.api_key=abcd1234", "+pool.0.extra_body.token=abcd",
                                      "pool.0.extra_body.note=sk-live-0123456789abcdef"])
def test_credential_overrides_are_refused_before_anything_is_recorded(tmp_path, capsys, override):
    path = write_fake_config(tmp_path, "http://127.0.0.1:9/v1")
    assert run_cli(path, override) == cli.EXIT_CONFIG
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "abcd" not in err and "sk-live" not in err
    assert not (tmp_path / "work").exists()


def test_credential_name_detection():
    for name in ("api_key", "apiKey", "x-api-key", "Authorization", "access_token", "hf_token", "token", "secret",
                 "client_secret", "password", "auth"):
        assert looks_like_credential(name), name
    for name in ("api_key_env", "max_tokens", "top_p", "stop", "temperature", "prompt_tokens", "model"):
        assert not looks_like_credential(name), name


def test_stale_running_record_of_a_dead_process_is_marked_interrupted(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    with FakeOpenAIServer() as srv:
        path = write_fake_config(tmp_path, srv.base_url)
        with Store(tmp_path / "work") as st:
            st.conn.execute("INSERT INTO runs (run_id, started_at, status, argv, pid, host) VALUES "
                            "('dead', 1, 'running', '[]', ?, ?)", (dead.pid, socket.gethostname()))
            st.conn.execute("INSERT INTO runs (run_id, started_at, status, argv, pid, host) VALUES "
                            "('elsewhere', 2, 'running', '[]', ?, 'another-host')", (dead.pid,))
        assert run_cli(path) == 0
    with Store(tmp_path / "work", lock=False) as st:
        status = {r["run_id"]: r["status"] for r in st.runs()}
    assert status["dead"] == "interrupted" and status["elsewhere"] == "running"
    assert sorted(status.values()).count("complete") == 1


def test_hydra_config_name_and_overrides(tmp_path, capsys):
    with FakeOpenAIServer() as srv:
        path = write_fake_config(tmp_path, srv.base_url, train=2)
        code = cli.main(["--config-dir", str(tmp_path), "--config-name", "collect", "++run.progress=false",
                         "split.seed=0", "decoding.max_tokens=7"])
        assert code == 0
        assert {r["request_config"]["max_tokens"] for r in read_rows(tmp_path)} == {7}
    run_dirs = list((tmp_path / "work" / "runs").iterdir())
    saved = yaml.safe_load((run_dirs[0] / "config.yaml").read_text())
    assert saved["decoding"]["max_tokens"] == {"math": 7, "mcq": 7, "reading": 7}
    assert json.loads((run_dirs[0] / "summary.json").read_text())["status"] == "complete"
    assert path.exists()


@pytest.mark.parametrize(
    ("args", "needle"),
    [(["split.seed=1.5"], "split.seed"), (["split.train_size=-1"], "split.train_size"),
     (["budget_usd=nan"], "budget_usd"), (["decoding.temperature=inf"], "decoding.temperature"),
     (["--stages", "fly"], "run.stages"), (["surprise=1"], "surprise"), (["pool.0.endpoint=grpc"], "pool[0].endpoint"),
     (["--budget-scope", "forever"], "run.budget_scope"), (["--bogus"], "--bogus"), (["split.seed"], "key=value")],
)
def test_bad_command_line_is_one_line_exit_2(tmp_path, capsys, args, needle):
    path = write_fake_config(tmp_path, "http://127.0.0.1:9/v1")
    assert run_cli(path, *args) == cli.EXIT_CONFIG
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0] and "Traceback" not in err[0]
    assert not (tmp_path / "work").exists()


def test_hydra_full_error_shows_the_traceback(tmp_path):
    path = write_fake_config(tmp_path, "http://127.0.0.1:9/v1")
    env = {"HYDRA_FULL_ERROR": "1", "PATH": "/usr/bin:/bin", **{k: v for k, v in __import__("os").environ.items()
                                                               if k in ("PYTHONPATH", "HOME", "DARSBENCH_CACHE")}}
    proc = subprocess.run([sys.executable, "-m", "benchmark.app.collect", "--config", str(path), "split.seed=-2"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode != 0 and "Traceback" in proc.stderr and "split.seed" in proc.stderr
