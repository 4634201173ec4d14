"""Cold and warm wall time of the kNN cell pair (single_shot with 100 draws + dars) through the
real CLI, with MiniLM and with TF-IDF features. README, "Start-up and encoding speed".

    python bench/coldstart.py                       # gpqa_like preset (200 x 6 x 25, 248 test)
    python bench/coldstart.py --convert             # also a first run that converts MiniLM to ONNX
    python bench/coldstart.py --features minilm --profile   # + where the warm run's time goes

cold: a fresh ``DARSBENCH_CACHE`` (the simulated data, its parsed cache and the features are all
built in the run); warm: the same command again on that cache. Both are one process running
``darsbench -m router=knn supervision=single_shot,dars ...``: start-up, sweep set-up, both
cells, the leaderboards. The converted ONNX model lives in the model cache
(``DARSBENCH_MODEL_CACHE``, ~/.cache/darsbench/models), which a fresh feature cache reuses;
``--convert`` adds a run with an empty model cache too. "warm, no figures" repeats the warm run
with ``hydra.callbacks.leaderboard.plots=false``. Also prints the import time of the CLI.

The project's modules are byte-compiled first (``compileall``): an installed package has its
``.pyc`` files, but a checkout run with ``PYTHONDONTWRITEBYTECODE=1`` (as in this sandbox) would
otherwise recompile every module on each start (about 0.3 s).
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "lightning", "torch_geometric", "sentence_transformers", "transformers")


def cpu_children() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run(args: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """(wall s, CPU s, stderr) of ``python -m benchmark.app.cli <args>``."""
    c0, t0 = cpu_children(), time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "benchmark.app.cli", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True)
    wall, cpu = time.perf_counter() - t0, cpu_children() - c0
    if proc.returncode != 0:
        raise SystemExit(f"darsbench {' '.join(args)} failed:\n{proc.stderr[-3000:]}")
    return wall, cpu, proc.stderr


def cell_seconds(sweep: Path) -> float:
    """Sum of the cells' own timings (data, features, fit, route, evaluation, writing)."""
    total = 0.0
    for res in sweep.glob("*/results.json"):
        timings = json.loads(res.read_text())["timings_s"]
        total += float(timings.get("total", sum(v for v in timings.values() if isinstance(v, (int, float)))))
    return total


def import_seconds(env: dict[str, str]) -> tuple[float, list[str]]:
    """Self-reported import time of ``benchmark.app.cli`` (python -X importtime) and the heavy
    modules it loaded."""
    code = "import sys, benchmark.app.cli; print(sorted({m.split('.')[0] for m in sys.modules} & set(%r)))" % (HEAVY,)
    proc = subprocess.run([sys.executable, "-X", "importtime", "-c", code], cwd=ROOT, env=env,
                          capture_output=True, text=True, check=True)
    last = [ln for ln in proc.stderr.splitlines() if ln.rstrip().endswith("| benchmark.app.cli")][-1]
    return int(re.split(r"\|", last)[1]) / 1e6, json.loads(proc.stdout.strip().replace("'", '"'))


#: (label, file, function) of the warm run's breakdown: cumulative cProfile time of these functions.
PHASES = (
    ("Hydra compositions (every load_configuration)", "hydra/_internal/config_loader_impl.py", "load_configuration"),
    ("sweep set-up (manifest, caches; without its compositions)", "benchmark/app/callbacks.py", "on_multirun_start"),
    ("the two cells (data, fit, route, evaluation, writing)", "benchmark/app/cli.py", "run_from_config"),
    ("  of which bootstrap intervals", "evaluators/baselines.py", "cell_intervals"),
    ("  of which frontier replicates", "evaluators/frontier.py", "frontier_replicates"),
    ("  of which frontier AIQ in every replicate", "evaluators/frontier.py", "frontier_aiq"),
    ("  of which training summaries", "routers/summary.py", "training_summary"),
    ("sweep-end leaderboards and figures", "benchmark/app/callbacks.py", "on_multirun_end"),
    ("  of which figures (matplotlib import included)", "evaluators/plots.py", "plot_*"),
)


