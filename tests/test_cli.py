"""End-to-end runs of the ``darsbench`` CLI on a small simulated dataset (real subprocesses)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
TINY = "dataset.overrides={n_train:40,n_test:30}"


def _run(args: list[str], cwd: Path, cache: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "DARSBENCH_CACHE": str(cache), "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline"}
    proc = subprocess.run(
        [sys.executable, "-m", "benchmark.app.cli", *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def test_single_cell_writes_results_and_decisions(tmp_path):
    cache = tmp_path / "cache"
    out = tmp_path / "run"
    proc = _run(
        ["router=knn", "supervision=dars", "features=tfidf", TINY, "cost.lam=0.1", "seed=3",
         f"hydra.run.dir={out}"],
        tmp_path, cache,
    )
    assert "| knn | dars |" in proc.stdout
    res = json.loads((out / "results.json").read_text())
    assert res["router"] == "knn" and res["supervision"] == "dars" and res["seed"] == 3
    assert res["cost"]["lam"] == 0.1 and res["config"]["cost"]["lam"] == 0.1
    assert res["dataset"]["n_train_queries"] == 40 and res["dataset"]["n_test_queries"] == 30
    for key in ("rU", "dU", "rQ", "dQ", "rC", "dC", "tU", "gap_rU", "gap_dU"):
        assert key in res["metrics"], key
    assert res["versions"]["numpy"] and "total" in res["timings_s"]
    b = res["baselines"]
    assert b["oracle"]["rU"] >= res["metrics"]["rU"]["mean"] >= b["random"]["rU"] - 0.2
    assert b["oracle"]["rU"] >= b["best_fixed"]["rU"]
    # The frontier point at the run's own lambda is the cell itself.
    fr = res["frontier"]
    i = fr["lams"].index(0.1)
    for view in ("r", "d"):
        assert fr[view + "Q"][i] == pytest.approx(res["metrics"][view + "Q"]["mean"], abs=1e-12)
        assert fr[view + "C"][i] == pytest.approx(res["metrics"][view + "C"]["mean"], abs=1e-12)
    dec = pd.read_parquet(out / "decisions.parquet")
    assert len(dec) == 30 and set(dec["chosen"]) <= set(res["dataset"]["models"])
    assert {f"mu_q[{m}]" for m in res["dataset"]["models"]} <= set(dec.columns)
    # No temporary files left behind by the atomic writes.
    assert not list(out.glob(".*.tmp"))


def test_same_seed_same_numbers(tmp_path):
    cache = tmp_path / "cache"
    runs = []
    for i in range(2):
        out = tmp_path / f"run{i}"
        _run(["router=knn", "supervision=single_shot", "supervision.n_draws=5", "features=tfidf",
              TINY, f"hydra.run.dir={out}"], tmp_path, cache)
        runs.append(json.loads((out / "results.json").read_text()))
    assert runs[0]["metrics"] == runs[1]["metrics"]
    assert runs[0]["per_draw"]["rU"] == runs[1]["per_draw"]["rU"]
    assert len(runs[0]["per_draw"]["rU"]) == 5


def test_multirun_grid_builds_leaderboard(tmp_path):
    cache = tmp_path / "cache"
    sweep = tmp_path / "sweep"
    proc = _run(
        ["-m", "router=knn,mlp", "supervision=single_shot,dars", "supervision.n_draws=3",
         "features=tfidf", TINY, f"hydra.sweep.dir={sweep}"],
        tmp_path, cache,
    )
    results = sorted(sweep.rglob("results.json"))
    assert len(results) == 4
    board = (sweep / "leaderboard.md").read_text()
    for row in ("| knn | dars |", "| knn | single_shot |", "| mlp | dars |", "| oracle |"):
        assert row in board
    assert (sweep / "leaderboard.csv").exists()
    assert "| mlp | single_shot |" in proc.stdout


ROUTERS = sorted(p.stem for p in (REPO / "conf" / "router").glob("*.yaml"))


@pytest.mark.parametrize("router", ROUTERS)
def test_every_router_runs_end_to_end(router, tmp_path, monkeypatch):
    """Each router config, composed as the CLI does, runs single_shot (2 draws) and dars."""
    from hydra import compose, initialize_config_dir

    from benchmark.app.cli import run_from_config

    assert len(ROUTERS) >= 7
    monkeypatch.setenv("DARSBENCH_CACHE", str(tmp_path / "cache"))
    for mode in ("single_shot", "dars"):
        with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
            cfg = compose(
                config_name="config",
                overrides=[f"router={router}", f"supervision={mode}", "supervision.n_draws=2",
                           "features=tfidf", "dataset.overrides={n_train:30,n_test:12}",
                           f"cache_dir={tmp_path / 'cache'}"],
            )
        out = tmp_path / mode
        res = run_from_config(cfg, out, router)
        assert res["router"] == router and res["supervision"] == mode
        assert res["n_draws"] == (2 if mode == "single_shot" else 1)
        assert 0.0 <= res["metrics"]["rQ"]["mean"] <= 1.0
        assert len(res["frontier"]["lams"]) == len(res["frontier"]["rQ"])
        dec = pd.read_parquet(out / "decisions.parquet")
        assert len(dec) == 12 * res["n_draws"]
        per_model = [c for c in dec.columns if c.startswith(("mu_q[", "score["))]
        assert len(per_model) == len(res["dataset"]["models"])


def test_bad_data_file_gives_one_clear_line_and_exit_2(tmp_path):
    """A bad release file stops the CLI with the loader's file:line:field message, no traceback."""
    src = REPO / "benchmark" / "data" / "datasets" / "tinypool" / "tinypool"
    bad = tmp_path / "release" / "toy"
    bad.mkdir(parents=True)
    lines = (src / "train_scored_generations.jsonl").read_text().splitlines()
    row = json.loads(lines[16])
    row["score"] = 1.5
    lines[16] = json.dumps(row)
    (bad / "train_scored_generations.jsonl").write_text("\n".join(lines) + "\n")
    (bad / "test_scored_generations.jsonl").write_text((src / "test_scored_generations.jsonl").read_text())
    env = {**os.environ, "DARSBENCH_CACHE": str(tmp_path / "cache")}
    proc = subprocess.run(
        [sys.executable, "-m", "benchmark.app.cli", "dataset=dars", "dataset.name=toy",
         f"dataset.data_dir={tmp_path / 'release'}", "features=tfidf", f"hydra.run.dir={tmp_path / 'out'}"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 2
    assert "toy/train_scored_generations.jsonl:17: field 'score': value 1.5 is outside [0, 1]" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "out" / "results.json").exists()
