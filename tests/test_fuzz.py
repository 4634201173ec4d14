"""Property-based fuzzing (hypothesis, bounded examples): every generated input gives success or
the named error, never another exception. Loader: ``load_dars_dir`` -> DarsDataset or DataError;
config schema: validate -> model or ConfigValueError; collection config: CollectConfig or ConfigError."""

from __future__ import annotations

import copy
import json
import math
import tempfile
from pathlib import Path

from hydra import compose, initialize_config_dir
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from omegaconf import OmegaConf

from benchmark.app.schema import ConfigValueError, RunSchema, validate
from benchmark.collect.config import CollectConfig, ConfigError, parse_config
from benchmark.data.dataset import DarsDataset
from benchmark.data.loader import DataError, load_dars_dir

REPO = Path(__file__).resolve().parents[1]
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)

# ------------------------------------------------------------------------------------------ values
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=8),
)
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
                           max_leaves=8)


# ------------------------------------------------------------------------------------------ loader
def _row(split: str, q: int, m: int, v: int, d: int, obs: str | None) -> dict:
    row = {"dataset": "fz", "split": split, "query_id": f"q{q}", "model": f"m{m}", "score": 1.0 if (q + m + d) % 2 else 0.0,
           "cost": 0.001 * (m + 1), "prompt_variant_id": v, "decode_id": d, "question": f"question {q}"}
    if obs is not None:
        row["observation_type"] = obs
    return row


def _valid_rows() -> tuple[list[dict], list[dict]]:
    train = [_row("train", q, m, v, d, None) for q in range(3) for m in range(2) for v in range(2) for d in range(2)]
    test = [_row("test", q, m, v, 0, "prompt_variation") for q in range(3, 5) for m in range(2) for v in range(2)]
    test += [_row("test", q, m, -1, d, "decoding_variation") for q in range(3, 5) for m in range(2) for d in range(2)]
    return train, test


FIELDS = ["dataset", "split", "query_id", "model", "score", "cost", "prompt_variant_id", "decode_id", "observation_type",
          "question", "usage", "context"]
mutation = st.tuples(
    st.sampled_from(["train", "test"]), st.integers(min_value=0, max_value=30),
    st.sampled_from(["set", "delete", "raw_line", "duplicate", "deep"]), st.sampled_from(FIELDS), json_values,
    st.binary(max_size=12),
)


def _render(rows: list, raws: dict[int, bytes]) -> bytes:
    out = []
    for i, r in enumerate(rows):
        if i in raws:
            out.append(raws[i])
        out.append(json.dumps(r, allow_nan=True).replace('"__DEEP__"', "[" * 100_000 + "1" + "]" * 100_000).encode())
    return b"\n".join(out) + b"\n"


@FUZZ
@given(mutations=st.lists(mutation, max_size=4),
       metadata=st.one_of(st.none(), json_values, st.just({"models": ["m1", "m0"]}), st.just("folder")))
def test_loader_gives_a_dataset_or_a_data_error(mutations, metadata):
    train, test = _valid_rows()
    rows = {"train": train, "test": test}
    raws: dict[str, dict[int, bytes]] = {"train": {}, "test": {}}
    for split, idx, kind, field, value, raw in mutations:
        block = rows[split]
        i = idx % len(block)
        if kind == "set":
            block[i] = {**block[i], field: value}
        elif kind == "delete":
            block[i] = {k: v for k, v in block[i].items() if k != field}
        elif kind == "raw_line":
            raws[split][i] = raw
        elif kind == "duplicate":
            block.append(copy.deepcopy(block[i]))
        else:  # JSON nested 100,000 levels deep (written as text below)
            block[i] = {**block[i], field: "__DEEP__"}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "fz"
        folder.mkdir()
        (folder / "train_scored_generations.jsonl").write_bytes(_render(rows["train"], raws["train"]))
        (folder / "test_scored_generations.jsonl").write_bytes(_render(rows["test"], raws["test"]))
        if metadata == "folder":
            (folder / "metadata.json").mkdir()
        elif metadata is not None:
            (folder / "metadata.json").write_text(json.dumps(metadata, allow_nan=True))
        try:
            ds = load_dars_dir(Path(tmp), "fz", use_cache=False)
        except DataError:
            return
        assert isinstance(ds, DarsDataset)
        assert ds.train.present.any()


# ------------------------------------------------------------------------------------------ config schema
with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
    _BASE = OmegaConf.to_container(compose(config_name="config"), resolve=True)

