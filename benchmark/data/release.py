"""The SPEC §2 facts of the official DARS release and the check of a dataset against them
(docs/data.md, "Release checks")."""

from __future__ import annotations

import numpy as np

from benchmark.data.dataset import DarsDataset

#: SPEC §2 facts about the official release: (train rows, test rows).
RELEASE_ROWS: dict[str, tuple[int, int]] = {
    "gpqa": (30_000, 8_928),
    "math-500": (30_000, 10_800),
    "drop-800": (30_000, 21_600),
}
RELEASE_MODELS: tuple[str, ...] = (
    "google/gemma-3-12b-it",
    "mistralai/mistral-small-3.2-24b-instruct",
    "qwen/qwen3-32b",
    "meta-llama/llama-3.3-70b-instruct",
    "google/gemini-2.5-flash-lite",
    "deepseek/deepseek-chat-v3.1",
)
RELEASE_TRAIN_QUERIES = 200
_BINARY_SCORE_DATASETS = ("gpqa", "math-500")


def check_release_facts(dataset: DarsDataset) -> list[str]:
    """Compare a dataset named ``gpqa`` / ``math-500`` / ``drop-800`` with the SPEC §2 facts of
    the official release. Returns human-readable warnings (empty when everything matches or
    the name is not a release dataset); never raises."""
    name = dataset.name.lower()
    if name not in RELEASE_ROWS:
        return []
    out: list[str] = []
    pre = f"{dataset.name}: differs from the official release:"
    want_train, want_test = RELEASE_ROWS[name]
    n_train = dataset.train.n_observations
    n_test = dataset.test_rewrite.n_observations + dataset.test_decoding.n_observations
    if n_train != want_train:
        out.append(f"{pre} {n_train} train rows, release has {want_train}")
    if n_test != want_test:
        out.append(f"{pre} {n_test} test rows, release has {want_test}")
    if dataset.train.n_queries != RELEASE_TRAIN_QUERIES:
        out.append(f"{pre} {dataset.train.n_queries} training queries, release has {RELEASE_TRAIN_QUERIES}")
    if set(dataset.models) != set(RELEASE_MODELS):
        missing = sorted(set(RELEASE_MODELS) - set(dataset.models))
        extra = sorted(set(dataset.models) - set(RELEASE_MODELS))
        out.append(f"{pre} models missing {missing}, unexpected {extra}")
    for label, ids in (("prompt_variant_id", dataset.train.view_ids), ("decode_id", dataset.train.decode_ids)):
        if ids.tolist() != list(range(5)):
            out.append(f"{pre} train {label}s {ids.tolist()}, release has 0..4")
    per_pair = dataset.train.present.sum(axis=(2, 3))
    if (per_pair != 25).any():
        out.append(f"{pre} {int((per_pair != 25).sum())} train (query, model) pairs lack 25 observations")
    for view, block, sign_ok in (
        ("prompt_variation", dataset.test_rewrite, dataset.test_rewrite.view_ids >= 0),
        ("decoding_variation", dataset.test_decoding, dataset.test_decoding.view_ids < 0),
    ):
        per_pair = block.present.sum(axis=(2, 3))
        if (per_pair != 3).any():
            out.append(f"{pre} {int((per_pair != 3).sum())} test (query, model) pairs lack 3 {view} rows")
        if not sign_ok.all():
            out.append(f"{pre} {view} prompt_variant_ids {block.view_ids.tolist()} break the sign convention")
    if name in _BINARY_SCORE_DATASETS:
        scores = np.concatenate(
            [b.score[b.present] for b in (dataset.train, dataset.test_rewrite, dataset.test_decoding)]
        )
        n_frac = int(((scores != 0.0) & (scores != 1.0)).sum())
        if n_frac:
            out.append(f"{pre} {n_frac} scores are not 0 or 1 (release scores are binary)")
    return out

