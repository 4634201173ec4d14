"""Sweeps beyond one process (issue 10), with real subprocesses: a local Ray cluster (head + one
worker node), submitit's local mode, kill -9 and resume, simultaneous runs, a bad-data cell."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchmark.app.sweep import sweep_status
from benchmark.app.threads import cell_threads
from golden_cells import compare, numbers

REPO = Path(__file__).resolve().parents[1]
TINY = "dataset.overrides={n_train:40,n_test:30}"
GRID = ["router=knn,mlp", "supervision=single_shot,dars", "supervision.n_draws=3", "features=tfidf", TINY]
TINYPOOL = REPO / "benchmark" / "data" / "datasets" / "tinypool" / "tinypool"


def _env(cache: Path) -> dict[str, str]:
    return {**os.environ, "DARSBENCH_CACHE": str(cache), "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline",
            "RAY_USAGE_STATS_ENABLED": "0", "PYTHONPATH": str(REPO)}


def _cli(args: list[str], cwd: Path, cache: Path, module: str = "benchmark.app.cli",
         timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, env=_env(cache),
                          capture_output=True, text=True, timeout=timeout)


def _numbers(sweep: Path) -> dict[str, object]:
    """Every number of every cell's results.json (minus timings, versions, paths), by cell."""
    out: dict[str, object] = {}
    for path in sorted(sweep.glob("*/results.json")):
        res = json.loads(path.read_text())
        res.pop("threads")  # where the cell ran, not what it computed
        cell = f"{res['router']}|{res['supervision']}"
        out.update({f"{cell}{k}": v for k, v in numbers(res).items()})
    return out


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("sweep-cache")


@pytest.fixture(scope="module")
def basic_sweep(tmp_path_factory, cache) -> Path:
    """The 4-cell grid under Hydra's basic launcher (one cell after the other, in-process)."""
    work = tmp_path_factory.mktemp("basic")
    proc = _cli(["-m", *GRID, f"hydra.sweep.dir={work / 'sweep'}"], work, cache)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert len(list((work / "sweep").glob("*/results.json"))) == 4
    return work / "sweep"


# ------------------------------------------------------------------------------- Ray
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _nodes_alive(address: str) -> int:
    probe = ("import ray, sys; ray.init(address=sys.argv[1], logging_level='ERROR'); "
             "print(sum(n['Alive'] for n in ray.nodes()))")
    proc = subprocess.run([sys.executable, "-c", probe, address], capture_output=True, text=True, timeout=120)
    return int(proc.stdout.strip().splitlines()[-1]) if proc.returncode == 0 and proc.stdout.strip() else 0


