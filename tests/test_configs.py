"""Every config in every group composes and instantiates the object it names, with the values it
sets; shared blocks come from conf/common; the Hydra and paths groups do what they say."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hydra import compose, initialize_config_dir
from hydra.utils import get_class, instantiate
from omegaconf import OmegaConf

from benchmark.app import resolvers
from benchmark.app.loggers import CsvLogger, NullLogger
from benchmark.data.simulator import PRESETS
from benchmark.data.sources import DarsDirSource, SyntheticSource
from benchmark.features import Featurizer
from routers.base import Router

REPO = Path(__file__).resolve().parents[1]
CONF = REPO / "conf"
#: Groups a user picks from (conf/common holds shared blocks, conf/collect is not a Hydra group).
GROUPS = ("cost", "dataset", "experiment", "features", "logger", "paths", "protocol", "router", "supervision")
MODES = ("single_shot", "input_only", "output_only", "dars_no_risk", "dars_rewrite_risk",
         "dars_decode_risk", "dars")
ROUTERS = ("knn", "mlp", "embedllm", "mirt", "rm_softmax", "graphrouter", "avengers_pro")


def _options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def _compose(overrides: list[str], name: str = "config"):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name=name, overrides=overrides, return_hydra_config=True)


CASES = [(g, o) for g in GROUPS for o in _options(g)]


def test_groups_are_the_documented_ones():
    groups = {p.name for p in CONF.iterdir() if p.is_dir()}
    assert groups == set(GROUPS) | {"common", "hydra", "collect"}
    assert set(_options("supervision")) == set(MODES)
    # A router of the paper without its config, or a preset without its simulator entry, fails.
    assert set(ROUTERS) <= set(_options("router"))
    for preset in ("gpqa_like", "math_like", "drop_like"):
        assert preset in _options("dataset") and preset in PRESETS


@pytest.mark.parametrize(("group", "option"), CASES, ids=[f"{g}={o}" for g, o in CASES])
def test_config_composes_and_instantiates(group, option):
    overrides = [f"{group}={option}"]
    if (group, option) == ("dataset", "dars"):
        overrides.append("dataset.data_dir=/nonexistent")
    cfg = _compose(overrides)
    assert cfg.hydra.runtime.choices[group] == option if group != "experiment" else True
    assert cfg.supervision.mode in MODES
    assert {"lam", "beta", "norm"} <= set(cfg.cost)
    node = cfg[group] if group in cfg else None
    if group == "dataset":
        obj = instantiate(node)
        assert isinstance(obj, (SyntheticSource, DarsDirSource)) and obj.name == node.name
        if isinstance(obj, SyntheticSource):
            assert obj.simulator_config() == PRESETS[obj.preset]
    elif group == "router":
        obj = instantiate(node)
        assert isinstance(obj, Router)
        params = obj.get_params() if hasattr(obj, "get_params") else vars(obj)
        for key, value in OmegaConf.to_container(node, resolve=True).items():
            if key.startswith("_") or key not in params or isinstance(value, dict):
                continue
            got = params[key]
            assert (list(got) if isinstance(got, tuple) else got) == value, (option, key)
    elif group == "features":
        obj = instantiate(node)
        assert isinstance(obj, Featurizer)
        assert type(obj).__name__ == {"tfidf": "TfidfFeaturizer", "minilm": "MiniLMFeaturizer"}[option]
    elif group == "logger":
        cls = get_class(node._target_)
        if option == "wandb":
            assert cls.__name__ == "WandbLogger" and node.mode in ("offline", "online", "disabled")
        else:
            obj = instantiate(node)
            assert isinstance(obj, {"none": NullLogger, "csv": CsvLogger}[option])
    elif group == "supervision":
        assert node.mode == option and node.n_draws == 100
    elif group == "protocol":
        want = (None, None) if option == "full" else tuple(int(x) for x in option.split("x"))
        assert (node.n_rewrites, node.n_decodes) == want
    elif group == "cost":
        assert (node.lam, node.beta, node.norm) == (0.05, 0.2, "minmax")
    elif group == "paths":
        assert node.output_dir and node.multirun_dir and cfg.cache_dir == node.cache_dir
    elif group == "experiment":
        assert cfg.hydra.mode.name == "MULTIRUN" and cfg.hydra.sweeper.params


def test_supervision_and_dataset_files_share_their_blocks():
    """Each supervision file sets only `mode`; each simulated dataset only `name` and `preset`."""
    for mode in MODES:
        raw = yaml.safe_load((CONF / "supervision" / f"{mode}.yaml").read_text())
        assert raw == {"defaults": ["/common/supervision@_here_", "_self_"], "mode": mode}
    for name in ("synthetic", "gpqa_like", "math_like", "drop_like"):
        raw = yaml.safe_load((CONF / "dataset" / f"{name}.yaml").read_text())
        assert set(raw) == {"defaults", "name", "preset"}
        cfg = _compose([f"dataset={name}"])
        assert cfg.dataset._target_.endswith("SyntheticSource") and cfg.dataset.seed == 0
    # A shared default changes every option at once.
    assert _compose(["supervision=dars", "supervision.n_draws=7"]).supervision.n_draws == 7


def test_diagnose_shares_run_settings_and_hydra_group():
    run, diag = _compose([]), _compose([], name="diagnose")
    for key in ("seed", "cache_dir", "decisions_format", "threads"):
        assert run[key] == diag[key], key
    assert run.hydra.job.config.override_dirname == diag.hydra.job.config.override_dirname
    assert diag.paths.output_dir == "outputs/diagnose" and run.paths.output_dir == "outputs"
    assert list(diag.hydra.callbacks) == ["diagnose"] and list(run.hydra.callbacks) == ["leaderboard"]
    assert run.hydra.output_subdir is None and diag.hydra.output_subdir == ".hydra"
    assert "resume" in run and "resume" not in diag


def test_run_dirs_are_unique_per_process_and_sort_by_time():
    cfg = _compose([])
    OmegaConf.resolve(cfg.hydra.run)
    stamp = resolvers.run_stamp()
    assert cfg.hydra.run.dir == f"outputs/{stamp}"
    date, rest = stamp.split("/")
    hms, micro, pid = rest.rsplit("-", 2)
    assert len(date) == 10 and len(hms) == 8 and len(micro) == 6 and pid == str(__import__("os").getpid())


def test_job_folder_names_never_nest():
    assert resolvers.safe_name("dataset.data_dir=/data/release,router=knn") == \
        "dataset.data_dir=_data_release,router=knn"
    assert "/" not in resolvers.safe_name("a=../../x")
    long = resolvers.safe_name("x=" + "y" * 500)
    assert len(long) == resolvers.MAX_NAME and long != resolvers.safe_name("x=" + "y" * 499)
    cfg = _compose(["dataset=dars", "dataset.data_dir=/abs/path/release"])
    assert cfg.hydra.job.override_dirname == "dataset.data_dir=/abs/path/release,dataset=dars"
    subdir = OmegaConf.to_container(cfg.hydra.sweep, resolve=False)["subdir"]
    with_num = OmegaConf.create({"hydra": {"job": {"num": 3, "override_dirname": cfg.hydra.job.override_dirname},
                                           "sweep": {"subdir": subdir}}})
    assert with_num.hydra.sweep.subdir == "3_dataset.data_dir=_abs_path_release,dataset=dars"
    # Overrides that never change numbers stay out of the folder name.
    assert _compose(["resume=true", "threads=2"]).hydra.job.override_dirname == ""


def test_launcher_configs():
    ray = _compose(["hydra/launcher=ray"]).hydra.launcher
    assert ray._target_.endswith("RayLauncher") and ray.ray.init.address is None
    assert ray.ray.remote.num_cpus == 1
    assert _compose(["hydra/launcher=ray", "hydra.launcher.ray.init.address=auto",
                     "+hydra.launcher.ray.init.num_cpus=2"]).hydra.launcher.ray.init.num_cpus == 2
    slurm = _compose(["hydra/launcher=slurm", "hydra.launcher.partition=cpu"]).hydra.launcher
    assert slurm._target_.endswith("SlurmLauncher") and slurm.partition == "cpu"
    assert (slurm.timeout_min, slurm.cpus_per_task) == (60, 4)
    local = _compose(["hydra/launcher=submitit_local"]).hydra.launcher
    assert local._target_.endswith("LocalLauncher")
