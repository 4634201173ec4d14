"""Equal-budget and learning-curve bookkeeping (evaluators/budget.py and the run loop): every arm
of a budget uses exactly B training generations per model, counted from the observations the
targets were built from; the leaderboard draws the budget and learning-curve tables."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir

from benchmark.app.cli import run_from_config
from benchmark.data.dataset import ObservationBlock, apply_protocol, normalise_costs
from evaluators import leaderboard as L
from evaluators.budget import generations_per_pair, generations_used, training_queries
from supervision.modes import make_targets

REPO = Path(__file__).resolve().parents[1]
SMALL = ["features=tfidf", "dataset.overrides={n_train:50,n_test:20}", "supervision.n_draws=3",
         "bootstrap.resamples=200", "frontier.lams=[]"]


def _block(q: int = 4, m: int = 2, v: int = 5, s: int = 5) -> ObservationBlock:
    shape = (q, m, v, s)
    return ObservationBlock(np.zeros(shape), np.zeros(shape), np.ones(shape, bool),
                            np.arange(v), np.arange(s))


def test_generations_per_pair_and_training_queries():
    b = apply_protocol(_block(q=40), 3, 3)
    assert generations_per_pair(b, "single_shot") == 1
    assert generations_per_pair(b, "dars") == 9
    assert training_queries(b, "dars", budget=27) == 3
    assert training_queries(b, "single_shot", budget=27) == 27
    assert training_queries(b, "dars", n_queries=10) == 10
    assert training_queries(b, "dars") is None
    with pytest.raises(ValueError, match="not a whole number"):
        training_queries(b, "dars", budget=10)
    with pytest.raises(ValueError, match="needs 45 training queries; the data has 40"):
        training_queries(b, "single_shot", budget=45)
    with pytest.raises(ValueError, match="not both"):
        training_queries(b, "dars", n_queries=3, budget=9)
    ragged = _block()
    ragged.present[0, 0, 0, 0] = False
    with pytest.raises(ValueError, match="same number of observations"):
        generations_per_pair(ragged, "dars")


def test_generations_used_counts_observations_per_draw():
    b = apply_protocol(_block(q=6, m=3), 1, 5).subset_queries(np.arange(4))
    dars = make_targets(b, "dars")
    assert generations_used(dars.n_obs, dars.n_draws) == {"total": 4 * 3 * 5, "per_model": 20.0}
    ss = make_targets(b, "single_shot", n_draws=7, seed=0)
    assert generations_used(ss.n_obs, ss.n_draws) == {"total": 4 * 3, "per_model": 4.0}


def _run(out: Path, cache: Path, overrides: list[str]) -> dict:
    os.environ["DARSBENCH_CACHE"] = str(cache)
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose(config_name="config", overrides=[*SMALL, *overrides])
    res = run_from_config(cfg, out, "knn")
    res["_path"] = str(out / "results.json")
    return res


def test_every_budget_arm_uses_exactly_b_generations(tmp_path):
    cache = tmp_path / "cache"
    budget = 45
    arms = {"single_shot": budget, "dars_1x5": 9, "dars_5x1": 9, "dars_3x3": 5}
    runs = {}
    for arm, n_queries in arms.items():
        res = _run(tmp_path / arm, cache, [f"arm={arm}", f"train.budget={budget}"])
        runs[arm] = res
        tr = res["training"]
        assert tr["n_queries"] == n_queries
        assert tr["generations"]["per_model"] == budget
        n_models = len(res["dataset"]["models"])
        assert tr["generations"]["total"] == budget * n_models
    # Independent count from the data: the first n training queries under the arm's protocol hold
    # exactly n * M * R * D present observations.
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose(config_name="config", overrides=SMALL)
    from hydra.utils import instantiate

    data = normalise_costs(instantiate(cfg.dataset).load(cache), "minmax")
    block = apply_protocol(data.train, 3, 3).subset_queries(np.arange(5))
    assert int(block.present.sum()) == budget * data.n_models
    # 5 x 5 needs 45 / 25 queries: not a whole number, an error rather than a rounding.
    with pytest.raises(ValueError, match="not a whole number"):
        _run(tmp_path / "bad", cache, ["arm=dars_5x5", f"train.budget={budget}"])
    rep = L.build_leaderboards([tmp_path / a for a in arms], tmp_path / "lb", plots=True)
    tabs = rep.tables["budget"]
    tu = next(t for t in tabs if ": tU," in t.title).frame.set_index("arm")
    assert tu.loc["dars 3x3", "45"] == pytest.approx(runs["dars_3x3"]["metrics"]["tU"]["mean"])
    assert tu.loc["dars 3x3", "45 generations"] == 45 and tu.loc["dars 3x3", "45 queries"] == 5
    assert tu.loc["single_shot", "45 low"] == runs["single_shot"]["metrics"]["tU"]["ci"][0]
    assert any(p.name.startswith("budget_tU_") for p in rep.files)
    # Paired differences at equal budget: each arm minus single_shot on the same test queries.
    (d,) = rep.tables["budget_diff"]
    row = d.frame.set_index("arm").loc["dars 3x3"]
    want = runs["dars_3x3"]["metrics"]["tU"]["mean"] - runs["single_shot"]["metrics"]["tU"]["mean"]
    assert row["diff"] == pytest.approx(want, abs=1e-12) and row["low"] <= row["diff"] <= row["high"]
    assert len(d.frame) == 3 and (d.frame["correction"] == "holm").all()


def test_learning_curve_uses_the_first_n_training_queries(tmp_path):
    cache = tmp_path / "cache"
    outs = []
    for n in (10, 40):
        for mode in ("single_shot", "dars"):
            res = _run(tmp_path / f"{mode}{n}", cache, [f"supervision={mode}", f"train.n_queries={n}"])
            assert res["training"]["n_queries"] == n and res["training"]["n_queries_asked"] == n
            outs.append(tmp_path / f"{mode}{n}")
    rep = L.build_leaderboards(outs, tmp_path / "lb", plots=False)
    titles = [t.title for t in rep.tables["learning_curve"]]
    assert titles == ["Learning curve: tU, knn on synthetic", "Learning curve: rU, knn on synthetic"]
    f = rep.tables["learning_curve"][0].frame.set_index("supervision")
    assert list(f.index) == ["single_shot", "dars"] and {"10", "40"} <= set(f.columns)
    with pytest.raises(ValueError, match="needs 60 training queries; the data has 50"):
        _run(tmp_path / "big", cache, ["train.n_queries=60"])
