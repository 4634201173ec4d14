"""``results.json`` files -> one tidy records frame (one row per run) and its one grouping
vocabulary: a *setting* is (dataset column, lambda, beta, cost norm, protocol). Conventions:
docs/analyses.md, section "Leaderboards"."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

#: Folders under a sweep whose results.json files are copies, not runs.
SKIP_DIRS = frozenset({"wandb"})
#: Supervision modes in the order of the paper's Table 2 rows.
MODE_ORDER = (
    "single_shot", "input_only", "output_only", "dars_no_risk", "dars_rewrite_risk",
    "dars_decode_risk", "dars",
)
#: Routers in the paper's order; other routers follow alphabetically.
ROUTER_ORDER = ("mlp", "knn", "embedllm", "mirt", "rm_softmax", "graphrouter", "avengers_pro")
#: Dataset column order; other datasets follow alphabetically.
DATASET_ORDER = ("gpqa", "math-500", "drop-800", "gpqa_like", "math_like", "drop_like")
#: Protocol row order (rewrites x decodes).
PROTOCOL_ORDER = ("1x1", "1x5", "3x3", "5x1", "5x5", "full")
#: Setting fields that define a table group (the dataset is the table's column). ``train`` is
#: the training-set size asked for (``all``, ``n=<queries>`` or ``B=<generations per model>``).
GROUP_FIELDS = ("lam", "beta", "norm", "protocol", "train")
_FIELD_NAMES = {"lam": "lambda", "beta": "beta", "norm": "cost norm", "protocol": "protocol",
                "train": "training set"}


def find_results(paths: Iterable[str | Path]) -> list[Path]:
    """Every ``results.json`` under the given files or folders, sorted."""
    found: list[Path] = []
    for p in map(Path, paths):
        if p.is_file():
            found.append(p)
        elif p.is_dir():
            # Copies kept by experiment trackers (wandb/offline-run-*/files/results.json) and
            # hidden folders are not runs of their own.
            found.extend(
                f for f in sorted(p.rglob("results.json"))
                if not any(part in SKIP_DIRS or part.startswith(".") for part in f.relative_to(p).parts[:-1])
            )
        else:
            raise FileNotFoundError(f"no such results file or folder: {p}")
    return found


def load_results(paths: Iterable[str | Path]) -> list[dict[str, Any]]:
    """The parsed ``results.json`` files under ``paths``, each with its ``_path``."""
    out = []
    for f in find_results(paths):
        try:
            res = json.loads(Path(f).read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ValueError(f"{f}:{exc.lineno}: not valid JSON ({exc.msg})") from None
        res["_path"] = str(f)
        out.append(res)
    return out


def ordered(values: Iterable[str], order: tuple[str, ...]) -> list[str]:
    """Distinct ``values``: those named in ``order`` first (in that order), then the rest sorted."""
    vals = list(dict.fromkeys(values))
    known = [v for v in order if v in vals]
    return known + sorted(v for v in vals if v not in order)


def protocol_label(protocol: dict[str, Any] | None) -> str:
    """``full`` or ``RxD`` (``all`` for an unrestricted axis)."""
    p = protocol or {}
    nr, nd = p.get("n_rewrites"), p.get("n_decodes")
    if nr is None and nd is None:
        return "full"
    return f"{'all' if nr is None else nr}x{'all' if nd is None else nd}"


def row_label(router: str, mode: str) -> str:
    """Table 1 naming: ``knn`` (single-shot), ``knn + DARS``; other modes in parentheses."""
    if mode == "single_shot":
        return router
    if mode == "dars":
        return f"{router} + DARS"
    return f"{router} ({mode})"


def describe(fields: tuple[str, ...], key: tuple) -> str:
    """``lambda=0.05, beta=0.0, ...`` for the values ``key`` of setting ``fields`` (a training
    set of ``all`` queries, the default, is not mentioned)."""
    return ", ".join(
        f"{_FIELD_NAMES[f]}={v}" for f, v in zip(fields, key) if not (f == "train" and v == "all")
    )


def slug(fields: tuple[str, ...], key: tuple) -> str:
    short = {"lam": "lam", "beta": "beta", "norm": "", "protocol": "", "train": ""}
    return "_".join(f"{short[f]}{v}" for f, v in zip(fields, key) if not (f == "train" and v == "all"))


def train_label(training: dict[str, Any] | None) -> str:
    """``all``, ``n=<queries>`` or ``B=<generations per model>`` from a run's ``training``."""
    t = training or {}
    if t.get("budget_per_model") is not None:
        return f"B={t['budget_per_model']}"
    if t.get("n_queries_asked") is not None:
        return f"n={t['n_queries_asked']}"
    return "all"


def _features_name(res: dict[str, Any]) -> str | None:
    target = ((res.get("config") or {}).get("features") or {}).get("_target_")
    return str(target).rsplit(".", 1)[-1] if target else None


