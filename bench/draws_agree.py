"""Stacked vs exact single-shot draws on the Table-1 grid: do the numbers agree?

For each neural router, runs the paper-size ``single_shot`` cell of ``bench/table1.py`` (100
draws, MiniLM features cached first) twice, with ``router.training.draws=exact`` (the reference:
bit-identical to one fit per draw) and ``=stacked`` (one vectorised network), and prints the fit
times, the largest absolute difference over every metric of results.json (means, spreads,
intervals, per-draw values, baselines, frontier) and the share of (draw, test query) decisions
that agree.

    python bench/draws_agree.py                          # embedllm mirt rm_softmax graphrouter
    python bench/draws_agree.py --routers mirt --draws 20
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from table1 import _spec

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

NEURAL = ["embedllm", "mirt", "rm_softmax", "graphrouter"]


def numbers(tree, prefix: str = "") -> dict[str, float]:
    """Every number of a results.json subtree, by path."""
    if isinstance(tree, dict):
        return {k: v for key, sub in tree.items() for k, v in numbers(sub, f"{prefix}.{key}").items()}
    if isinstance(tree, (list, tuple)):
        return {k: v for i, sub in enumerate(tree) for k, v in numbers(sub, f"{prefix}[{i}]").items()}
    if isinstance(tree, (int, float)) and not isinstance(tree, bool):
        return {prefix: float(tree)}
    return {}


def run(router: str, path: str, draws: int, cache: Path, out: Path):
    from benchmark.app.run import run_cell
    from benchmark.data.dataset import normalise_costs
    from benchmark.features import compute_features

    spec = _spec(router, "single_shot", "minilm", draws, cache, [f"router.training.draws={path}"])
    res = run_cell(spec, out / f"{router}_{path}")
    data = normalise_costs(spec.source.load(cache), spec.cost_norm)
    _, X_test = compute_features(spec.featurizer, data.train_queries["text"].tolist(),
                                 data.test_queries["text"].tolist(), cache_dir=cache)
    beta = res["cost"]["beta_effective"]
    choices = spec.router.route(X_test, spec.lam, beta)
    paths = {net.fit_path for net in spec.router._fitted_nets()}
    assert paths == {path}, (router, path, paths)
    keep = {k: res[k] for k in ("metrics", "per_draw", "baselines", "frontier", "shares")}
    return numbers(keep), choices, res["timings_s"]["fit"], res["metrics"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--routers", nargs="+", default=NEURAL)
    ap.add_argument("--draws", type=int, default=100)
    ap.add_argument("--cache", type=Path, default=None, help="cache folder (default: a fresh temp dir)")
    args = ap.parse_args()
    cache = args.cache or Path(tempfile.mkdtemp(prefix="darsbench-agree-"))
    out = Path(tempfile.mkdtemp(prefix="darsbench-agree-out-"))
    t = time.perf_counter()
    print(f"{os.cpu_count()} CPU cores; load average {os.getloadavg()}")
    worst_all = 0.0
    for router in args.routers:
        (a, ca, fa, ma), (b, cb, fb, mb) = (run(router, p, args.draws, cache, out) for p in ("exact", "stacked"))
        assert a.keys() == b.keys()
        diffs = {k: abs(a[k] - b[k]) for k in a}
        worst = max(diffs, key=diffs.get)
        metric_diffs = {k: v for k, v in diffs.items() if k.startswith(".metrics") and k.endswith(".mean")}
        worst_all = max(worst_all, diffs[worst])
        print(f"\n{router}: fit exact {fa:.2f} s, stacked {fb:.2f} s ({fa / fb:.1f}x)")
        print(f"  decisions agree: {np.mean(ca == cb):.6f} of {ca.size} (draw, query) pairs")
        print(f"  max |diff| over {len(diffs)} numbers: {diffs[worst]:.3g} ({worst})")
        for k, v in sorted(metric_diffs.items()):
            print(f"    {k[len('.metrics.'):-len('.mean')]:>10s} mean: exact {a[k]:.6f} stacked {b[k]:.6f} |diff| {v:.3g}")
    print(f"\nlargest |diff| over the grid: {worst_all:.3g} (1e-6 needed to make stacked the default); "
          f"{time.perf_counter() - t:.0f} s")


if __name__ == "__main__":
    main()