def profile_breakdown(env: dict[str, str], args: list[str], out: Path) -> None:
    """Print the warm run's time by phase, from ``python -m cProfile`` (cProfile slows Python
    code more than C code: shares, not seconds, are the point)."""
    import pstats

    prof = out / "warm.prof"
    subprocess.run([sys.executable, "-m", "cProfile", "-o", str(prof), "-m", "benchmark.app.cli", *args],
                   cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    stats = pstats.Stats(str(prof)).stats  # {(file, line, name): (cc, nc, tt, ct, callers)}
    total = max(v[3] for v in stats.values())

    def cum(file: str, name: str) -> float:
        return sum(v[3] for (f, _, n), v in stats.items() if f.endswith(file)
                   and (n == name or (name.endswith("*") and n.startswith(name[:-1]))))

    t = {name: cum(file, name) for _, file, name in PHASES}
    # the manifest's compositions are counted with the compositions, not with the set-up
    t["on_multirun_start"] -= cum("hydra/_internal/config_loader_impl.py", "load_sweep_config")
    print(f"\nwarm run under cProfile: {total:.2f} s")
    print("| phase | s | share |\n|---|---:|---:|")
    for label, _, name in PHASES:
        print(f"| {label} | {t[name]:.2f} | {t[name] / total:.0%} |")
    rest = total - sum(t[n] for n in ("load_configuration", "on_multirun_start", "run_from_config", "on_multirun_end"))
    print(f"| start-up imports and the rest | {rest:.2f} | {rest / total:.0%} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="gpqa_like")
    ap.add_argument("--features", nargs="+", default=["minilm", "tfidf"])
    ap.add_argument("--convert", action="store_true", help="also a run with an empty model cache")
    ap.add_argument("--profile", action="store_true", help="also profile a warm run: time by phase")
    args = ap.parse_args()
    print(subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    for pkg in ("benchmark", "evaluators", "routers", "supervision"):
        compileall.compile_dir(ROOT / pkg, quiet=1)
    base = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline"}
    secs, heavy = import_seconds(base)
    print(f"import benchmark.app.cli: {secs:.2f} s (python -X importtime); heavy modules loaded: {heavy or 'none'}")
    work = Path(tempfile.mkdtemp(prefix="coldstart-"))
    print(f"| features | run | wall (s) | CPU (s) | cells' own time (s) |\n|---|---|---:|---:|---:|")
    for feats in args.features:
        env = {**base, "DARSBENCH_CACHE": str(work / f"cache-{feats}")}
        runs = ["cold", "warm", "warm, no figures"]
        if args.convert and feats == "minilm":
            runs.insert(0, "first (converts)")
        for i, label in enumerate(runs):
            if label.startswith("first"):
                env_run = {**env, "DARSBENCH_CACHE": str(work / "cache-first"),
                           "DARSBENCH_MODEL_CACHE": str(work / "models")}
            else:
                env_run = env
            sweep = work / f"sweep-{feats}-{i}"
            extra = ["hydra.callbacks.leaderboard.plots=false"] if label.endswith("no figures") else []
            wall, cpu, _ = run(["-m", "router=knn", "supervision=single_shot,dars", f"dataset={args.preset}",
                                f"features={feats}", f"hydra.sweep.dir={sweep}", *extra], env_run)
            print(f"| {feats} | {label} | {wall:.2f} | {cpu:.2f} | {cell_seconds(sweep):.2f} |")
        if args.profile:
            profile_breakdown(env, ["-m", "router=knn", "supervision=single_shot,dars", f"dataset={args.preset}",
                                    f"features={feats}", f"hydra.sweep.dir={work / f'sweep-{feats}-profile'}"], work)
    print(f"\noutputs in {work}")


if __name__ == "__main__":
    main()
