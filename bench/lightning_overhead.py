"""Lightning's fixed cost per neural fit: one ``train_module`` call on a one-step problem.

Times ``routers.neural.train_module`` (Trainer construction, seeding, fit loop set-up and
teardown, global-state restore) on a 1-draw, 1-epoch, 1-minibatch MIRT network, against the
same step done by hand (forward, backward, Adam), and prints the per-fit overhead.

    python bench/lightning_overhead.py --repeats 30
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch

from routers.mirt import MIRTRouter
from routers.neural import DrawBatches, DrawModule, numerics_context, seeded_init, train_module
from supervision.modes import Targets


def problem(seed: int = 0):
    rng = np.random.default_rng(seed)
    X = torch.from_numpy(rng.normal(size=(8, 4)).astype(np.float32))
    mu = rng.random((8, 3))
    t = Targets("dars", mu, mu, mu * 0.1, True, np.ones((8, 3), int))
    router = MIRTRouter(latent=2, hidden=(4,))
    with seeded_init(0):
        net = router._new_net(4, 3)
    data = router._draw_data(t, 0.0)
    return router, net, X, data, router._examples(data, np.arange(8))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=30)
    args = ap.parse_args()
    router, _, X, data, ex = problem()
    fits, steps = [], []
    for _ in range(args.repeats + 1):
        _, net, *_ = problem()
        module = DrawModule([net], X, [data], [ex], None, [0], 1e-3)
        t = time.perf_counter()
        train_module(module, DrawBatches([len(ex)], len(ex), [0]), max_epochs=1, seed=0)
        fits.append(time.perf_counter() - t)
        _, net, *_ = problem()
        opt = torch.optim.Adam(net.parameters(), lr=1e-3, fused=True)
        t = time.perf_counter()
        with numerics_context():
            opt.zero_grad()
            net.loss(X, data, ex, None).backward()
            opt.step()
        steps.append(time.perf_counter() - t)
    fit, step = np.median(fits[1:]) * 1e3, np.median(steps[1:]) * 1e3
    print(f"load average {os.getloadavg()[0]:.1f}; median of {args.repeats}:")
    print(f"  train_module (1 step): {fit:.1f} ms; the step by hand: {step:.2f} ms; "
          f"Lightning's per-fit overhead: {fit - step:.1f} ms")


if __name__ == "__main__":
    main()
