"""Each experiment config composes, and its sweep is the one the issue asks for."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from benchmark.data.simulator import PRESETS

REPO = Path(__file__).resolve().parents[1]
CONF = REPO / "conf"
DATASETS = "gpqa_like,math_like,drop_like"
MODES = "single_shot,input_only,output_only,dars_no_risk,dars_rewrite_risk,dars_decode_risk,dars"

EXPECTED = {
    "table1": {"router": "glob(*,exclude=*_official)", "supervision": "single_shot,dars", "dataset": DATASETS},
    "ablation": {"router": "mirt", "supervision": MODES, "dataset": DATASETS},
    "protocol": {"protocol": "1x1,1x5,3x3,5x1,5x5", "supervision": "dars", "router": "knn",
                 "dataset": DATASETS},
    "risk": {"cost.beta": "0,0.05,0.1,0.2,0.3,0.5", "supervision": "dars", "router": "knn",
             "dataset": DATASETS},
    "frontier": {"router": "glob(*,exclude=*_official)", "supervision": "single_shot,dars", "dataset": DATASETS},
    "budget": {"arm": "single_shot,dars_1x5,dars_5x1,dars_3x3,dars_5x5", "train.budget": "225,450,900",
               "router": "knn", "dataset": DATASETS},
    "learning_curve": {"train.n_queries": "25,50,100,200,400", "supervision": "single_shot,dars",
                       "router": "knn", "dataset": DATASETS},
    "paper_parity": {"router": "knn_official,avengers_pro_official,mlp_official,embedllm_official,mirt_official,graphrouter_official,rm_softmax_official",
                     "supervision": "single_shot,dars", "dataset": DATASETS},
}


def _compose(overrides: list[str]):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="config", overrides=overrides, return_hydra_config=True)


def _options(group: str) -> set[str]:
    return {p.stem for p in (CONF / group).glob("*.yaml")}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_experiment_composes_with_its_sweep(name):
    cfg = _compose([f"experiment={name}"])
    params = {k: str(v) for k, v in cfg.hydra.sweeper.params.items()}
    assert params == EXPECTED[name]
    # Every value the sweep names is an option of its group (or a valid value).
    for key, value in params.items():
        if key in ("router", "supervision", "dataset", "protocol", "arm") and not value.startswith("glob("):
            for v in value.split(","):
                assert v in _options(key), f"{key}={v}: no conf/{key}/{v}.yaml"
    # `darsbench experiment=<name>` runs the sweep without -m.
    assert cfg.hydra.mode.name == "MULTIRUN"
    # The experiment's first line says it is global (a small diff of the main config).
    assert (CONF / "experiment" / f"{name}.yaml").read_text().startswith("# @package _global_")


def test_every_experiment_is_covered():
    assert _options("experiment") - {"quickstart"} == set(EXPECTED)


def test_sweep_overrides_compose_each_job():
    """One job of each sweep composes with its overrides (what the launcher does)."""
    jobs = {
        "table1": ["router=knn", "supervision=single_shot", "dataset=gpqa_like"],
        "ablation": ["router=knn", "supervision=dars_decode_risk", "dataset=drop_like"],
        "protocol": ["protocol=3x3", "supervision=dars", "dataset=math_like"],
        "risk": ["cost.beta=0.3", "supervision=dars", "dataset=math_like"],
        "frontier": ["router=knn", "supervision=dars", "dataset=gpqa_like"],
    }
    for name, job in jobs.items():
        cfg = _compose([f"experiment={name}", *job])
        assert cfg.dataset.name == cfg.dataset.preset
        assert cfg.dataset.name in ("gpqa_like", "math_like", "drop_like")
    cfg = _compose(["experiment=protocol", "protocol=3x3"])
    assert (cfg.protocol.n_rewrites, cfg.protocol.n_decodes) == (3, 3)
    assert _compose(["experiment=risk", "cost.beta=0.3"]).cost.beta == 0.3


def test_frontier_has_a_dense_lambda_grid():
    lams = list(_compose(["experiment=frontier"]).frontier.lams)
    assert lams == sorted(lams) and lams[0] == 0.0 and 0.05 in lams and len(lams) >= 20
    # The other experiments keep the default grid.
    assert len(_compose(["experiment=table1"]).frontier.lams) == len(_compose([]).frontier.lams)


@pytest.mark.parametrize("name", ["gpqa_like", "math_like", "drop_like"])
def test_preset_datasets_have_distinct_names(name):
    cfg = _compose([f"dataset={name}"])
    assert cfg.dataset.name == name and cfg.dataset.preset == name
    src = instantiate(cfg.dataset)
    assert name in PRESETS, f"simulator preset {name!r} missing from benchmark.data.simulator.PRESETS"
    assert src.simulator_config() == PRESETS[name]


def test_experiment_runs_as_a_sweep_without_dash_m(tmp_path):
    """`darsbench experiment=quickstart` (no -m) runs the four cells of its grid."""
    import json
    import os
    import subprocess
    import sys

    env = {**os.environ, "DARSBENCH_CACHE": str(tmp_path / "cache")}
    sweep = tmp_path / "sweep"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmark.app.cli", "experiment=quickstart", "features=tfidf",
         "dataset.overrides={n_train:30,n_test:12}", "supervision.n_draws=2", "router=knn",
         f"hydra.sweep.dir={sweep}"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    cells = sorted(json.loads(p.read_text())["supervision"] for p in sweep.glob("*/results.json"))
    assert cells == ["dars", "single_shot"]
    assert (sweep / "leaderboard.md").exists() and (sweep / "sweep_manifest.json").exists()


def test_command_line_wins_over_experiment_params():
    """`darsbench -m experiment=ablation router=knn`: Hydra's basic sweeper keys both by
    override key, the command line last, so the ablation runs knn."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    cfg = _compose(["experiment=ablation"])
    params = [f"{k}={v}" for k, v in cfg.hydra.sweeper.params.items()] + ["router=knn"]
    batches = BasicSweeper.split_arguments(OverridesParser.create().parse_overrides(params), None)[0]
    assert len(batches) == 7 * 3
    assert all("router=knn" in job for job in batches)
