"""The config schema of darsbench / darsbench-diagnose: bad values stop at once with one line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from benchmark.app.schema import ConfigValueError, DiagnoseSchema, RunSchema, check_by_name, validate

CONF = Path(__file__).resolve().parents[1] / "conf"


def _compose(name: str, overrides: list[str]):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name=name, overrides=overrides)


@pytest.mark.parametrize(
    ("overrides", "key", "value", "allowed"),
    [
        (["cost.lam=-1"], "cost.lam", "-1", ">= 0"),
        (["cost.lam=inf"], "cost.lam", "inf", "finite"),
        (["cost.beta=-0.5"], "cost.beta", "-0.5", ">= 0"),
        (["cost.beta=nan"], "cost.beta", "nan", "finite"),
        (["seed=1.5"], "seed", "1.5", "whole number"),
        (["seed=-5"], "seed", "-5", ">= 0"),
        (["seed=true"], "seed", "True", "not a boolean"),
        (["decisions_format=xml"], "decisions_format", "'xml'", "'parquet' or 'csv'"),
        (["supervision.n_draws=0"], "supervision.n_draws", "0", ">= 1"),
        (["cost.norm=bogus"], "cost.norm", "'bogus'", "'minmax', 'max' or 'none'"),
        (["supervision.mode=dars2"], "supervision.mode", "'dars2'", "'single_shot'"),
        (["protocol.n_decodes=0"], "protocol.n_decodes", "0", ">= 1"),
        (["frontier.lams=[0.1,-2]"], "frontier.lams[1]", "-2", ">= 0"),
        (["dataset.preset=nope"], "dataset.preset", "'nope'", "gpqa_like"),
        (["dataset.seed=2.5"], "dataset.seed", "2.5", "whole number"),
        (["router.k=0"], "router.k", "0", ">= 1"),
        (["router=mlp", "router.hidden=[64,0]"], "router.hidden", "[64, 0]", "integers >= 1"),
        (["router=mirt", "router.training.val_fraction=1.5"], "router.training.val_fraction", "1.5", "[0, 1)"),
        (["router=mirt", "router.training.lr=-0.1"], "router.training.lr", "-0.1", "> 0"),
        (["router=mirt", "router.training.n_jobs=0"], "router.training.n_jobs", "0", ">= 1"),
        (["router=mirt", "router.training.early_stopping=3"], "router.training.early_stopping", "3", "true or false"),
        (["features=tfidf", "features.max_features=0"], "features.max_features", "0", ">= 1"),
        (["print_table=2"], "print_table", "2", "boolean"),
    ],
)
def test_bad_values_name_key_value_and_what_is_allowed(overrides, key, value, allowed):
    with pytest.raises(ConfigValueError) as exc:
        validate(_compose("config", overrides), RunSchema)
    msg = str(exc.value)
    assert exc.value.key == key and msg.startswith(f"{key}={value}:") and allowed in msg, msg
    assert "\n" not in msg


def test_every_shipped_config_is_valid():
    names = lambda group: sorted(p.stem for p in (CONF / group).glob("*.yaml"))  # noqa: E731
    for group in ("router", "dataset", "features", "supervision", "protocol", "cost", "logger"):
        for option in names(group):
            validate(_compose("config", [f"{group}={option}"]), RunSchema)
    for exp in names("experiment"):
        validate(_compose("config", [f"experiment={exp}"]), RunSchema)
    validate(_compose("diagnose", []), DiagnoseSchema)


def test_valid_edge_values_are_accepted():
    cfg = validate(_compose("config", ["cost.lam=0", "cost.beta=0", "seed=0", "decisions_format=csv",
                                       "supervision.n_draws=1", "protocol.n_rewrites=1"]), RunSchema)
    assert cfg.cost.lam == 0.0 and cfg.seed == 0 and cfg.decisions_format == "csv"


def test_diagnose_schema():
    for ov, key in ((["align=foo"], "align"), (["histogram.n_draws=0"], "histogram.n_draws"),
                    (["histogram.metric=acc"], "histogram.metric"), (["cost.lam=-0.01"], "cost.lam")):
        with pytest.raises(ConfigValueError) as exc:
            validate(_compose("diagnose", ov), DiagnoseSchema)
        assert exc.value.key == key


def test_by_name_rules_reach_any_depth():
    with pytest.raises(ConfigValueError, match=r"router.training.epochs=0"):
        check_by_name({"training": {"epochs": 0}}, "router")
    with pytest.raises(ConfigValueError, match=r"router.weights\[1\]=nan: must be a finite number"):
        check_by_name({"weights": [1.0, float("nan")]}, "router")
    check_by_name({"training": {"epochs": 3, "lr": 1e-3, "hidden": [8]}}, "router")


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    env.update(extra)
    return env


@pytest.mark.parametrize(("module", "args", "key"), [
    ("benchmark.app.cli", ["cost.lam=inf"], "cost.lam=inf"),
    ("benchmark.app.cli", ["seed=1.5", "router=mlp"], "seed=1.5"),
    ("benchmark.app.diagnose", ["cost.norm=bogus"], "cost.norm='bogus'"),
])
def test_cli_prints_one_line_and_exits_2(tmp_path, module, args, key):
    proc = subprocess.run([sys.executable, "-m", module, *args, f"hydra.run.dir={tmp_path / 'run'}"],
                          capture_output=True, text=True, env=_env(), timeout=300)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and key in lines[0] and "Traceback" not in proc.stderr
    assert not (tmp_path / "run" / "results.json").exists()


def test_hydra_full_error_shows_the_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "benchmark.app.cli", "decisions_format=xml",
                           f"hydra.run.dir={tmp_path / 'run'}"],
                          capture_output=True, text=True, env=_env(HYDRA_FULL_ERROR="1"), timeout=300)
    assert proc.returncode != 0 and "Traceback" in proc.stderr and "decisions_format='xml'" in proc.stderr
