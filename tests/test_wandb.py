"""``logger=wandb``: offline runs under the run folder, grouping and tags, the sweep's
leaderboard artifact, and a clear message without the package. No network anywhere."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from benchmark.app import loggers
from benchmark.app.cli import run_from_config

REPO = Path(__file__).resolve().parents[1]
CONF = REPO / "conf"
TINY = "dataset.overrides={n_train:30,n_test:20}"

pytest.importorskip("wandb")


def _wait_for(path: Path, needles: tuple[bytes, ...], timeout: float = 30.0) -> bytes:
    deadline = time.monotonic() + timeout
    while True:
        data = path.read_bytes()
        if all(n in data for n in needles) or time.monotonic() > deadline:
            return data
        time.sleep(0.2)


def _compose(overrides: list[str]):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="config", overrides=overrides)


@pytest.fixture()
def offline(monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)


def test_logger_configs_compose():
    for name, target in (("none", "NullLogger"), ("csv", "CsvLogger"), ("wandb", "WandbLogger")):
        cfg = _compose([f"logger={name}"])
        assert cfg.logger._target_ == f"benchmark.app.loggers.{target}"
    assert _compose([]).logger._target_.endswith("NullLogger")  # none is the default
    cfg = _compose(["logger=wandb"])
    assert cfg.logger.mode in ("offline", os.environ.get("WANDB_MODE"))
    assert cfg.logger.group is None and cfg.logger.dir is None


def test_offline_run_writes_its_local_folder(cache_dir, tmp_path, offline):
    cfg = _compose(["router=knn", "supervision=single_shot", "supervision.n_draws=3",
                    "features=tfidf", TINY, "logger=wandb", "logger.tags=[extra]"])
    out = tmp_path / "run"
    results = run_from_config(cfg, out, "knn")
    runs = list((out / "wandb").glob("offline-run-*"))
    assert len(runs) == 1, list((out / "wandb").iterdir())
    (store,) = runs[0].glob("run-*.wandb")
    # Tags, the resolved config and the metrics are in the run's local store (the wandb
    # service may still be flushing it right after finish()).
    needles = (b"dataset:synthetic", b"router:knn", b"mode:single_shot", b"extra",
               b"TfidfFeaturizer", b"rU_std", b"baseline/oracle/rU")
    data = _wait_for(store, needles)
    for needle in needles:
        assert needle in data, needle
    assert (runs[0] / "files" / "results.json").exists()
    assert results["metrics"]["rU"]["n"] == 3


class _FakeRun:
    def __init__(self, kwargs):
        self.kwargs = kwargs
        self.logged: list[dict] = []
        self.summary: dict = {}
        self.artifacts: list = []
        self.finished = False
        self.dir = str(Path(kwargs["dir"]) / "wandb" / "offline-run-fake" / "files")

    def log(self, d):
        self.logged.append(d)

    def save(self, *a, **k):
        pass

    def log_artifact(self, art):
        self.artifacts.append(art)

    def finish(self):
        self.finished = True


class _FakeArtifact:
    def __init__(self, name, type):  # noqa: A002
        self.name, self.type, self.files = name, type, []

    def add_file(self, path, name=None):
        self.files.append(name or Path(path).name)


def _fake_wandb(runs: list[_FakeRun]):
    mod = types.SimpleNamespace()

    def init(**kwargs):
        runs.append(_FakeRun(kwargs))
        return runs[-1]

    mod.init = init
    mod.Settings = lambda **k: k
    mod.Table = lambda **k: ("table", k)
    mod.Histogram = lambda v: ("hist", list(v))
    mod.Artifact = _FakeArtifact
    return mod


def test_init_arguments_group_tags_config(monkeypatch, tmp_path):
    runs: list[_FakeRun] = []
    monkeypatch.setitem(sys.modules, "wandb", _fake_wandb(runs))
    monkeypatch.setattr(loggers, "sweep_group", lambda: "12-00-00")
    res = {
        "dataset": {"name": "gpqa_like"}, "router": "mlp", "supervision": "dars",
        "metrics": {"rU": {"mean": 0.5, "std": 0.0, "n": 1}},
        "baselines": {"oracle": {"rU": 0.9, "model": "x"}, "fixed_models": {"m": {"rU": 0.1}}},
        "per_draw": None, "frontier": {"lams": [0.0, 1.0], "rC": [0.2, 0.1], "rQ": [0.6, 0.5]},
        "config": {"seed": 0, "cost": {"lam": 0.05}},
    }
    lg = loggers.WandbLogger(project="p", mode="offline")
    lg.log_results(res, tmp_path / "3_router=mlp")
    lg.finish()
    (run,) = runs
    k = run.kwargs
    assert k["group"] == "12-00-00" and k["mode"] == "offline" and k["project"] == "p"
    assert k["tags"] == ["dataset:gpqa_like", "router:mlp", "mode:dars"]
    assert k["config"]["cost"] == {"lam": 0.05} and k["config"]["router_name"] == "mlp"
    assert k["dir"] == str(tmp_path / "3_router=mlp") and k["name"] == "3_router=mlp"
    assert run.summary["rU"] == 0.5 and run.summary["baseline/oracle/rU"] == 0.9
    assert "baseline/oracle/model" not in run.summary and run.summary["fixed/m/rU"] == 0.1
    assert any("frontier" in d for d in run.logged)
    assert run.finished


def test_missing_wandb_gives_a_clear_message(monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)  # import wandb -> ImportError
    with pytest.raises(ImportError, match=r"pip install 'darsbench\[wandb\]'"):
        loggers.WandbLogger()
    # Through Hydra (what `darsbench logger=wandb` does) the same message reaches the user.
    with pytest.raises(Exception, match="logger=csv / logger=none"):
        instantiate(_compose(["logger=wandb"]).logger)


def test_sweep_groups_jobs_and_uploads_leaderboard_artifact(tmp_path, offline):
    sweep = tmp_path / "sweep-xyz"
    env = {**os.environ, "DARSBENCH_CACHE": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "benchmark.app.cli", "-m", "router=knn", "supervision=single_shot,dars",
         "supervision.n_draws=3", "features=tfidf", TINY, "logger=wandb", f"hydra.sweep.dir={sweep}"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    jobs = sorted(p.parent for p in sweep.glob("*/results.json"))
    assert len(jobs) == 2
    for job in jobs:
        (run,) = job.glob("wandb/offline-run-*")
        data = _wait_for(next(run.glob("run-*.wandb")), (b"sweep-xyz", b"router:knn"))
        assert b"sweep-xyz" in data  # group = the sweep folder's name
        assert b"router:knn" in data and b"dataset:synthetic" in data
    # The leaderboard run of the sweep: its artifact holds the tables and figures.
    (lb,) = sweep.glob("wandb/offline-run-*")
    data = _wait_for(next(lb.glob("run-*.wandb")), (b"leaderboard-sweep-xyz", b"table1.md"))
    assert b"leaderboard-sweep-xyz" in data and b"table1.md" in data and b"leaderboard.csv" in data
    assert "leaderboard artifact logged" in proc.stdout
    # The tracker's copies of results.json are not counted as runs by the leaderboard.
    assert (sweep / "leaderboard.md").read_text().count("| knn | single_shot |") == 1


def test_csv_logger_one_row_per_job(cache_dir, tmp_path):
    cfg = _compose(["router=knn", "supervision=dars", "features=tfidf", TINY, "logger=csv"])
    run_from_config(cfg, tmp_path / "a", "knn")
    run_from_config(cfg, tmp_path / "b", "knn")
    lines = (tmp_path / "metrics.csv").read_text().splitlines()
    assert len(lines) == 3 and lines[0].startswith("run_dir,dataset,router,supervision")
