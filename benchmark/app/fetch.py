"""``darsbench-fetch``: download the official DARS release into the darsbench cache, check it.

    darsbench-fetch dars                 # gpqa, math-500 and drop-800
    darsbench-fetch gpqa --revision main

Files come from the Hugging Face Hub dataset repo AIGNLAI/DARS (pinned revision, see
benchmark/data/fetch.py) through ``huggingface_hub`` (progress, resume, its cache layout under
``<cache>/hub``). Each dataset is then loaded and compared with the release facts (rows, training
queries, models, grid). Exit status: 0 fetched and matching; 2 unavailable (one line with the
manual command); 3 fetched but differing from the release facts (each difference printed).
"""

from __future__ import annotations

import argparse
import sys
import warnings
from typing import Sequence

from benchmark.data.errors import DataError
from benchmark.data.fetch import RELEASE_NAMES, REPO_ID, REVISION, ReleaseUnavailable, fetch_release
from benchmark.data.loader import load_dars_dir
from benchmark.data.release import check_release_facts

EXIT_OK, EXIT_UNAVAILABLE, EXIT_DIFFERS = 0, 2, 3
TARGETS = {
    "dars": "the whole release: gpqa, math-500 and drop-800",
    "gpqa": "GPQA: 30,000 train and 8,928 test rows, 6 models",
    "math-500": "MATH-500: 30,000 train and 10,800 test rows, 6 models",
    "drop-800": "DROP-800: 30,000 train and 21,600 test rows (continuous F1 scores), 6 models",
}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="darsbench-fetch",
        description=f"Download the official DARS release ({REPO_ID} on the Hugging Face Hub) into the darsbench "
                    "cache and check it against the release facts.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="targets:\n" + "\n".join(f"  {k:<10} {v}" for k, v in TARGETS.items())
        + "\n\nthen: darsbench dataset=dars dataset.name=gpqa   (no data_dir needed)",
    )
    p.add_argument("target", choices=list(TARGETS), metavar="TARGET", help="dars | " + " | ".join(RELEASE_NAMES))
    p.add_argument("--revision", default=REVISION, help=f"Hub revision: commit, tag or branch (default: {REVISION})")
    p.add_argument("--cache-dir", default=None, help="darsbench cache root (default: $DARSBENCH_CACHE or ~/.cache/darsbench)")
    p.add_argument("--offline", action="store_true", help="use the cached copy only (also: HF_HUB_OFFLINE=1)")
    p.add_argument("--no-progress", action="store_true", help="no download progress bars")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    names = list(RELEASE_NAMES) if args.target == "dars" else [args.target]
    code = EXIT_OK
    for name in names:
        try:
            res = fetch_release(name, revision=args.revision, cache_root=args.cache_dir,
                                offline=True if args.offline else None, progress=not args.no_progress)
        except ReleaseUnavailable as exc:
            print(f"darsbench-fetch: {exc}", file=sys.stderr)
            return EXIT_UNAVAILABLE
        where = "cached" if res.from_cache else "downloaded"
        print(f"{name}: {where} revision {res.revision} -> {res.data_dir / name}")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the facts are checked and printed below
                ds = load_dars_dir(res.data_dir, name, cache_dir=args.cache_dir)
        except DataError as exc:
            print(f"darsbench-fetch: {name}: the downloaded files do not load: {exc}", file=sys.stderr)
            return EXIT_UNAVAILABLE
        n_test = ds.test_rewrite.n_observations + ds.test_decoding.n_observations
        print(f"  {ds.train.n_observations} train rows, {n_test} test rows, {ds.train.n_queries} training queries, "
              f"{len(ds.models)} models")
        diffs = check_release_facts(ds)
        if diffs:
            code = EXIT_DIFFERS
            for d in diffs:
                print(f"  DIFFERS {d}")
        else:
            print("  release facts: all match")
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
