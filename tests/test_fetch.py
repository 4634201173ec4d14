"""darsbench-fetch against a fake Hub on 127.0.0.1: the real huggingface_hub code path
(download, cache hit, offline use, revision pinning, release-facts mismatch). No internet."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from fake_hub import FakeHub
from hydra import compose, initialize_config_dir

from benchmark.app import fetch as cli
from benchmark.app.cli import run_from_config
from benchmark.data.fetch import REPO_ID, REVISION, ReleaseUnavailable, fetch_release

REPO = Path(__file__).resolve().parents[1]
OTHER = "1" * 40  # a second commit of the fake repo
MODELS = ["model-a", "model-b"]


def _release(name: str, n_train_q: int, score_shift: int = 0) -> dict[str, bytes]:
    """A tiny release dataset in the official layout: train 5 x 5, test 3 + 3 rows per pair."""
    train, test = [], []
    for q in range(n_train_q):
        for i, m in enumerate(MODELS):
            for v in range(5):
                for d in range(5):
                    train.append({"dataset": name, "split": "train", "query_id": f"tr{q}", "model": m,
                                  "prompt_variant_id": v, "decode_id": d, "score": float((q + i + d + score_shift) % 2),
                                  "cost": 0.001 * (i + 1), "original_question": f"question {q}?"})
    for q in range(2):
        for i, m in enumerate(MODELS):
            for v in range(3):
                test.append({"dataset": name, "split": "test", "query_id": f"te{q}", "model": m, "prompt_variant_id": v,
                             "decode_id": 0, "observation_type": "prompt_variation", "score": float((q + v) % 2),
                             "cost": 0.001 * (i + 1), "original_question": f"test {q}?"})
            for d in range(3):
                test.append({"dataset": name, "split": "test", "query_id": f"te{q}", "model": m, "prompt_variant_id": -1,
                             "decode_id": d, "observation_type": "decoding_variation", "score": float((q + d + i) % 2),
                             "cost": 0.001 * (i + 1), "original_question": f"test {q}?"})
    lines = lambda rows: "".join(json.dumps(r) + "\n" for r in rows).encode()  # noqa: E731
    return {f"{name}/train_scored_generations.jsonl": lines(train), f"{name}/test_scored_generations.jsonl": lines(test),
            f"{name}/metadata.json": json.dumps({"models": MODELS}).encode()}


@pytest.fixture()
def hub(monkeypatch):
    files = {**_release("gpqa", 3), **_release("math-500", 2)}
    with FakeHub(REPO_ID, {REVISION: files, OTHER: _release("gpqa", 4, score_shift=1)}, {"main": OTHER}) as h:
        monkeypatch.setenv("HF_ENDPOINT", h.endpoint)
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        yield h


def test_download_then_cache_hit_then_offline(hub, tmp_path, capsys, monkeypatch):
    cache = tmp_path / "cache"
    assert cli.main(["gpqa", "--cache-dir", str(cache), "--no-progress"]) == cli.EXIT_DIFFERS  # tiny: facts differ
    out = capsys.readouterr().out
    assert f"gpqa: downloaded revision {REVISION}" in out
    assert "150 train rows, 24 test rows, 3 training queries, 2 models" in out
    assert "DIFFERS" in out and "150 train rows, release has 30000" in out and "3 training queries, release has 200" in out
    n = len(hub.requests)
    snapshot = cache / "hub" / "datasets--AIGNLAI--DARS" / "snapshots" / REVISION / "gpqa"
    assert (snapshot / "train_scored_generations.jsonl").read_bytes() == hub.commits[REVISION]["gpqa/train_scored_generations.jsonl"]
    # cache hit: nothing asked of the server
    assert cli.main(["gpqa", "--cache-dir", str(cache), "--no-progress"]) == cli.EXIT_DIFFERS
    assert "gpqa: cached" in capsys.readouterr().out and len(hub.requests) == n
    # offline: the cached copy, or one line with the manual command
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert fetch_release("gpqa", cache_root=cache).from_cache
    assert cli.main(["math-500", "--cache-dir", str(cache)]) == cli.EXIT_UNAVAILABLE
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "offline" in err[0] and "hf download AIGNLAI/DARS --repo-type dataset" in err[0]
    assert len(hub.requests) == n


def test_revision_pinning(hub, tmp_path):
    cache = tmp_path / "cache"
    pinned = fetch_release("gpqa", cache_root=cache, progress=False)
    other = fetch_release("gpqa", revision="main", cache_root=cache, progress=False)
    assert pinned.data_dir.name == REVISION and other.data_dir.name == OTHER
    assert (other.data_dir / "gpqa" / "train_scored_generations.jsonl").read_bytes() == \
        hub.commits[OTHER]["gpqa/train_scored_generations.jsonl"]
    assert (pinned.data_dir / "gpqa" / "train_scored_generations.jsonl").read_bytes() != \
        (other.data_dir / "gpqa" / "train_scored_generations.jsonl").read_bytes()
    with pytest.raises(ReleaseUnavailable, match="revision '2222222222222222222222222222222222222222' does not exist"):
        fetch_release("gpqa", revision="2" * 40, cache_root=cache, progress=False)
    with pytest.raises(ReleaseUnavailable, match="drop-800/train_scored_generations.jsonl is not in"):
        fetch_release("drop-800", cache_root=cache, progress=False)


def test_unreachable_hub_is_one_line_not_a_hang(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens on port 9
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    with pytest.raises(ReleaseUnavailable) as exc:
        fetch_release("gpqa", cache_root=tmp_path, progress=False)
    assert "hf download" in str(exc.value) and "\n" not in str(exc.value)


def _cfg(cache: Path, *extra: str):
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        return compose(config_name="config", overrides=["dataset=dars", "dataset.name=gpqa", "router=knn", "features=tfidf",
                                                       "supervision=dars", f"cache_dir={cache}", *extra])


def test_darsbench_uses_the_cache_and_downloads_on_first_use(hub, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # darsbench's default
    with pytest.raises(ReleaseUnavailable, match="darsbench-fetch gpqa"):
        run_from_config(_cfg(cache), tmp_path / "run0", "knn")
    res = run_from_config(_cfg(cache, "dataset.download=true"), tmp_path / "run1", "knn")
    assert res["dataset"]["n_train_queries"] == 3
    n = len(hub.requests)
    res2 = run_from_config(_cfg(cache), tmp_path / "run2", "knn")  # no data_dir, no download: the cache
    assert len(hub.requests) == n and res2["metrics"]["rU"] == res["metrics"]["rU"]


def test_cli_offline_without_cache_exits_2_in_one_line(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "DARSBENCH_CACHE": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-m", "benchmark.app.cli", "dataset=dars", "dataset.name=drop-800",
                           f"hydra.run.dir={tmp_path / 'run'}"], capture_output=True, text=True, env=env, timeout=300)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and "darsbench-fetch drop-800" in lines[0], proc.stderr


def test_help_lists_every_target(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    out = capsys.readouterr().out
    for target in ("dars", "gpqa", "math-500", "drop-800"):
        assert f"  {target} " in out
