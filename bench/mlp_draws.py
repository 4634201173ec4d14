"""Speed and agreement of the mlp router's two implementations on the Table-1 mlp cells.

Per dataset (``synthetic``: bench/table1.py's paper-size default; the ``gpqa_like``,
``math_like`` and ``drop_like`` presets) and supervision (``single_shot`` with 100 draws,
``dars``), the cell runs with ``router.impl=sklearn`` (one MLPRegressor per head and draw: the
code before issue 16) and ``router.impl=vectorised`` (one numpy stack of all networks). MiniLM
features are cached before timing. Prints fit + route seconds of each, the single-shot / DARS
fit ratio, and the largest absolute difference between the two runs over every number of
results.json (metrics, intervals, frontier; timings excluded) and of the decisions file.

    python bench/mlp_draws.py                                    # all 8 cells (slow: sklearn)
    python bench/mlp_draws.py --datasets synthetic --draws 20    # smaller
    python bench/mlp_draws.py --threads 2                        # vectorised also with n_jobs=2
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

CONF = Path(__file__).resolve().parents[1] / "conf"
DATASETS = ["synthetic", "gpqa_like", "math_like", "drop_like"]
SKIP = {"timings_s", "versions", "config", "router_params", "content_hash", "cache_dir"}


def spec_for(dataset: str, mode: str, impl: str, n_jobs: int, draws: int, cache: Path):
    from hydra import compose, initialize_config_dir

    from benchmark.app.cli import build_spec

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="config", overrides=[
            "router=mlp", f"router.impl={impl}", f"router.n_jobs={n_jobs}", f"dataset={dataset}",
            f"supervision={mode}", f"supervision.n_draws={draws}", "features=minilm",
            f"cache_dir={cache}",
        ])  # fmt: skip
    return build_spec(cfg, "mlp")


def leaves(obj, prefix: str = "") -> dict[str, float]:
    """Every numeric leaf of results.json (measurements of the machine skipped)."""
    if isinstance(obj, dict):
        return {k: v for key, x in obj.items() if key not in SKIP for k, v in leaves(x, f"{prefix}/{key}").items()}
    if isinstance(obj, list):
        return {k: v for i, x in enumerate(obj) for k, v in leaves(x, f"{prefix}[{i}]").items()}
    if isinstance(obj, (int, float)) and not isinstance(obj, bool):
        return {prefix: float(obj)}
    return {}


def max_difference(a: Path, b: Path) -> tuple[float, int]:
    """Largest |a - b| over results.json numbers and numeric decision columns; count compared."""
    ra, rb = (leaves(json.loads((p / "results.json").read_text())) for p in (a, b))
    if ra.keys() != rb.keys():
        raise RuntimeError(f"{a} and {b} hold different result entries")
    diffs = [abs(ra[k] - rb[k]) for k in ra if not (np.isnan(ra[k]) and np.isnan(rb[k]))]
    da, db = (pd.read_parquet(p / "decisions.parquet") for p in (a, b))
    for col in da.columns:
        if pd.api.types.is_numeric_dtype(da[col]):
            x, y = da[col].to_numpy(float), db[col].to_numpy(float)
            both_nan = np.isnan(x) & np.isnan(y)
            diffs.extend(np.abs(x - y)[~both_nan].tolist())
        elif not da[col].equals(db[col]):
            raise RuntimeError(f"decision column {col!r} differs")
    return max(diffs), len(diffs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", nargs="+", default=DATASETS)
    ap.add_argument("--draws", type=int, default=100)
    ap.add_argument("--threads", type=int, default=1, help="also run the vectorised cells with n_jobs=N")
    ap.add_argument("--cache", type=Path, default=None, help="cache folder (default: a fresh temp dir)")
    args = ap.parse_args()

    from benchmark.app.run import run_cell
    from benchmark.data.dataset import normalise_costs
    from benchmark.features import compute_features

    cache = args.cache or Path(tempfile.mkdtemp(prefix="darsbench-mlp-cache-"))
    out = Path(tempfile.mkdtemp(prefix="darsbench-mlp-draws-"))
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())} "
          f"({os.cpu_count()} CPU cores); {args.draws} single-shot draws")
    impls = [("sklearn", 1), ("vectorised", 1)] + ([("vectorised", args.threads)] if args.threads > 1 else [])
    rows = []
    for dataset in args.datasets:
        spec = spec_for(dataset, "dars", "sklearn", 1, args.draws, cache)  # warm data + features
        data = normalise_costs(spec.source.load(cache), "minmax")
        compute_features(spec.featurizer, data.train_queries["text"].tolist(),
                         data.test_queries["text"].tolist(), cache_dir=cache)  # fmt: skip
        for mode in ("single_shot", "dars"):
            cell = {"dataset": dataset, "mode": mode}
            dirs = {}
            for impl, jobs in impls:
                name = f"{impl}" if jobs == 1 else f"{impl}x{jobs}"
                dirs[name] = out / f"{dataset}_{mode}_{name}"
                res = run_cell(spec_for(dataset, mode, impl, jobs, args.draws, cache), dirs[name])
                cell[name] = res["timings_s"]["fit"] + res["timings_s"]["route"]
                cell[f"{name}_fit"] = res["timings_s"]["fit"]
                if impl == "vectorised" and jobs == 1:
                    cell["rU"] = res["metrics"]["rU"]["mean"]
            cell["max_diff"], cell["n_compared"] = max_difference(dirs["sklearn"], dirs["vectorised"])
            rows.append(cell)
            threaded = f"vectorisedx{args.threads}"
            extra = f" | vectorised x{args.threads} {cell[threaded]:6.2f} s" if threaded in cell else ""
            print(f"{dataset:10s} {mode:11s} sklearn {cell['sklearn']:6.2f} s | vectorised "
                  f"{cell['vectorised']:6.2f} s{extra} | rU {cell['rU']:.4f} | max |diff| "
                  f"{cell['max_diff']:.3g} over {cell['n_compared']} numbers", flush=True)
    print("\nsingle-shot fit / DARS fit (same impl, same dataset):")
    for dataset in args.datasets:
        ss, da = (next(r for r in rows if r["dataset"] == dataset and r["mode"] == m) for m in ("single_shot", "dars"))
        ratios = " | ".join(f"{n} {ss[f'{n}_fit'] / da[f'{n}_fit']:5.1f}x" for n in ("sklearn", "vectorised"))
        print(f"  {dataset:10s} {ratios}")
    worst = max(r["max_diff"] for r in rows)
    total_sk = sum(r["sklearn"] for r in rows)
    total_vec = sum(r["vectorised"] for r in rows)
    print(f"\ntotal fit + route: sklearn {total_sk:.1f} s, vectorised {total_vec:.1f} s "
          f"({total_sk / total_vec:.2f}x); largest difference over all cells: {worst:.3g}")
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
