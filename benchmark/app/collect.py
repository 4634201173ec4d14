"""``darsbench-collect``: build a DARS dataset from OpenAI-compatible endpoints.

    darsbench-collect --config conf/collect/tinypool.yaml
    darsbench-collect --config my.yaml --budget-usd 5 --stages prepare,rewrite
    darsbench-collect --config my.yaml split.seed=3 decoding.max_tokens.math=1024

Exit status: 0 complete; 2 bad config / source / work_dir; 3 stopped by the budget;
4 incomplete (some requests failed: they are retried by the next run); 130 interrupted.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
import uuid

from benchmark.collect.client import Budget
from benchmark.collect.config import ConfigError, load_config
from benchmark.collect.pipeline import STAGES, PrepareMismatch, RunContext, run_stages
from benchmark.collect.sources import SourceError
from benchmark.collect.store import Store, StoreLockedError

EXIT_OK, EXIT_CONFIG, EXIT_BUDGET, EXIT_INCOMPLETE, EXIT_INTERRUPTED = 0, 2, 3, 4, 130


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="darsbench-collect", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--config", required=True, help="collection config (YAML), e.g. conf/collect/tinypool.yaml")
    p.add_argument("--stages", default=",".join(STAGES), help=f"comma-separated subset of {','.join(STAGES)} (default: all)")
    p.add_argument("--budget-usd", type=float, default=None,
                   help="stop before the spend would pass this many USD (overrides budget_usd of the config)")
    p.add_argument("--budget-scope", choices=("run", "total"), default="run",
                   help="`run`: the budget covers this invocation; `total`: it includes the spend of earlier runs "
                        "stored in the work_dir (default: run)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("overrides", nargs="*", help="config overrides key=value (OmegaConf dot-list)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("httpx", "httpcore", "sentence_transformers"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    stages = [s.strip() for s in args.stages.split(",") if s.strip()]
    bad = [s for s in stages if s not in STAGES]
    if bad:
        print(f"darsbench-collect: unknown stage {bad[0]!r}; stages are {', '.join(STAGES)}", file=sys.stderr)
        return EXIT_CONFIG
    try:
        cfg = load_config(args.config, args.overrides)
    except ConfigError as exc:
        print(f"darsbench-collect: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    try:
        store = Store(cfg.work_dir)
    except StoreLockedError as exc:
        print(f"darsbench-collect: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    run_id = time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]
    limit = args.budget_usd if args.budget_usd is not None else cfg.budget_usd
    already = store.total_spend_usd() if args.budget_scope == "total" else 0.0
    budget = Budget(limit, already)
    ctx = RunContext(cfg, store, run_id, budget, progress=not args.no_progress)
    store.start_run(run_id, sys.argv if argv is None else ["darsbench-collect", *argv])
    t0 = time.monotonic()
    status = "failed"
    code = EXIT_CONFIG
    try:
        print(f"darsbench-collect: dataset {cfg.dataset}, work_dir {cfg.work_dir}, run {run_id}"
              + (f", budget ${limit} ({args.budget_scope})" if limit is not None else ""), flush=True)
        results = run_stages(ctx, stages)
        failed = sum(r.failed for r in results)
        incomplete = any(not r.complete for r in results)
        if any(r.budget_stopped for r in results):
            status, code = "budget", EXIT_BUDGET
        elif failed or incomplete:
            status, code = "incomplete", EXIT_INCOMPLETE
        else:
            status, code = "complete", EXIT_OK
        print(f"darsbench-collect: {status} in {time.monotonic() - t0:.1f}s; spend this run ${budget.spent:.6f}, "
              f"total ${store.total_spend_usd():.6f}", flush=True)
        if failed:
            print(f"darsbench-collect: {failed} requests failed (see the errors table in {store.path}); "
                  "run the same command again to retry them", flush=True)
        return code
    except (SourceError, PrepareMismatch) as exc:
        print(f"darsbench-collect: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except KeyboardInterrupt:
        status, code = "interrupted", EXIT_INTERRUPTED
        print("\ndarsbench-collect: interrupted; completed items are saved, run again to resume", file=sys.stderr)
        return code
    finally:
        store.finish_run(run_id, status, f"{budget.spent}")
        store.close()


if __name__ == "__main__":
    sys.exit(main())
