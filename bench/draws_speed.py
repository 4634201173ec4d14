"""Cost of single-shot draws per neural router: one DARS fit vs D draws, exact vs stacked.

Synthetic paper-size data (200 training queries x 384-dim unit features x 6 models, 5 x 5
observations per pair). Prints, per router, the wall and CPU seconds of one ``dars`` fit and of
``single_shot`` with D draws under ``router.training.draws=exact`` and ``=stacked`` (one
process, single-threaded numerics), the ratios to the DARS fit, and the largest parameter
difference between the two paths. CPU seconds are the steadier figure on a loaded machine.

    python bench/draws_speed.py --draws 100
    python bench/draws_speed.py --routers mirt rm_softmax --draws 20
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch

from benchmark.data.dataset import ObservationBlock
from routers.embedllm import EmbedLLMRouter
from routers.graphrouter import GraphRouter
from routers.mirt import MIRTRouter
from routers.rm_softmax import RMSoftmaxRouter
from supervision.modes import make_targets

ROUTERS = {"embedllm": EmbedLLMRouter, "mirt": MIRTRouter, "rm_softmax": RMSoftmaxRouter,
           "graphrouter": GraphRouter}


def data(seed: int = 0):
    rng = np.random.default_rng(seed)
    Q, d, M, V, S = 200, 384, 6, 5, 5
    X = rng.normal(size=(Q, d))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    score = (rng.random((Q, M, V, S)) < rng.uniform(0.2, 0.9, (Q, M))[..., None, None]) * 1.0
    cost = np.linspace(0, 1, M)[None, :, None, None] * rng.uniform(0.8, 1.2, score.shape)
    return X, ObservationBlock(score, cost, np.ones(score.shape, bool), np.arange(V), np.arange(S))


def timed(router, X, targets):
    t, c = time.perf_counter(), time.process_time()
    router.fit(X, targets, seed=0)
    return router, time.perf_counter() - t, time.process_time() - c


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--routers", nargs="+", default=list(ROUTERS))
    ap.add_argument("--draws", type=int, default=100)
    args = ap.parse_args()
    X, block = data()
    dars, draws = make_targets(block, "dars"), make_targets(block, "single_shot", n_draws=args.draws)
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; {args.draws} draws")
    for name in args.routers:
        cls = ROUTERS[name]
        _, w1, c1 = timed(cls(), X, dars)
        line = f"{name:12s} dars fit {w1:6.2f} s wall {c1:6.2f} s cpu"
        fitted = {}
        for path in ("exact", "stacked"):
            fitted[path], w, c = timed(cls(training=dict(draws=path)), X, draws)
            line += f" | {path} {w:7.2f} s wall {c:7.2f} s cpu ({c / c1:5.1f}x dars cpu)"
        with torch.no_grad():
            gap = max(
                max(float((a - b).abs().max()) for a, b in zip(na.parameters(), nb.parameters()))
                for na, nb in zip(fitted["exact"]._fitted_nets(), fitted["stacked"]._fitted_nets())
            )
        print(f"{line} | max |param diff| {gap:.2g}", flush=True)


if __name__ == "__main__":
    main()
