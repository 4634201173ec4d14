"""Per-draw training summaries (issue 15): regret and accuracy on the training queries, the
routers' own fit statistics, and their place in results.json on a tiny run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from routers.official.avengers_pro import OfficialAvengersProRouter
from routers.summary import fit_stats, training_fit, training_summary
from supervision.modes import Targets

REPO = Path(__file__).resolve().parents[1]
TINY = "dataset.overrides={n_train:40,n_test:30}"


def test_training_fit_by_hand():
    u = np.array([[0.5, 0.7], [0.2, 0.2], [np.nan, 0.3]])
    got = training_fit(u, np.array([0, 1, 1]))
    # regrets 0.2, 0 (a tie counts as correct), 0 (NaN is no candidate)
    np.testing.assert_allclose(got["train_regret"], [0.2 / 3])
    np.testing.assert_allclose(got["train_accuracy"], [2 / 3])
    np.testing.assert_array_equal(got["train_unjudged"], [0])
    # choosing the model without a target: that query leaves both means and is counted
    got = training_fit(u, np.array([0, 1, 0]))
    np.testing.assert_allclose(got["train_regret"], [0.1])
    np.testing.assert_allclose(got["train_accuracy"], [0.5])
    np.testing.assert_array_equal(got["train_unjudged"], [1])
    # two draws: one value each
    two = training_fit(np.stack([u[:2], u[:2][:, ::-1]]), np.array([[1, 0], [1, 0]]))
    np.testing.assert_allclose(two["train_regret"], [0.0, 0.1])
    np.testing.assert_allclose(two["train_accuracy"], [1.0, 0.5])


class _Member:
    def __init__(self, **stats):
        self.fit_stats_ = stats


class _Router:
    def __init__(self, members):
        self.members_ = members


def test_fit_stats_per_draw_and_mismatch_error():
    assert fit_stats(_Router([_Member(loss=1.0), _Member(loss=0.5)])) == {"loss": [1.0, 0.5]}
    assert fit_stats(_Router([_Member(), _Member()])) == {}
    with pytest.raises(ValueError, match="'loss' is recorded for some draws only"):
        fit_stats(_Router([_Member(loss=1.0), _Member()]))


def test_avengers_cluster_statistics_and_summary():
    # 6 training points in two tight groups, 3 clusters requested: sizes add up to 6.
    X = np.array([[0.0], [0.1], [0.2], [5.0], [5.1], [5.2]])
    q = np.array([[1, 0], [1, 0], [1, 0], [0, 1], [0, 1], [0, 1]], float)
    t = Targets("dars", q, np.zeros_like(q), np.zeros_like(q), True, np.ones(q.shape, np.int64), ("a", "b"))
    r = OfficialAvengersProRouter(n_clusters=3, top_k=1).fit(X, t, seed=0)
    s = r.members_[0].fit_stats_
    assert s["n_clusters"] == 3 and s["empty_clusters"] == 0
    assert s["min_cluster_size"] >= 1 and s["max_cluster_size"] <= 3
    summ = training_summary(r, X, t, 0.05, 0.2)
    # each training point's nearest cluster holds its own group only: perfect routing
    assert summ["train_regret"] == [0.0] and summ["train_accuracy"] == [1.0]
    assert summ["n_clusters"] == [3.0]


def test_results_json_has_per_draw_training_summary(tmp_path):
    out = tmp_path / "run"
    env = {**os.environ, "DARSBENCH_CACHE": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline"}
    args = ["router=avengers_pro_official", "router.n_clusters=8", "supervision=single_shot",
            "supervision.n_draws=3", "features=tfidf", TINY, "seed=42", f"hydra.run.dir={out}", "print_table=false"]
    proc = subprocess.run([sys.executable, "-m", "benchmark.app.cli", *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    fit = json.loads((out / "results.json").read_text())["training"]["fit"]
    assert set(fit) == {"train_regret", "train_accuracy", "train_unjudged", "n_clusters",
                        "empty_clusters", "min_cluster_size", "max_cluster_size"}
    for v in fit.values():
        assert len(v["per_draw"]) == 3 and v["n"] == 3
        assert v["mean"] == pytest.approx(np.mean(v["per_draw"]))
        assert v["std"] == pytest.approx(np.std(v["per_draw"], ddof=1))
    assert fit["n_clusters"]["per_draw"] == [8.0, 8.0, 8.0]
    assert all(0.0 <= a <= 1.0 for a in fit["train_accuracy"]["per_draw"])
    assert all(r >= 0.0 for r in fit["train_regret"]["per_draw"])
