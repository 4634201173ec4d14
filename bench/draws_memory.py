"""Peak memory of one 100-draw neural fit, exact vs stacked, each in a fresh process.

Synthetic paper-size data (``bench/draws_speed.py``); one epoch (the peak is reached at the
first step). Prints the RSS after the imports and the peak RSS (``ru_maxrss``) after fit and
routing of 300 test queries.

    python bench/draws_memory.py --routers graphrouter --draws 100
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys

from draws_speed import ROUTERS, data


def child(name: str, path: str, draws: int) -> None:
    import psutil

    from supervision.modes import make_targets

    X, X_test, block = data()
    base = psutil.Process().memory_info().rss / 2**20
    router = ROUTERS[name](training=dict(draws=path, epochs=1))
    router.fit(X, make_targets(block, "single_shot", n_draws=draws), seed=0)
    router.route(X_test, 0.05, 0.0)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{name:12s} {path:8s} after imports {base:5.0f} MB | peak (fit + route) {peak:5.0f} MB")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--routers", nargs="+", default=list(ROUTERS))
    ap.add_argument("--draws", type=int, default=100)
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(*args.child, args.draws)
        return
    for name in args.routers:
        for path in ("exact", "stacked"):
            cmd = [sys.executable, __file__, "--child", name, path, "--draws", str(args.draws)]
            print(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip(), flush=True)


if __name__ == "__main__":
    main()
