"""Importer for LLMRouter's ``dcrouter_preprocessed`` data (``train.json`` / ``test.json``).

Each file is a JSON list of ``{"question": str, "scores": {model: float in [0, 1]}, "cluster_id": int}``.
One observation per (query, model) pair and no cost, so a cost proxy is declared explicitly, train
rows get ``prompt_variant_id = 0, decode_id = 0``, and each test observation is written as a
``prompt_variation`` row (variant 0) and a ``decoding_variation`` row (variant -1): both test views
hold the SAME observation, so rU == dU. See docs/convert.md.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from benchmark.data.dars_format import write_dars_jsonl
from benchmark.data.importers.common import _MAX_LISTED, ConvertError, Problem, show as _show

#: The copy of the data shipped in the package (MIT; LICENSE and SOURCE.md beside it).
SHIPPED_DIR = Path(__file__).resolve().parents[1] / "datasets" / "llmrouter-dcrouter"

#: Pool order and parameter counts (billions) as ``SOURCE.md`` lists them.
DCROUTER_MODELS: tuple[str, ...] = (
    "llama3-chatqa-1.5-8b",
    "qwen2.5-7b-instruct",
    "llama3-chatqa-1.5-70b",
    "llama-3.1-nemotron-51b-instruct",
    "mistral-7b-instruct-v0.3",
    "gemma-2-9b-it",
    "llama-3.1-8b-instruct",
    "codegemma-7b",
    "llama-3.3-nemotron-super-49b-v1",
)
DCROUTER_PARAMS_B: dict[str, float] = dict(zip(DCROUTER_MODELS, (8, 7, 70, 51, 7, 9, 8, 7, 49)))

TEST_VIEWS_NOTE = "both views hold the same single observation; rU == dU"
SOURCE_NOTE = (
    "LLMRouter dcrouter_preprocessed (ulab-uiuc/LLMRouter, data/dcrouter_preprocessed); "
    "one observation per (query, model) pair, no cost recorded"
)

@dataclass
class ConvertReport:
    """What :func:`convert_dcrouter` wrote (returned, and printed by the CLI)."""

    folder: Path
    n_train: int
    n_test: int
    models: list[str]
    cost_proxy: str
    costs: dict[str, float]
    n_train_rows: int
    n_test_rows: int
    score_types: dict[str, int]
    train_test_overlap: int
    dropped: list[Problem] = field(default_factory=list)
    seconds: float = 0.0


# --------------------------------------------------------------------------------------------
# reading and validating the source


def _read_list(path: Path) -> list:
    if not path.is_file():
        raise ConvertError(path, None, None, "file not found")
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as exc:
        raise ConvertError(path, None, None, f"malformed JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})") from None
    except UnicodeDecodeError as exc:
        raise ConvertError(path, None, None, f"not valid UTF-8 ({exc.reason})") from None
    if not isinstance(data, list):
        raise ConvertError(path, None, None, f"expected a JSON list of items, got {type(data).__name__}")
    if not data:
        raise ConvertError(path, None, None, "the file has no items")
    return data


def _item_problems(path: Path, i: int, item: Any, pool: Sequence[str] | None) -> list[Problem]:
    """Every problem of one item (an empty list when it is valid)."""
    p = str(path)
    if not isinstance(item, dict):
        return [Problem(p, i, "<item>", f"expected a JSON object, got {type(item).__name__}")]
    out: list[Problem] = []
    q = item.get("question")
    if q is None:
        out.append(Problem(p, i, "question", "required field is missing" if "question" not in item else "value null is not allowed"))
    elif not isinstance(q, str):
        out.append(Problem(p, i, "question", f"value {_show(q)} is not a string"))
    elif not q.strip():
        out.append(Problem(p, i, "question", "value is empty"))
    scores = item.get("scores")
    if scores is None:
        out.append(Problem(p, i, "scores", "required field is missing" if "scores" not in item else "value null is not allowed"))
    elif not isinstance(scores, dict):
        out.append(Problem(p, i, "scores", f"value {_show(scores)} is not an object {{model: score}}"))
    elif not scores:
        out.append(Problem(p, i, "scores", "no models"))
    else:
        for m, v in scores.items():
            f = f"scores.{m}"
            if not m.strip():
                out.append(Problem(p, i, f, "empty model name"))
            elif type(v) not in (int, float):
                out.append(Problem(p, i, f, f"value {_show(v)} is not a number"))
            elif not math.isfinite(v):
                out.append(Problem(p, i, f, f"value {_show(v)} is not finite"))
            elif not 0.0 <= v <= 1.0:
                out.append(Problem(p, i, f, f"value {_show(v)} is outside [0, 1]"))
        if pool is not None and set(scores) != set(pool):
            missing = [m for m in pool if m not in scores]
            extra = [m for m in scores if m not in pool]
            out.append(Problem(p, i, "scores", f"models differ from the pool: missing {missing}, unexpected {extra}"))
    cid = item.get("cluster_id")
    if cid is not None and type(cid) is not int:
        out.append(Problem(p, i, "cluster_id", f"value {_show(cid)} is not an integer"))
    return out


def _pool_from(items: list) -> list[str]:
    """The model pool: SOURCE.md order when the data holds exactly those models, else the key
    order of the first item with a valid ``scores`` object."""
    for item in items:
        if isinstance(item, dict) and isinstance(item.get("scores"), dict) and item["scores"]:
            names = list(item["scores"])
            return list(DCROUTER_MODELS) if set(names) == set(DCROUTER_MODELS) else names
    return list(DCROUTER_MODELS)


def _validate(path: Path, items: list, pool: Sequence[str]) -> tuple[list[int], list[Problem]]:
    """Indices of the valid items and every problem found."""
    keep: list[int] = []
    problems: list[Problem] = []
    for i, item in enumerate(items):
        found = _item_problems(path, i, item, pool)
        if found:
            problems.extend(found)
        else:
            keep.append(i)
    return keep, problems


def _problem_error(problems: list[Problem], n_items: dict[str, int]) -> ConvertError:
    by_file: dict[str, set[int]] = {}
    for pr in problems:
        by_file.setdefault(Path(pr.path).name, set()).add(pr.index)
    counts = ", ".join(f"{name}: {len(idx)} of {n_items[name]} items" for name, idx in by_file.items())
    listed = "\n  ".join(str(pr) for pr in problems[:_MAX_LISTED])
    more = f"\n  ... and {len(problems) - _MAX_LISTED} more" if len(problems) > _MAX_LISTED else ""
    first = problems[0]
    err = ConvertError(
        first.path, first.index, first.field,
        f"{first.detail}\n{len(problems)} problem(s) in {counts} (nothing converted; "
        f"--drop-invalid drops the bad items and lists them):\n  {listed}{more}",
        n_problems=len(problems), problems=problems,
    )
    return err


# --------------------------------------------------------------------------------------------
# cost proxy


def resolve_cost_proxy(spec: str, models: Sequence[str]) -> tuple[str, dict[str, float]]:
    """``params`` | ``uniform`` | a JSON file ``{model: cost}`` -> (recorded name, cost per model)."""
    if spec == "params":
        unknown = [m for m in models if m not in DCROUTER_PARAMS_B]
        if unknown:
            raise ConvertError("--cost-proxy", None, None,
                               f"'params' knows no parameter count for {unknown}; give a JSON file {{model: cost}}")
        return "params", {m: float(DCROUTER_PARAMS_B[m]) for m in models}
    if spec == "uniform":
        return "uniform", {m: 0.0 for m in models}
    path = Path(spec)
    if not path.is_file():
        raise ConvertError(spec, None, None, "--cost-proxy is neither 'params', 'uniform' nor an existing JSON file")
    try:
        table = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ConvertError(path, None, None, f"malformed JSON: {exc.msg} (line {exc.lineno})") from None
    if not isinstance(table, dict):
        raise ConvertError(path, None, None, f"expected a JSON object {{model: cost}}, got {type(table).__name__}")
    missing = [m for m in models if m not in table]
    if missing:
        raise ConvertError(path, None, None, f"no cost for models {missing}")
    costs: dict[str, float] = {}
    for m in models:
        v = table[m]
        if type(v) not in (int, float) or not math.isfinite(v) or v < 0:
            raise ConvertError(path, None, m, f"value {_show(v)} is not a finite number >= 0")
        costs[m] = float(v)
    return f"json:{path}", costs


# --------------------------------------------------------------------------------------------
# conversion


def _score_type(v: float) -> str:
    return "binary" if v in (0.0, 1.0) else "f1"


def convert_dcrouter(
    src: str | os.PathLike,
    out: str | os.PathLike,
    *,
    cost_proxy: str,
    name: str = "dcrouter",
    drop_invalid: bool = False,
) -> ConvertReport:
    """Convert ``<src>/{train,test}.json`` into ``<out>/<name>/`` (DARS schema). Raises
    :class:`ConvertError` on invalid input unless ``drop_invalid`` (then the report lists
    what was dropped)."""
    t0 = time.perf_counter()
    src = Path(src)
    paths = {"train": src / "train.json", "test": src / "test.json"}
    items = {split: _read_list(p) for split, p in paths.items()}
    pool = _pool_from(items["train"])
    proxy_name, costs = resolve_cost_proxy(cost_proxy, pool)

    keep: dict[str, list[int]] = {}
    problems: list[Problem] = []
    for split, p in paths.items():
        keep[split], found = _validate(p, items[split], pool)
        problems.extend(found)
    if problems and not drop_invalid:
        raise _problem_error(problems, {p.name: len(items[s]) for s, p in paths.items()})
    for split, p in paths.items():
        if not keep[split]:
            raise ConvertError(p, None, None, "no valid items left")

    score_types = {"binary": 0, "f1": 0}
    train_rows: list[dict] = []
    for k, i in enumerate(keep["train"]):
        item = items["train"][i]
        qid = f"train-{k:05d}"
        for m in pool:
            s = float(item["scores"][m])
            st = _score_type(s)
            score_types[st] += 1
            row = {
                "dataset": name, "split": "train", "query_id": qid, "model": m,
                "score": s, "cost": costs[m], "prompt_variant_id": 0, "decode_id": 0,
                "original_question": item["question"], "score_type": st, "source_index": i,
            }  # fmt: skip
            if item.get("cluster_id") is not None:
                row["cluster_id"] = item["cluster_id"]
            train_rows.append(row)
    test_rows: list[dict] = []
    for k, i in enumerate(keep["test"]):
        item = items["test"][i]
        qid = f"test-{k:05d}"
        for m in pool:
            s = float(item["scores"][m])
            st = _score_type(s)
            score_types[st] += 1
            base = {
                "dataset": name, "split": "test", "query_id": qid, "model": m,
                "score": s, "cost": costs[m], "decode_id": 0,
                "original_question": item["question"], "score_type": st, "source_index": i,
            }  # fmt: skip
            test_rows.append({**base, "prompt_variant_id": 0, "observation_type": "prompt_variation"})
            test_rows.append({**base, "prompt_variant_id": -1, "observation_type": "decoding_variation"})

    train_q = {items["train"][i]["question"] for i in keep["train"]}
    overlap = sum(1 for i in keep["test"] if items["test"][i]["question"] in train_q)
    metadata = {
        "dataset": name,
        "models": pool,
        "model_info": {m: {"params_b": DCROUTER_PARAMS_B.get(m)} for m in pool},
        "cost_proxy": proxy_name,
        "cost_per_call": costs,
        "test_views": TEST_VIEWS_NOTE,
        "observations_per_pair": 1,
        "source": SOURCE_NOTE,
        "source_files": {split: str(p.resolve()) for split, p in paths.items()},
        "n_train_queries": len(keep["train"]),
        "n_test_queries": len(keep["test"]),
        "score_types": score_types,
        "test_questions_also_in_train": overlap,
        "dropped_items": [str(pr) for pr in problems],
    }
    folder = write_dars_jsonl(train_rows, test_rows, out, name, metadata=metadata)
    return ConvertReport(
        folder=folder, n_train=len(keep["train"]), n_test=len(keep["test"]), models=pool,
        cost_proxy=proxy_name, costs=costs, n_train_rows=len(train_rows), n_test_rows=len(test_rows),
        score_types=score_types, train_test_overlap=overlap, dropped=problems,
        seconds=time.perf_counter() - t0,
    )  # fmt: skip