schema_keys = st.sampled_from([("cost", "lam"), ("cost", "beta"), ("cost", "norm"), ("seed",), ("decisions_format",),
                               ("supervision", "n_draws"), ("supervision", "mode"), ("protocol", "n_rewrites"),
                               ("print_table",), ("router", "k"), ("dataset", "seed"), ("frontier", "lams")])


@FUZZ
@given(changes=st.lists(st.tuples(schema_keys, json_values), min_size=1, max_size=4))
def test_config_schema_accepts_or_names_the_key(changes):
    cfg = copy.deepcopy(_BASE)
    for path, value in changes:
        node = cfg
        for p in path[:-1]:
            node = node[p]
        node[path[-1]] = value
    try:
        model = validate(cfg, RunSchema)
    except ConfigValueError as exc:
        assert "\n" not in str(exc) and exc.key
        return
    assert math.isfinite(model.cost.lam) and model.cost.lam >= 0 and math.isfinite(model.cost.beta) and model.cost.beta >= 0
    assert type(model.seed) is int and model.seed >= 0 and model.supervision.n_draws >= 1
    assert model.decisions_format in ("parquet", "csv") and model.cost.norm in ("minmax", "max", "none")
    assert isinstance(cfg["router"]["k"], int) and cfg["router"]["k"] >= 1


# ------------------------------------------------------------------------------------------ collection config
def _collect_base() -> dict:
    return {
        "dataset": "toy", "output_dir": "out", "work_dir": "work",
        "source": {"generator": "tinymath", "n": 10, "seed": 0},
        "split": {"train_size": 4, "test_size": 2, "seed": 0},
        "pool": [{"name": "a", "base_url": "http://127.0.0.1:1/v1", "model": "a", "price_in": 1e-6, "price_out": 2e-6}],
        "decoding": {"train": {"rewrites": 2, "decodes": 2}},
    }


collect_paths = st.sampled_from([
    ("dataset",), ("source", "n"), ("source", "seed"), ("source", "generator"), ("source", "path"), ("split", "train_size"),
    ("split", "seed"), ("pool",), ("pool", 0, "price_in"), ("pool", 0, "base_url"), ("pool", 0, "max_concurrency"),
    ("pool", 0, "api_key_env"), ("pool", 0, "extra_body"), ("pool", 0, "endpoint"), ("decoding", "max_tokens"),
    ("decoding", "temperature"), ("decoding", "train"), ("decoding", "test_decoding"), ("request", "timeout_s"),
    ("budget_usd",), ("validate", "similarity"), ("rewriter", "kind"), ("surprise",),
])


@FUZZ
@given(changes=st.lists(st.tuples(collect_paths, json_values), min_size=1, max_size=4))
def test_collection_config_accepts_or_names_the_field(changes):
    raw = _collect_base()
    for path, value in changes:
        node = raw
        try:
            for p in path[:-1]:
                node = node.setdefault(p, {}) if isinstance(node, dict) else node[p]
            node[path[-1]] = value
        except (TypeError, IndexError, KeyError):
            continue  # an earlier change replaced the parent with a non-container
    try:
        cfg = parse_config(raw, "fuzz.yaml")
    except ConfigError as exc:
        assert str(exc).startswith("fuzz.yaml: field `") and "\n" not in str(exc)
        return
    assert isinstance(cfg, CollectConfig) and len(cfg.pool) >= 1
    for view in (cfg.decoding.train, cfg.decoding.test_rewrite, cfg.decoding.test_decoding):
        assert view.rewrites >= 0 and view.decodes >= 0
        assert view.temperatures is None or len(view.temperatures) == view.decodes
    assert all(math.isfinite(m.price_in) and m.price_in >= 0 for m in cfg.pool)


@FUZZ
@given(depth=st.lists(st.sampled_from(["a", "b", 0]), max_size=4),
       name=st.sampled_from(["api_key", "Authorization", "access_token", "secret", "password", "X-API-KEY", "hfToken"]))
def test_credential_field_at_any_depth_is_refused(depth, name):
    raw = _collect_base()
    node: dict | list = {name: "value"}
    for step in reversed(depth):
        node = [node] if step == 0 else {step: node}
    raw["pool"][0]["extra_body"] = {"x": node}
    try:
        parse_config(raw, "fuzz.yaml")
    except ConfigError as exc:
        assert "credential" in str(exc) and name in str(exc)
    else:
        raise AssertionError(f"credential field {name} at depth {depth} was accepted")
