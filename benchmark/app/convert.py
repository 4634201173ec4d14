"""``darsbench-convert``: other routing data sets in and out of the DARS schema (docs/convert.md).

    darsbench-convert dcrouter --out data/converted --cost-proxy params
    darsbench-convert routerbench --src routerbench_0shot.pkl --out data/converted
    darsbench-convert llmrouterbench --src bench/ --out data/converted
    darsbench-convert table --src runs.csv --query qid --model llm --score acc --cost usd --out data/converted --name mine
    darsbench-convert export-routerbench --data-dir data/converted --name mine --out mine_wide.parquet

A file-in / file-out tool, so argparse rather than Hydra (docs/convert.md says why). The logic
lives in :mod:`benchmark.data.importers`; this module parses arguments and prints the report.
Exit status: 0 written; 2 bad input (one line naming the file, row or item, and field).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from benchmark.data.errors import DataError
from benchmark.data.importers.common import ConvertError
from benchmark.data.importers.dcrouter import (
    DCROUTER_MODELS,
    DCROUTER_PARAMS_B,
    SHIPPED_DIR,
    TEST_VIEWS_NOTE,
    convert_dcrouter,
)
from benchmark.data.importers.llmrouter import convert_llmrouter, export_llmrouter
from benchmark.data.importers.llmrouterbench import convert_llmrouterbench
from benchmark.data.importers.routerbench import convert_routerbench, export_routerbench, query_tasks
from benchmark.data.importers.table import convert_table
from benchmark.data.loader import load_dars_dir

__all__ = ["ConvertError", "DCROUTER_MODELS", "DCROUTER_PARAMS_B", "TEST_VIEWS_NOTE", "convert_dcrouter", "main", "parser"]

FORMATS = {
    "dcrouter": "import LLMRouter's dcrouter data (train.json / test.json); the shipped copy by default",
    "routerbench": "import RouterBench (withmartian/routerbench routerbench_0shot.pkl / 5shot.pkl, or .parquet/.csv)",
    "llmrouter": "import LLMRouter's general routing data (routing_data_{train,test}.jsonl + default_llm.json prices)",
    "llmrouterbench": "import LLMRouterBench results (the unpacked bench/<dataset>/<split>/<model>/<timestamp>.json)",
    "table": "import any long table (CSV, Parquet, JSONL) with --query --model --score --cost [--variant --decode --text ...]",
    "export-routerbench": "export a DARS dataset to RouterBench's wide layout (.pkl, .parquet or .csv)",
    "export-llmrouter": "export a DARS dataset to LLMRouter's per-query score format (train.json / test.json)",
}


def _split_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--test-fraction", type=float, default=0.2,
                   help="share of queries put in test when the source has no split (default 0.2)")
    p.add_argument("--seed", type=int, default=0, help="seed of that split (default 0); stratified by the task field")


def _export_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", required=True, help="folder holding <name>/ (a DARS dataset)")
    p.add_argument("--name", required=True, help="dataset folder name")
    p.add_argument("--variant", type=int, default=None, help="view id exported per pair (default: the first)")
    p.add_argument("--decode", type=int, default=None, help="decode id exported per pair (default: the first)")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="darsbench-convert",
        description="Convert routing data sets into the DARS JSONL schema, and DARS data out (docs/convert.md).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="formats:\n" + "\n".join(f"  {k:<19} {v}" for k, v in FORMATS.items()),
    )
    sub = p.add_subparsers(dest="format", required=True, metavar="FORMAT", help="one of the formats below")
    d = sub.add_parser("dcrouter",
                       description="LLMRouter dcrouter format -> <out>/<name>/. Both test views hold the same single "
                       "observation (rU == dU).")
    d.add_argument("--src", default=str(SHIPPED_DIR),
                   help="folder with train.json and test.json (default: the copy shipped in the package)")
    d.add_argument("--out", required=True, help="data_dir to write <name>/ into")
    d.add_argument("--name", default="dcrouter", help="dataset folder name (default: dcrouter)")
    d.add_argument("--cost-proxy", required=True, metavar="params|uniform|FILE.json",
                   help="the source has no cost: 'params' (parameter count in billions per call), "
                   "'uniform' (0 for every model) or a JSON file {model: cost}")
    d.add_argument("--drop-invalid", action="store_true", help="drop invalid items (each one printed) instead of stopping")

    r = sub.add_parser("routerbench", description=FORMATS["routerbench"])
    r.add_argument("--src", required=True, help="routerbench_0shot.pkl, routerbench_5shot.pkl (or the layout as .parquet/.csv)")
    r.add_argument("--out", required=True, help="data_dir to write <name>/ into")
    r.add_argument("--name", default="routerbench", help="dataset folder name (default: routerbench)")
    r.add_argument("--no-responses", action="store_true", help="do not copy the model responses into output_text")
    _split_args(r)

    lr = sub.add_parser("llmrouter", description=FORMATS["llmrouter"])
    lr.add_argument("--train", required=True, help="routing data of the training queries (JSONL)")
    lr.add_argument("--test", required=True, help="routing data of the test queries (JSONL)")
    lr.add_argument("--out", required=True, help="data_dir to write <name>/ into")
    lr.add_argument("--name", default="llmrouter", help="dataset folder name (default: llmrouter)")
    cost = lr.add_mutually_exclusive_group(required=True)
    cost.add_argument("--llm-data", help="default_llm.json: input_price / output_price per million tokens (cost in USD)")
    cost.add_argument("--cost-proxy", choices=("tokens", "uniform"), help="no prices: token_num per call, or 0")

    lb = sub.add_parser("llmrouterbench", description=FORMATS["llmrouterbench"])
    lb.add_argument("--src", required=True, help="the bench/ folder of LLMRouterBench's released results")
    lb.add_argument("--out", required=True, help="data_dir to write <name>/ into")
    lb.add_argument("--name", default="llmrouterbench", help="dataset folder name (default: llmrouterbench)")
    lb.add_argument("--missing-cost", choices=("error", "zero"), default="error",
                    help="records without a cost (the performance setting): stop (default) or import with cost 0")
    _split_args(lb)

    t = sub.add_parser("table", description=FORMATS["table"]
                       + ". Rows repeating a (query, model, variant) without --decode become decodes 0, 1, ...")
    t.add_argument("--src", required=True, help="the table (.csv, .parquet, .jsonl)")
    t.add_argument("--out", required=True, help="data_dir to write <name>/ into")
    t.add_argument("--name", required=True, help="dataset folder name")
    for role, need in (("query", True), ("model", True), ("score", True), ("cost", True), ("variant", False),
                       ("decode", False), ("text", False), ("task", False), ("split", False)):
        t.add_argument(f"--{role}", required=need, metavar="COLUMN", help=f"column holding the {role}"
                       + ("" if need else " (optional)"))
    _split_args(t)

    for fmt in ("export-routerbench", "export-llmrouter"):
        e = sub.add_parser(fmt, description=FORMATS[fmt])
        _export_args(e)
        e.add_argument("--out", required=True, help="output file (.pkl/.parquet/.csv)" if fmt == "export-routerbench"
                       else "output folder (train.json, test.json)")
    return p


def _dcrouter(args: argparse.Namespace) -> None:
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


def run(args: argparse.Namespace) -> None:
    if args.format == "dcrouter":
        _dcrouter(args)
        return
    if args.format == "routerbench":
        rep = convert_routerbench(args.src, args.out, name=args.name, test_fraction=args.test_fraction, seed=args.seed,
                                  responses=not args.no_responses)
        print("\n".join(rep.lines()))
        return
    if args.format == "llmrouter":
        rep = convert_llmrouter(args.train, args.test, args.out, name=args.name, llm_data=args.llm_data,
                                cost_proxy=args.cost_proxy)
        print("\n".join(rep.lines()))
        return
    if args.format == "llmrouterbench":
        rep = convert_llmrouterbench(args.src, args.out, name=args.name, missing_cost=args.missing_cost,
                                     test_fraction=args.test_fraction, seed=args.seed)
        print("\n".join(rep.lines()))
        return
    if args.format == "table":
        columns = {k: getattr(args, k) for k in ("query", "model", "score", "cost", "variant", "decode", "text", "task", "split")}
        rep = convert_table(args.src, args.out, columns, name=args.name, test_fraction=args.test_fraction, seed=args.seed)
        print("\n".join(rep.lines()))
        return
    ds = load_dars_dir(args.data_dir, args.name)
    if args.format == "export-routerbench":
        path = export_routerbench(ds, args.out, variant=args.variant, decode=args.decode,
                                  tasks=query_tasks(Path(args.data_dir) / args.name))
    else:
        path = export_llmrouter(ds, args.out, variant=args.variant, decode=args.decode)
    print(f"wrote {path} ({ds.train.n_queries} train + {ds.test_rewrite.n_queries} test queries x {len(ds.models)} models; "
          "one observation per pair)")


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        run(args)
    except (ConvertError, DataError) as err:
        print(f"darsbench-convert: {' '.join(str(err).split(chr(10))[0].split())}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
