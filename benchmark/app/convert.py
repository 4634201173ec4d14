"""``darsbench-convert``: other routing data sets in and out of the DARS schema (docs/convert.md).

    darsbench-convert dcrouter --out data/converted --cost-proxy params

A file-in / file-out tool, so argparse rather than Hydra (docs/convert.md says why). The
conversion logic lives in :mod:`benchmark.data.importers`; this module only parses arguments
and prints the importer's report. Exit status: 0 written; 2 bad input (one line naming the file,
item or row, and field).
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from benchmark.data.importers.common import ConvertError
from benchmark.data.importers.dcrouter import (
    DCROUTER_MODELS,
    DCROUTER_PARAMS_B,
    SHIPPED_DIR,
    TEST_VIEWS_NOTE,
    convert_dcrouter,
)

__all__ = ["ConvertError", "DCROUTER_MODELS", "DCROUTER_PARAMS_B", "TEST_VIEWS_NOTE", "convert_dcrouter", "main", "parser"]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="darsbench-convert",
        description="Convert other routing data sets into the DARS JSONL schema, and DARS data out (docs/convert.md).",
    )
    sub = p.add_subparsers(dest="format", required=True, metavar="FORMAT")
    d = sub.add_parser(
        "dcrouter",
        help="LLMRouter dcrouter_preprocessed: train.json / test.json, one score per (query, model)",
        description="LLMRouter dcrouter format -> <out>/<name>/{train,test}_scored_generations.jsonl "
        "+ metadata.json. Both test views hold the same single observation (rU == dU).",
    )
    d.add_argument("--src", default=str(SHIPPED_DIR),
                   help="folder with train.json and test.json (default: the copy shipped in the package)")
    d.add_argument("--out", required=True, help="data_dir to write <name>/ into")
    d.add_argument("--name", default="dcrouter", help="dataset folder name (default: dcrouter)")
    d.add_argument(
        "--cost-proxy", required=True, metavar="params|uniform|FILE.json",
        help="the source has no cost: 'params' (parameter count in billions per call), "
        "'uniform' (0 for every model) or a JSON file {model: cost}",
    )
    d.add_argument("--drop-invalid", action="store_true",
                   help="drop invalid items (each one printed) instead of stopping")
    return p


def _dcrouter(args: argparse.Namespace) -> int:
    rep = convert_dcrouter(args.src, args.out, cost_proxy=args.cost_proxy, name=args.name,
                           drop_invalid=args.drop_invalid)
    if rep.dropped:
        print(f"dropped {len(rep.dropped)} problem(s) (whole items):", file=sys.stderr)
        for pr in rep.dropped:
            print(f"  {pr}", file=sys.stderr)
    print(f"wrote {rep.folder} in {rep.seconds:.2f} s")
    print(f"  train: {rep.n_train} queries x {len(rep.models)} models = {rep.n_train_rows} rows")
    print(f"  test:  {rep.n_test} queries x {len(rep.models)} models x 2 views = {rep.n_test_rows} rows")
    print(f"  scores: {rep.score_types['binary']} binary, {rep.score_types['f1']} partial (f1)")
    print(f"  cost proxy: {rep.cost_proxy} {rep.costs}")
    print(f"  NOTE test views: {TEST_VIEWS_NOTE}; only single-shot supervision is meaningful")
    if rep.train_test_overlap:
        print(f"  NOTE {rep.train_test_overlap} of {rep.n_test} test questions also appear verbatim in train")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return _dcrouter(args)
    except ConvertError as err:
        print(f"darsbench-convert: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
