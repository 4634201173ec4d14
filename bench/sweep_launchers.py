"""Wall time of one small sweep under each launcher, and whether the numbers agree bit for bit.

    python bench/sweep_launchers.py [--ray]

The grid: knn and mlp x single_shot (5 draws) and dars, TF-IDF features, a simulated dataset of
40 training and 30 test queries (4 cells). Every launcher shares one cache folder, built by the
first (basic) run, so the later runs measure the launcher, not the encoding. ``--ray`` adds the Ray
launcher starting a local Ray instance itself (2 CPUs, 1 per cell). Also timed: a kill-free resume of
the finished basic sweep (every cell kept).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from golden_cells import compare, numbers  # noqa: E402

GRID = ["router=knn,mlp", "supervision=single_shot,dars", "supervision.n_draws=5", "features=tfidf",
        "dataset.overrides={n_train:40,n_test:30}"]
LAUNCHERS = {
    "basic": [],
    "joblib (2 processes)": ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"],
    "submitit_local": ["hydra/launcher=submitit_local", "hydra.launcher.cpus_per_task=1"],
    "ray (local, 2 CPUs)": ["hydra/launcher=ray", "+hydra.launcher.ray.init.num_cpus=2"],
}


def cell_numbers(sweep: Path) -> dict:
    out = {}
    for path in sorted(sweep.glob("*/results.json")):
        res = json.loads(path.read_text())
        res.pop("threads", None)
        out.update({f"{res['router']}|{res['supervision']}{k}": v for k, v in numbers(res).items()})
    return out


def run(args: list[str], work: Path, env: dict) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "benchmark.app.cli", "-m", *args], cwd=work, env=env,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{args} failed:\n{proc.stderr[-3000:]}")
    return time.perf_counter() - t0


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        env = {**os.environ, "DARSBENCH_CACHE": str(work / "cache"), "PYTHONPATH": str(REPO),
               "RAY_USAGE_STATS_ENABLED": "0"}
        names = [n for n in LAUNCHERS if "ray" not in n or "--ray" in sys.argv]
        reference = None
        print(f"{os.cpu_count()} cores; grid of 4 cells")
        for name in names:
            sweep = work / name.split()[0]
            wall = run([*LAUNCHERS[name], *GRID, f"hydra.sweep.dir={sweep}"], work, env)
            got = cell_numbers(sweep)
            reference = reference or got
            same = "identical" if compare(got, reference, tol=0.0) == [] else "DIFFERENT"
            print(f"{name:24s} {wall:6.1f} s   {len(got)} numbers, {same} to the basic launcher's")
        wall = run([*GRID, f"hydra.sweep.dir={work / 'basic'}", "resume=true"], work, env)
        print(f"{'resume, all 4 kept':24s} {wall:6.1f} s")


if __name__ == "__main__":
    main()