def records_frame(results: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per run: identity, setting, and every metric's mean / std / n (+ CI bounds).

    ``idx`` points back into ``results``; ``column`` is the dataset's column label (the name,
    or ``name@hash`` where one name has several contents); ``setting`` describes the run's
    dataset and :data:`GROUP_FIELDS` in words (the long table's block heading).
    """
    rows = []
    for i, res in enumerate(results):
        d, c = res["dataset"], res["cost"]
        row: dict[str, Any] = {
            "idx": i,
            "path": res.get("_path"),
            "router": str(res["router"]),
            "mode": str(res["supervision"]),
            "dataset": str(d["name"]),
            "content_hash": d.get("content_hash"),
            "lam": float(c["lam"]),
            "beta": float(c["beta"]),
            "norm": str(c["norm"]),
            "protocol": protocol_label(res.get("protocol")),
            "train": train_label(res.get("training")),
            "seed": res.get("seed"),
            "n_draws": int(res.get("n_draws") or 1),
            "features": _features_name(res),
            "router_params": res.get("router_params"),
            "data_seed": ((res.get("config") or {}).get("dataset") or {}).get("seed"),
            "train_queries": (res.get("training") or {}).get("n_queries"),
            "budget": (res.get("training") or {}).get("budget_per_model"),
            "generations": ((res.get("training") or {}).get("generations") or {}).get("per_model"),
        }
        row["setting"] = (
            f"dataset {row['dataset']} (data {str(row['content_hash'])[:12]}), "
            + describe(GROUP_FIELDS, tuple(row[f] for f in GROUP_FIELDS))
        )
        for k, v in res["metrics"].items():
            row[k], row[k + "_std"], row[k + "_n"] = v["mean"], v["std"], v["n"]
            row[k + "_low"], row[k + "_high"] = v.get("ci") or (float("nan"), float("nan"))
        rows.append(row)
    df = pd.DataFrame(rows)
    if df.empty:
        return df
    # One column per dataset name; contents that differ only by the simulator's seed are seed
    # replicates of that column, other contents sharing a name get columns name@hash.
    seed_key = df["data_seed"].astype(str)
    hashes = df.assign(_s=seed_key).groupby(["dataset", "_s"])["content_hash"].nunique(dropna=False)
    clash = hashes[hashes > 1].index.get_level_values(0)
    df["column"] = [
        f"{n}@{str(h)[:8]}" if n in clash else n for n, h in zip(df["dataset"], df["content_hash"])
    ]
    return df


def columns(df: pd.DataFrame) -> list[str]:
    """The dataset columns of ``df`` in :data:`DATASET_ORDER`."""
    base = {c: n for c, n in zip(df["column"], df["dataset"])}
    ordered_names = ordered(base.values(), DATASET_ORDER)
    return sorted(base, key=lambda c: (ordered_names.index(base[c]), c))


def groups(df: pd.DataFrame, fields: tuple[str, ...] = GROUP_FIELDS) -> list[tuple[tuple, pd.DataFrame]]:
    """``(key, rows)`` per distinct value of ``fields``, sorted by key."""
    if df.empty:
        return []
    return [(k if isinstance(k, tuple) else (k,), sub) for k, sub in df.groupby(list(fields), sort=True)]


def decisions_path(res: dict[str, Any]) -> Path:
    """The decisions file next to a run's ``results.json`` (parquet, else csv)."""
    folder = Path(res["_path"]).parent
    for name in ("decisions.parquet", "decisions.csv"):
        if (folder / name).is_file():
            return folder / name
    raise FileNotFoundError(f"{folder}: no decisions.parquet or decisions.csv next to results.json")


def per_query_values(res: dict[str, Any], metrics: Iterable[str]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """``(query_ids [Q], {metric: values [D, Q]})`` of a run, read from its decisions file.

    The file holds one row per (draw, query), draw-major, with a column per metric (the value
    of the chosen model on that query). A file without a metric's column is an error naming it.
    """
    path = decisions_path(res)
    frame = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    n_draws = int(frame["draw"].max()) + 1
    if len(frame) % n_draws:
        raise ValueError(f"{path}: {len(frame)} rows do not split into {n_draws} draws")
    n_q = len(frame) // n_draws
    frame = frame.sort_values(["draw"], kind="stable")
    ids = frame["query_id"].astype(str).to_numpy().reshape(n_draws, n_q)
    if (ids != ids[0]).any():
        raise ValueError(f"{path}: draws list the test queries in different orders")
    out = {}
    for m in metrics:
        if m not in frame:
            raise ValueError(f"{path}: no per-query column {m!r} (written by darsbench >= issue 13)")
        out[m] = frame[m].to_numpy(float).reshape(n_draws, n_q)
    return ids[0], out
