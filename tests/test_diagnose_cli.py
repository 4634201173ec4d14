"""``darsbench-diagnose`` on a tiny simulated dataset: numbers equal the pure functions',
the router-variance histogram comes from real single-shot runs, and a multirun combines
datasets into one table and figure set."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from benchmark.data.dataset import normalise_costs
from benchmark.app.diagnose import diagnostics_markdown, run_diagnose
from evaluators.diagnostics import diagnose, variance_decomposition

REPO = Path(__file__).resolve().parents[1]
CONF = REPO / "conf"
TINY = "dataset.overrides={n_train:30,n_test:20}"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _cfg(overrides: list[str]):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="diagnose", overrides=["features=tfidf", TINY, *overrides])


def _png(path: Path) -> None:
    assert path.exists(), path
    assert path.read_bytes()[:8] == PNG_MAGIC


def test_diagnose_config_composes():
    cfg = _cfg([])
    assert cfg.histogram.enabled and cfg.histogram.n_draws == 100 and cfg.histogram.metric == "rU"
    assert cfg.align == "position" and cfg.cost.lam == 0.05
    assert cfg.dataset._target_.endswith("SyntheticSource")


def test_diagnose_runs_cells_and_writes_everything(cache_dir, tmp_path):
    cfg = _cfg(["histogram.n_draws=4", "cost.lam=0.1"])
    out = tmp_path / "diag"
    payload = run_diagnose(cfg, out, "knn")
    # Same numbers as the pure functions on the same (normalised) training block.
    data = normalise_costs(instantiate(cfg.dataset).load(cache_dir), "minmax")
    ref = diagnose(data.train, 0.1)
    for k in ("outcome_instability", "winner_flip_rate", "single_vs_da_disagreement",
              "variance_input_side", "variance_output_side", "variance_total"):
        assert payload["diagnostics"][k] == pytest.approx(ref[k]), k
    pm = variance_decomposition(data.train, per_model=True)["per_model"]
    assert payload["per_model"]["input_side"] == pytest.approx(np.asarray(pm["input_side"]).tolist())
    # Fig. 2(c): the per-draw values are the single-shot cell's, the line is the dars cell's.
    ss = json.loads((out / "cells" / "single_shot" / "results.json").read_text())
    dars = json.loads((out / "cells" / "dars" / "results.json").read_text())
    rv = payload["router_variance"]
    assert rv["values"] == ss["per_draw"]["rU"] and len(rv["values"]) == 4
    assert rv["dars_value"] == pytest.approx(dars["metrics"]["rU"]["mean"])
    assert rv["summary"]["mean"] == pytest.approx(np.mean(rv["values"]))
    assert ss["cost"]["lam"] == 0.1 and ss["router"] == "knn"
    # Files.
    saved = json.loads((out / "diagnostics.json").read_text())
    assert saved["diagnostics"]["winner_flip_rate"] == pytest.approx(ref["winner_flip_rate"])
    for name in ("instability.png", "variance.png", "draw_histogram.png"):
        _png(out / name)
    md = (out / "diagnostics.md").read_text()
    assert "| synthetic |" in md and "winner flip rate" in md and "Router variance" in md
    csv = pd.read_csv(out / "diagnostics.csv")
    assert csv.loc[0, "winner_flip_rate"] == pytest.approx(ref["winner_flip_rate"])
    assert csv.loc[0, "draws"] == 4


def test_histogram_from_an_existing_results_file(cache_dir, tmp_path):
    first = run_diagnose(_cfg(["histogram.n_draws=3"]), tmp_path / "a", "knn")
    cells = tmp_path / "a" / "cells"
    # A folder holding a single_shot and a dars run: both are found.
    cfg = _cfg([f"histogram.results={cells}"])
    second = run_diagnose(cfg, tmp_path / "b", "knn")
    assert second["router_variance"]["source"] == "files"
    assert second["router_variance"]["values"] == first["router_variance"]["values"]
    assert second["router_variance"]["dars_value"] == first["router_variance"]["dars_value"]
    assert not (tmp_path / "b" / "cells").exists()
    _png(tmp_path / "b" / "draw_histogram.png")
    # Only the single-shot file: no DARS line, and the run says so.
    cfg = _cfg([f"histogram.results={cells / 'single_shot' / 'results.json'}"])
    with pytest.warns(UserWarning, match="no dars run"):
        third = run_diagnose(cfg, tmp_path / "c", "knn")
    assert third["router_variance"]["dars_value"] is None


def test_histogram_disabled_and_bad_file(cache_dir, tmp_path):
    payload = run_diagnose(_cfg(["histogram.enabled=false"]), tmp_path / "a", "knn")
    assert payload["router_variance"] is None
    assert not (tmp_path / "a" / "draw_histogram.png").exists()
    _png(tmp_path / "a" / "instability.png")
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "results.json").write_text(json.dumps({"supervision": "dars", "dataset": {"name": "s"}}))
    with pytest.raises(ValueError, match="no single_shot results.json"):
        run_diagnose(_cfg([f"histogram.results={tmp_path / 'x'}"]), tmp_path / "b", "knn")


def test_paper_reference_for_lookalikes():
    payload = {
        "dataset": {"name": "gpqa_like", "models": []},
        "diagnostics": {k: 0.5 for k in (
            "outcome_instability", "winner_flip_rate", "single_vs_da_disagreement",
            "variance_input_side", "variance_output_side", "variance_total", "variance_input_share")}
        | {"lam": 0.05, "align": "position"},
    }
    md = diagnostics_markdown([payload])
    assert "gpqa_like: outcome instability 0.715, winner flip rate 0.97" in md


def test_console_multirun_combines_datasets(tmp_path):
    sweep = tmp_path / "sweep"
    env = {**os.environ, "DARSBENCH_CACHE": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "1"}
    exe = Path(sys.executable).with_name("darsbench-diagnose")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "benchmark.app.diagnose"]
    proc = subprocess.run(
        [*cmd, "-m", "dataset.name=dA,dB", "features=tfidf", "histogram.n_draws=3", TINY,
         f"hydra.sweep.dir={sweep}"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert len(list(sweep.glob("*/diagnostics.json"))) == 2
    md = (sweep / "diagnostics.md").read_text()
    assert md.startswith("<!-- generated at the end of the sweep: darsbench-diagnose -m ")
    assert "| dA |" in md and "| dB |" in md
    for name in ("instability.png", "variance.png", "draw_histogram_dA.png", "draw_histogram_dB.png"):
        _png(sweep / name)
    assert "combined diagnostics" in proc.stdout