@pytest.fixture()
def ray_cluster(tmp_path):
    """`ray start --head` on 127.0.0.1 plus one worker node (1 CPU each), in their own process
    groups; stopped (TERM, then KILL) at the end. Startup is bounded to 180 s."""
    pytest.importorskip("ray", reason="the Ray extra is not installed: pip install -e '.[ray]'")
    pytest.importorskip("hydra_plugins.hydra_ray_launcher", reason="pip install -e '.[ray]'")
    ray_bin = shutil.which("ray") or str(Path(sys.executable).parent / "ray")
    port = _free_port()
    address = f"127.0.0.1:{port}"
    temp = Path(f"/tmp/darsbench-ray-{os.getpid()}-{port}")
    env = _env(tmp_path / "unused")
    common = ["--block", "--node-ip-address=127.0.0.1", "--num-cpus=1", "--disable-usage-stats"]
    procs = [subprocess.Popen(
        [ray_bin, "start", "--head", f"--port={port}", "--include-dashboard=false", f"--temp-dir={temp}", *common],
        env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        deadline = time.monotonic() + 180
        while _nodes_alive(address) < 1:
            assert time.monotonic() < deadline and procs[0].poll() is None, "Ray head did not start"
            time.sleep(1)
        procs.append(subprocess.Popen([ray_bin, "start", f"--address={address}", *common], env=env,
                                      start_new_session=True, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL))
        while _nodes_alive(address) < 2:
            assert time.monotonic() < deadline and procs[1].poll() is None, "Ray worker did not join"
            time.sleep(1)
        yield address
    finally:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for p in reversed(procs):
                try:
                    os.killpg(p.pid, sig)
                except ProcessLookupError:
                    pass
            for p in procs:
                try:
                    p.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    continue
        shutil.rmtree(temp, ignore_errors=True)


def test_ray_cluster_sweep_matches_basic_launcher(ray_cluster, basic_sweep, tmp_path, cache):
    sweep = tmp_path / "sweep"
    proc = _cli(["-m", "hydra/launcher=ray", f"hydra.launcher.ray.init.address={ray_cluster}", *GRID,
                 f"hydra.sweep.dir={sweep}"], tmp_path, cache)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got, want = _numbers(sweep), _numbers(basic_sweep)
    assert len(want) > 500 and compare(got, want, tol=0.0) == []
    # Each cell ran as a Ray task that declared 1 CPU, and sized its threads to it.
    for path in sweep.glob("*/results.json"):
        assert json.loads(path.read_text())["threads"] == 1
    assert (sweep / "leaderboard.md").exists()


def test_submitit_local_matches_basic_launcher(basic_sweep, tmp_path, cache):
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher", reason="pip install -e '.[slurm]'")
    sweep = tmp_path / "sweep"
    proc = _cli(["-m", "hydra/launcher=submitit_local", "hydra.launcher.cpus_per_task=1",
                 "hydra.launcher.timeout_min=10", *GRID, f"hydra.sweep.dir={sweep}"], tmp_path, cache)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert compare(_numbers(sweep), _numbers(basic_sweep), tol=0.0) == []


# ------------------------------------------------------------------- kill -9 and resume
def test_kill_9_then_resume_recomputes_exactly_the_missing_cells(basic_sweep, tmp_path, cache):
    sweep = tmp_path / "sweep"
    args = ["-m", "router=mlp,knn", "supervision=single_shot,dars", "supervision.n_draws=3",
            "features=tfidf", TINY, f"hydra.sweep.dir={sweep}"]
    proc = subprocess.Popen([sys.executable, "-m", "benchmark.app.cli", *args], cwd=tmp_path,
                            env=_env(cache), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while not list(sweep.glob("*/results.json")):
        assert proc.poll() is None and time.monotonic() < deadline, "the sweep ended before its first cell"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    first = sweep / json.loads((sweep / "sweep_manifest.json").read_text())["cells"][0]["folder"]
    done = {p.parent.name for p in sweep.glob("*/results.json")}
    assert first.name in done and len(done) < 4

    # The report comes from the sweep's own manifest: the cells never finished are missing (not
    # failed), and a router with no finished cell is named.
    status = sweep_status(sweep)
    assert {c["folder"] for c in status["finished"]} == done
    assert len(status["missing"]) == 4 - len(done) and status["failed"] == []
    finished_routers = {c["label"] for c in status["finished"]}
    assert ("knn" in status["routers_without_result"]) == ("knn" not in finished_routers)
    board = _cli([str(sweep), "-o", str(tmp_path / "board"), "--no-plots"], tmp_path, cache,
                 module="benchmark.app.leaderboard")
    assert f"{len(done)} of 4 cells finished, 0 failed, {4 - len(done)} missing" in board.stdout
    if "knn" not in finished_routers:
        assert "Routers with no finished cell: knn" in board.stdout

    before = {name: ((sweep / name / "results.json").read_bytes(),
                     (sweep / name / "results.json").stat().st_mtime_ns) for name in done}
    resumed = _cli([*args, "resume=true"], tmp_path, cache)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert resumed.stdout.count("fingerprint matches; kept") == len(done)
    assert "recomputing" not in resumed.stdout
    for name, (data, mtime) in before.items():
        path = sweep / name / "results.json"
        assert path.read_bytes() == data and path.stat().st_mtime_ns == mtime
    assert len(list(sweep.glob("*/results.json"))) == 4
    assert "4 of 4 cells finished" in (sweep / "sweep_status.md").read_text()
    # The end leaderboard covers the old and the new cells, and the numbers are the basic sweep's.
    board = (sweep / "leaderboard.md").read_text()
    for row in ("| knn | dars |", "| knn | single_shot |", "| mlp | dars |", "| mlp | single_shot |"):
        assert row in board
    assert compare(_numbers(sweep), _numbers(basic_sweep), tol=0.0) == []


def test_two_simultaneous_runs_write_two_folders(tmp_path, cache):
    args = ["router=knn", "supervision=dars", "features=tfidf", TINY]
    procs = [subprocess.Popen([sys.executable, "-m", "benchmark.app.cli", *args, f"seed={s}"], cwd=tmp_path,
                              env=_env(cache), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for s in (1, 2)]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-2000:]
    runs = sorted(tmp_path.glob("outputs/*/*/results.json"))
    assert len(runs) == 2
    seeds = sorted(json.loads(r.read_text())["seed"] for r in runs)
    assert seeds == [1, 2]
    for r in runs:  # each folder's Hydra record is its own run's
        seed = json.loads(r.read_text())["seed"]
        assert f"seed: {seed}" in (r.parent / ".hydra" / "config.yaml").read_text()


# ---------------------------------------------------------------------------- failures
def _release(root: Path, bad: bool) -> Path:
    (root / "tinypool").mkdir(parents=True)
    for name in ("train_scored_generations.jsonl", "test_scored_generations.jsonl", "metadata.json"):
        if (TINYPOOL / name).exists():
            shutil.copy(TINYPOOL / name, root / "tinypool" / name)
    if bad:
        path = root / "tinypool" / "train_scored_generations.jsonl"
        lines = path.read_text().splitlines()
        row = json.loads(lines[16])
        row["score"] = 1.5
        lines[16] = json.dumps(row)
        path.write_text("\n".join(lines) + "\n")
    return root


def test_bad_data_cell_fails_alone_and_resume_follows_the_data(tmp_path, cache):
    good, bad = _release(tmp_path / "good", False), _release(tmp_path / "bad", True)
    sweep = tmp_path / "sweep"
    args = ["-m", "dataset=tinypool", f"dataset.data_dir={good},{bad}", "router=knn", "supervision=dars",
            "features=tfidf", f"hydra.sweep.dir={sweep}"]
    proc = _cli(args, tmp_path, cache)
    assert proc.returncode == 1
    folders = sorted(p for p in sweep.iterdir() if p.is_dir() and p.name[0].isdigit())
    assert len(folders) == 2  # absolute data_dir values do not nest folders
    ok, failed = folders
    assert (ok / "results.json").exists() and not (ok / "error.json").exists()
    err = json.loads((failed / "error.json").read_text())
    assert err["type"] == "DataError" and "train_scored_generations.jsonl:17: field 'score'" in err["message"]
    assert "Traceback" in err["traceback"] and not (failed / "results.json").exists()
    assert "1 of 2 cells finished, 1 failed, 0 missing" in proc.stdout
    assert "DataError: tinypool/train_scored_generations.jsonl:17" in (sweep / "sweep_status.md").read_text()
    assert "| knn | dars |" in (sweep / "leaderboard.md").read_text()

    # Fix the bad file and change the good one: resume recomputes both and says why.
    shutil.copy(good / "tinypool" / "train_scored_generations.jsonl", bad / "tinypool")
    path = good / "tinypool" / "train_scored_generations.jsonl"
    lines = path.read_text().splitlines()
    row = json.loads(lines[3])
    row["cost"] = row["cost"] * 2
    lines[3] = json.dumps(row)
    path.write_text("\n".join(lines) + "\n")
    resumed = _cli([*args, "resume=true"], tmp_path, cache)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "data changed (content hash" in resumed.stdout and "kept" not in resumed.stdout
    assert (failed / "results.json").exists() and not (failed / "error.json").exists()


def test_cells_that_differ_by_a_router_setting_get_their_own_rows(tmp_path, cache):
    sweep = tmp_path / "sweep"
    proc = _cli(["-m", "router=knn", "router.k=5,16", "supervision=dars", "features=tfidf", TINY,
                 f"hydra.sweep.dir={sweep}"], tmp_path, cache)
    assert proc.returncode == 0, proc.stderr[-3000:]
    board = (sweep / "leaderboard.md").read_text()
    assert "| knn[router.k=5] | dars |" in board and "| knn[router.k=16] | dars |" in board


def test_parallel_cells_split_the_cores(monkeypatch):
    monkeypatch.delenv("SLURM_CPUS_PER_TASK", raising=False)
    assert cell_threads(None, None) is None                      # one cell at a time: all cores
    assert cell_threads(None, {"n_jobs": 2}, cpu_count=8) == 4   # joblib launcher
    assert cell_threads(None, {"n_jobs": -1}, cpu_count=8) == 1
    assert cell_threads(3, {"n_jobs": 2}, cpu_count=8) == 3      # threads= wins
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "6")
    assert cell_threads(None, None) == 6
    with pytest.raises(ValueError, match="threads=0"):
        cell_threads(0)
