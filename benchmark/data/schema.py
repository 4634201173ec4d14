"""The DARS row schema as constants: required fields, views, text fields (docs/data.md).

Every reader, writer and check of the data layer takes its field names from here.
"""

from __future__ import annotations

#: Required on every row (``cost`` may instead be given as ``usage.cost``).
REQUIRED_FIELDS: tuple[str, ...] = (
    "dataset",
    "split",
    "query_id",
    "model",
    "score",
    "cost",
    "prompt_variant_id",
    "decode_id",
)
#: Test rows: ``observation_type`` value -> DarsDataset block attribute.
OBSERVATION_TYPES: dict[str, str] = {
    "prompt_variation": "test_rewrite",
    "decoding_variation": "test_decoding",
}
#: Per-query text fields copied into the query tables when the data has them.
QUESTION_FIELDS: tuple[str, ...] = ("original_question", "question", "input_question")
CONTEXT_FIELDS: tuple[str, ...] = ("context", "passage")
GOLD_FIELDS: tuple[str, ...] = ("gold", "gold_answer", "answer")
TEXT_FIELDS: tuple[str, ...] = QUESTION_FIELDS + CONTEXT_FIELDS + GOLD_FIELDS
#: Fields that should not vary between the rows of one query (warned about when they do).
PER_QUERY_FIELDS: tuple[str, ...] = ("original_question",) + CONTEXT_FIELDS + GOLD_FIELDS
#: Fields the harness knows about; anything else is listed in ``source["extra_fields"]``.
KNOWN_FIELDS: frozenset[str] = frozenset(
    REQUIRED_FIELDS
    + ("observation_type",)
    + TEXT_FIELDS
    + ("usage", "request_config", "finish_reason", "score_type", "parse_success")
)
#: SPEC §5 (docs/spec.md): feature text = ``context[:1200] + "\nQuestion: " + question``.
CONTEXT_CHARS = 1200
#: Per-model facts read from ``metadata.json`` ``model_info``.
MODEL_INFO_FIELDS: tuple[str, ...] = ("price_in", "price_out", "params_b")
#: Columns of ``truth.csv`` (simulated data: the exact per-pair signals).
TRUTH_COLUMNS: tuple[str, ...] = ("split", "query_id", "model", "mu_q", "mu_c", "sigma_q")
