"""The fixed cells of the golden test (issue 8): their commands and the numbers they produce.

``python tests/golden_cells.py --write`` re-records ``tests/golden/golden.json``; run it only when
a change of numbers is intended and say so in the README's changes section.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
GOLDEN = REPO / "tests" / "golden" / "golden.json"
TINY = "dataset.overrides={n_train:40,n_test:30}"

#: Module of each command (``python -m <module>``).
RUN_MODULE = "benchmark.app.cli"
DIAGNOSE_MODULE = "benchmark.app.diagnose"
LEADERBOARD_MODULE = "benchmark.app.leaderboard"

#: Keys whose values are measurements of the machine, not results.
SKIP_KEYS = {"timings_s", "versions", "config", "router_params", "content_hash", "cache_dir"}


def _run(module: str, args: list[str], cwd: Path, cache: Path) -> None:
    env = {**os.environ, "DARSBENCH_CACHE": str(cache), "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline"}
    proc = subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        raise RuntimeError(f"{module} {args} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")


def numbers(obj, prefix: str = "") -> dict[str, float]:
    """Every numeric leaf of a JSON-like object, keyed by its path."""
    out: dict[str, float] = {}
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k in SKIP_KEYS:
                continue
            out.update(numbers(v, f"{prefix}/{k}"))
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            out.update(numbers(v, f"{prefix}[{i}]"))
    elif isinstance(obj, bool):
        out[prefix] = float(obj)
    elif isinstance(obj, (int, float)):
        out[prefix] = float(obj)
    return out


def frame_numbers(frame: pd.DataFrame, prefix: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for col in frame.columns:
        s = frame[col]
        if pd.api.types.is_numeric_dtype(s):
            for i, v in enumerate(s.to_numpy(dtype=float)):
                out[f"{prefix}/{col}[{i}]"] = float(v)
        else:
            for i, v in enumerate(s.astype(str)):
                out[f"{prefix}/{col}[{i}]#s"] = v  # type: ignore[assignment]
    return out


def produce(work: Path) -> dict[str, object]:
    """Run the golden cells in ``work`` and collect every number of their output files."""
    cache = work / "cache"
    sweep = work / "sweep"
    diag = work / "diag"
    board = work / "board"
    _run(RUN_MODULE, ["-m", "router=knn,mlp", "supervision=single_shot,dars", "features=tfidf", TINY,
                      "supervision.n_draws=5", "cost.lam=0.1", "seed=2", f"hydra.sweep.dir={sweep}",
                      "hydra/launcher=basic"], work, cache)
    _run(DIAGNOSE_MODULE, ["features=tfidf", TINY, "histogram.n_draws=3", f"hydra.run.dir={diag}"],
         work, cache)
    _run(LEADERBOARD_MODULE, [str(sweep), "-o", str(board)], work, cache)
    out: dict[str, object] = {}
    for res in sorted(sweep.glob("*/results.json")):
        data = json.loads(res.read_text())
        cell = f"{data['router']}|{data['supervision']}"
        out.update({f"cell:{cell}{k}": v for k, v in numbers(data).items()})
        dec = pd.read_parquet(res.parent / "decisions.parquet")
        out.update(frame_numbers(dec, f"decisions:{cell}"))
    d = json.loads((diag / "diagnostics.json").read_text())
    out.update({f"diagnose{k}": v for k, v in numbers(d).items()})
    for csv in sorted(board.glob("*.csv")):
        out.update(frame_numbers(pd.read_csv(csv, comment="#"), f"board:{csv.name}"))
    return out


def compare(got: dict[str, object], want: dict[str, object], tol: float = 1e-12) -> list[str]:
    problems = []
    for k in sorted(set(want) - set(got)):
        problems.append(f"missing: {k}")
    for k in sorted(set(got) - set(want)):
        problems.append(f"new: {k}")
    for k in sorted(set(got) & set(want)):
        a, b = got[k], want[k]
        if isinstance(b, str) or isinstance(a, str):
            if str(a) != str(b):
                problems.append(f"{k}: {a!r} != {b!r}")
        elif not (math.isnan(b) and math.isnan(a)) and not abs(a - b) <= tol:
            problems.append(f"{k}: {a!r} != {b!r}")
    return problems


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        got = produce(Path(tmp))
    if "--write" in sys.argv:
        GOLDEN.parent.mkdir(parents=True, exist_ok=True)
        GOLDEN.write_text(json.dumps(got, indent=0, sort_keys=True))
        print(f"wrote {len(got)} values to {GOLDEN}")
    else:
        want = json.loads(GOLDEN.read_text())
        problems = compare(got, want)
        print("\n".join(problems[:50]) or f"all {len(want)} values equal")
