"""``logger=wandb``: offline runs under the run folder, grouping and tags, the sweep's
leaderboard artifact, and a clear message without the package. No network anywhere."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import types
from pathlib import Path

import pandas as pd
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
    a = run_from_config(cfg, tmp_path / "a", "knn")
    run_from_config(cfg, tmp_path / "b", "knn")
    lines = (tmp_path / "metrics.csv").read_text().splitlines()
    assert len(lines) == 3 and lines[0].startswith("run_dir,dataset,router,supervision")
    # A single-shot job brings columns the file lacks (std over draws): the header widens,
    # every row keeps its values under the right column.
    ss = _compose(["router=knn", "supervision=single_shot", "supervision.n_draws=3", "features=tfidf", TINY,
                   "logger=csv"])
    c = run_from_config(ss, tmp_path / "c", "knn")
    frame = pd.read_csv(tmp_path / "metrics.csv")
    assert len(frame) == 3 and list(frame["supervision"]) == ["dars", "dars", "single_shot"]
    assert frame["rU_std"].isna().tolist() == [True, True, False]
    assert frame["rU_std"].iloc[2] == pytest.approx(c["metrics"]["rU"]["std"])
    # The intervals and the AIQ with its interval are columns too.
    assert (frame["rU_low"].iloc[0], frame["rU_high"].iloc[0]) == pytest.approx(tuple(a["metrics"]["rU"]["ci"]))
    aiq = a["frontier"]["aiq"]["mean"]
    assert (frame["aiq/mean"].iloc[0], frame["aiq/mean_low"].iloc[0], frame["aiq/mean_high"].iloc[0]) == (
        pytest.approx(aiq["aiq"]), pytest.approx(aiq["ci"][0]), pytest.approx(aiq["ci"][1]))


def _wandb_records(store: Path) -> dict[str, object]:
    """Every key logged to an offline run's ``run-*.wandb`` file (history and summary
    records), read back with wandb's own protobuf schema. The file is a sequence of 32 KiB
    blocks after a 7-byte header; each record chunk has a 7-byte header (crc, length, type:
    1 full, 2 first, 3 middle, 4 last)."""
    import json as _json
    import struct

    from wandb.proto import wandb_internal_pb2 as pb

    data = store.read_bytes()
    pos, chunks, buf = 7, [], b""
    while pos + 7 <= len(data):
        left = 32768 - pos % 32768
        if left < 7:
            pos += left
            continue
        _, n, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if kind == 0 and n == 0:
            break
        buf += data[pos + 7:pos + 7 + n]
        pos += 7 + n
        if kind in (1, 4):
            chunks.append(buf)
            buf = b""
    out: dict[str, object] = {}
    for chunk in chunks:
        rec = pb.Record()
        rec.ParseFromString(chunk)
        kind = rec.WhichOneof("record_type")
        items = rec.history.item if kind == "history" else rec.summary.update if kind == "summary" else []
        for item in items:
            out[item.key or "/".join(item.nested_key)] = _json.loads(item.value_json)
    return out


def _logged(run_dir: Path, keys: list[str], timeout: float = 60.0) -> dict[str, object]:
    (run,) = run_dir.glob("wandb/offline-run-*")
    (store,) = run.glob("run-*.wandb")
    deadline = time.monotonic() + timeout
    while True:  # the wandb service may still be flushing right after finish()
        got = _wandb_records(store)
        if all(k in got for k in keys) or time.monotonic() > deadline:
            return got
        time.sleep(0.5)


def test_wandb_offline_logs_intervals_and_aiq(cache_dir, tmp_path, offline):
    cfg = _compose(["router=knn", "supervision=single_shot", "supervision.n_draws=3", "features=tfidf", TINY,
                    "logger=wandb", "bootstrap.resamples=200"])
    out = tmp_path / "run"
    res = run_from_config(cfg, out, "knn")
    keys = ["rU", "rU_std", "rU_low", "rU_high", "tU_low", "aiq/mean", "aiq/mean_low", "aiq/r_high",
            "aiq/d/fixed", "baseline/oracle/rU_low", "baseline/best_fixed/dU_high"]
    got = _logged(out, keys)
    for k in keys:
        assert k in got, (k, sorted(got)[:40])
    m = res["metrics"]["rU"]
    assert (got["rU"], got["rU_low"], got["rU_high"]) == pytest.approx((m["mean"], *m["ci"]))
    a = res["frontier"]["aiq"]["mean"]
    assert (got["aiq/mean"], got["aiq/mean_low"], got["aiq/mean_high"]) == pytest.approx((a["aiq"], *a["ci"]))
    assert got["baseline/oracle/rU_low"] == pytest.approx(res["baselines"]["oracle"]["ci"]["rU"][0])


def test_wandb_offline_leaderboard_run_logs_the_paired_tests(tmp_path, offline):
    frame = pd.DataFrame([
        {"setting": "s", "router": "knn", "dataset": "gpqa_like", "metric": "rU", "a": "dars", "b": "single_shot",
         "diff": 0.03, "low": 0.01, "high": 0.05, "p": 0.004, "p_adjusted": 0.012, "significant": True, "pairs": 5},
    ])
    budget = pd.DataFrame([
        {"setting": "s", "dataset": "gpqa_like", "router": "knn", "metric": "tU", "arm": "dars 5x5", "budget": 225,
         "reference": "single_shot", "diff": -0.01, "low": -0.02, "high": 0.0, "p": 0.2, "p_adjusted": 0.4,
         "significant": False, "pairs": 1},
    ])
    flat = loggers.paired_metrics({"table1_diff": frame, "budget_diff": budget, "table1": frame})
    assert flat["table1_diff/knn/gpqa_like/rU/dars-single_shot/p_adjusted"] == 0.012
    assert flat["table1_diff/knn/gpqa_like/rU/dars-single_shot/significant"] == 1.0
    assert flat["budget_diff/knn/gpqa_like/tU/dars 5x5/single_shot/225/diff"] == -0.01
    assert not any(k.startswith("table1/") for k in flat)  # only the paired tables
    sweep = tmp_path / "sweep"
    (sweep / "leaderboard").mkdir(parents=True)
    (sweep / "leaderboard" / "table1_diff.md").write_text("x")
    lg = loggers.WandbLogger(project="p", mode="offline")
    where = lg.log_leaderboard(sweep, [sweep / "leaderboard" / "table1_diff.md"], {"table1_diff": frame})
    assert where is not None
    got = _logged(sweep, ["table1_diff/knn/gpqa_like/rU/dars-single_shot/p"])
    for k, v in loggers.paired_metrics({"table1_diff": frame}).items():
        assert got[k] == pytest.approx(v), k
