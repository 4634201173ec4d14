"""Recipe seed study (issue 15): the official vs the darsbench recipe of a router under DARS
supervision over several seeds, on one simulated preset (docs/official.md).

Usage: ``python bench/official_seed_study.py [--router mlp] [--preset gpqa_like] [--seeds 8]
[--recipes embedllm embedllm_official embedllm_official:epochs=200]`` prints, per seed, each
recipe's rQ and dQ (a recipe is a conf/router name, optionally with ``:key=value,...``
overrides), then mean ± sample std over seeds, and how often the first two recipes pick the
same model.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
from hydra.utils import instantiate
from omegaconf import OmegaConf

from benchmark.data.dataset import normalise_costs
from benchmark.data.sources import SyntheticSource
from benchmark.features import MiniLMFeaturizer, compute_features
from evaluators import metrics as M
from supervision.modes import make_targets

ROOT = Path(__file__).resolve().parents[1]


def recipe(spec: str):
    """A router config from ``name[:key=value,...]`` (values parsed as YAML)."""
    name, _, sets = spec.partition(":")
    cfg = OmegaConf.load(ROOT / "conf/router" / f"{name}.yaml")
    cfg.pop("defaults", None)
    for item in filter(None, sets.split(",")):
        key, _, value = item.partition("=")
        OmegaConf.update(cfg, key, _yaml_value(value))
    return cfg


def _yaml_value(text: str):
    return OmegaConf.create(f"v: {text}").v


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--router", default="mlp")
    ap.add_argument("--preset", default="gpqa_like")
    ap.add_argument("--seeds", type=int, default=8)
    ap.add_argument("--lam", type=float, default=0.05)
    ap.add_argument("--beta", type=float, default=0.2)
    ap.add_argument("--recipes", nargs="+", default=None,
                    help="conf/router names[:key=value,...] (default: <router> <router>_official)")
    args = ap.parse_args()
    cache = Path(os.environ.get("DARSBENCH_CACHE", "~/.cache/darsbench")).expanduser()
    data = normalise_costs(SyntheticSource(args.preset, args.preset, 0).load(cache), "minmax")
    X_tr, X_te = compute_features(
        MiniLMFeaturizer(), data.train_queries["text"].tolist(), data.test_queries["text"].tolist(), cache
    )
    targets = make_targets(data.train, "dars", models=data.models)
    views = {p: M.ViewStats.from_block(b) for p, b in data.test_views.items()}
    recipes = {spec: recipe(spec) for spec in (args.recipes or [args.router, args.router + "_official"])}
    scores = {name: [] for name in recipes}
    same = []
    for seed in range(args.seeds):
        choices = {}
        for name, cfg in recipes.items():
            router = instantiate(cfg).fit(X_tr, targets, lam=args.lam, beta=args.beta, seed=seed)
            choices[name] = router.route(X_te, args.lam, args.beta)
            rq = float(M.evaluate_choices(views["r"], choices[name], args.lam)["Q"])
            dq = float(M.evaluate_choices(views["d"], choices[name], args.lam)["Q"])
            scores[name].append((rq, dq))
        a, b = list(choices.values())[:2]
        same.append(float((a == b).mean()))
        print(f"seed {seed}: " + "  ".join(f"{n} rQ {s[-1][0]:.4f} dQ {s[-1][1]:.4f}" for n, s in scores.items())
              + f"  same choice {same[-1]:.3f}", flush=True)
    for name, s in scores.items():
        v = np.array(s)
        print(f"{name}: rQ {v[:, 0].mean():.4f} ± {v[:, 0].std(ddof=1):.4f}  dQ {v[:, 1].mean():.4f} ± "
              f"{v[:, 1].std(ddof=1):.4f}  (mean ± sample std over {len(v)} seeds)")
    print(f"same choice: {np.mean(same):.3f} of test queries on average")


if __name__ == "__main__":
    main()
