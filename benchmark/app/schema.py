"""One declared schema for every value ``darsbench`` and ``darsbench-diagnose`` read (pydantic).

The composed Hydra config is checked here before any work starts. A bad value stops the command
with ONE line naming the key, the bad value and what is allowed (exit status 2, no traceback);
``HYDRA_FULL_ERROR=1`` raises instead, with the full traceback. Router parameters are checked by
name (counts >= 1, rates > 0, fractions in [0, 1)...) so a new router needs no schema edit.
Reference: the README's "Configuration validation" section.
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
from typing import Annotated, Any, Literal

from omegaconf import DictConfig, OmegaConf
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, StrictInt, ValidationError, field_validator

from benchmark.collect.config import describe_validation_error, finite_number
from benchmark.data.simulator import PRESETS, SimulatorConfig
from supervision.modes import MODES, SAMPLERS

COST_NORMS = ("minmax", "max", "none")
DECISIONS_FORMATS = ("parquet", "csv")


class ConfigValueError(ValueError):
    """A config value outside the schema: ``key``, ``value`` and ``allowed`` name the problem."""

    def __init__(self, key: str, value: Any, allowed: str) -> None:
        self.key, self.value, self.allowed = key, value, allowed
        super().__init__(f"{key}={_show(value)}: {allowed}")


def _show(v: Any) -> str:
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    text = repr(v) if isinstance(v, str) else str(v)
    return text if len(text) <= 60 else text[:57] + "..."


def _integer(v: Any) -> Any:
    if isinstance(v, float) and v.is_integer() is False:
        raise ValueError("must be a whole number (a fractional value is never truncated)")
    if isinstance(v, bool):
        raise ValueError("must be an integer, not a boolean")
    return v


NonNeg = Annotated[float, BeforeValidator(finite_number), Field(ge=0.0)]
Positive = Annotated[float, BeforeValidator(finite_number), Field(gt=0.0)]
Seed = Annotated[StrictInt, BeforeValidator(_integer), Field(ge=0)]
Count = Annotated[StrictInt, BeforeValidator(_integer), Field(ge=1)]


class _Open(BaseModel):
    """A section whose known keys are typed; other keys pass (checked by the generic rules)."""

    model_config = ConfigDict(extra="allow")


class _Closed(_Open):
    """Unknown keys are Hydra's job (struct mode refuses an override of a key that does not exist)."""


class CostSchema(_Closed):
    lam: NonNeg
    beta: NonNeg
    norm: Literal["minmax", "max", "none"]


class SupervisionSchema(_Closed):
    mode: Literal[MODES]  # type: ignore[valid-type]
    n_draws: Count
    sampler: Literal[SAMPLERS] = "darsbench"  # type: ignore[valid-type]


class ProtocolSchema(_Closed):
    n_rewrites: Count | None = None
    n_decodes: Count | None = None


class FrontierSchema(_Closed):
    lams: list[NonNeg] | None = None


class DatasetSchema(_Open):
    target_: str = Field(alias="_target_")
    name: Annotated[str, Field(min_length=1, pattern=r"^[^/\\]+$")]
    seed: Seed = 0
    preset: str | None = None
    data_dir: str | None = None
    download: StrictBool = False
    revision: str | None = None
    overrides: dict[str, Any] | None = None
    format: Literal["auto", "jsonl", "jsonl.gz", "parquet"] = "auto"

    @field_validator("preset")
    @classmethod
    def _preset(cls, v: str | None) -> str | None:
        if v is not None and v not in PRESETS:
            raise ValueError(f"must be one of {', '.join(sorted(PRESETS))}")
        return v

    @field_validator("overrides")
    @classmethod
    def _overrides(cls, v: dict[str, Any] | None) -> dict[str, Any] | None:
        known = {f.name for f in dataclasses.fields(SimulatorConfig)}
        for key in v or {}:
            if key not in known:
                raise ValueError(f"unknown simulator field {key!r} (fields: {', '.join(sorted(known))})")
        return v


class HistogramSchema(_Closed):
    enabled: StrictBool = True
    results: str | None = None
    dars_results: str | None = None
    metric: Literal["rU", "dU", "rQ", "dQ", "rC", "dC"] = "rU"
    n_draws: Count = 100


class TrainSchema(_Closed):
    n_queries: Count | None = None
    budget: Count | None = None


class BootstrapSchema(_Closed):
    resamples: Count = 2000
    seed: Seed = 0


class RunSchema(_Open):
    """``conf/config.yaml`` (``darsbench``)."""

    seed: Seed
    cache_dir: Annotated[str, Field(min_length=1)]
    decisions_format: Literal["parquet", "csv"] = "parquet"
    threads: Count | None = None
    print_table: StrictBool = True
    resume: StrictBool = False
    save_router: StrictBool = False
    train: TrainSchema = TrainSchema()
    bootstrap: BootstrapSchema = BootstrapSchema()
    feature_context: StrictBool = True
    frontier: FrontierSchema = FrontierSchema()
    cost: CostSchema
    supervision: SupervisionSchema
    protocol: ProtocolSchema = ProtocolSchema()
    dataset: DatasetSchema


class DiagnoseSchema(_Open):
    """``conf/diagnose.yaml`` (``darsbench-diagnose``)."""

    seed: Seed
    cache_dir: Annotated[str, Field(min_length=1)]
    decisions_format: Literal["parquet", "csv"] = "parquet"
    threads: Count | None = None
    align: Literal["position", "rank"] = "position"
    histogram: HistogramSchema = HistogramSchema()
    cost: CostSchema
    dataset: DatasetSchema


# ---------------------------------------------------------------------- parameters checked by name
#: Integer parameters that count something: >= 1.
COUNT_KEYS = frozenset({
    "k", "epochs", "batch_size", "n_clusters", "n_init", "max_iter", "top_k", "latent", "dim", "n_layers",
    "patience", "lam_grid_size", "max_features", "n_draws", "n_rewrites", "n_decodes", "n_train", "n_test",
    "n_models", "n_queries", "max_epochs", "hidden_size", "num_layers", "n_neighbors",
})
#: Integer lists of layer widths: every entry >= 1.
WIDTH_LIST_KEYS = frozenset({"hidden", "edge_hidden", "hidden_sizes"})
#: Real parameters that must be > 0.
POSITIVE_KEYS = frozenset({"lr", "eps", "temperature", "learning_rate", "tol"})
#: Real parameters that must be >= 0.
NONNEG_KEYS = frozenset({"alpha", "noise", "lam_grid_min", "lam_grid_max", "weight_decay", "dropout", "lam", "beta"})
#: Fractions in [0, 1).
FRACTION_KEYS = frozenset({"val_fraction", "dropout", "test_fraction"})
#: Flags.
BOOL_KEYS = frozenset({"early_stopping", "batch_draws", "normalize", "lowercase", "sublinear_tf", "log_files",
                       "enabled", "print_table", "download"})
#: Seeds anywhere: non-negative integers.
SEED_KEYS = frozenset({"seed", "random_state", "data_seed"})


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def check_by_name(node: Any, path: str = "") -> None:
    """Walk a section and apply the by-name rules; raise :class:`ConfigValueError` at the first
    bad value. Every number anywhere must be finite."""
    if isinstance(node, dict):
        for key, v in node.items():
            key_s = str(key)
            here = f"{path}.{key_s}" if path else key_s
            _check_value(key_s, v, here)
            check_by_name(v, here)
    elif isinstance(node, (list, tuple)):
        for i, v in enumerate(node):
            if isinstance(v, float) and not math.isfinite(v):
                raise ConfigValueError(f"{path}[{i}]", v, "must be a finite number")
            check_by_name(v, f"{path}[{i}]")


def _check_value(key: str, v: Any, where: str) -> None:
    if v is None or key.startswith("_"):
        return
    if isinstance(v, float) and not math.isfinite(v):
        raise ConfigValueError(where, v, "must be a finite number")
    if key in SEED_KEYS and not (_is_int(v) and v >= 0):
        raise ConfigValueError(where, v, "must be a non-negative integer")
    if key in COUNT_KEYS and not (_is_int(v) and v >= 1):
        raise ConfigValueError(where, v, "must be an integer >= 1")
    if key == "n_jobs" and not (_is_int(v) and (v >= 1 or v == -1)):
        raise ConfigValueError(where, v, "must be an integer >= 1 (or -1: every core)")
    if key in WIDTH_LIST_KEYS and not (isinstance(v, list) and all(_is_int(x) and x >= 1 for x in v)):
        raise ConfigValueError(where, v, "must be a list of integers >= 1")
    if key in POSITIVE_KEYS and not (_is_num(v) and v > 0):
        raise ConfigValueError(where, v, "must be a number > 0")
    if key in NONNEG_KEYS and not (_is_num(v) and v >= 0):
        raise ConfigValueError(where, v, "must be a number >= 0")
    if key in FRACTION_KEYS and not (_is_num(v) and 0 <= v < 1):
        raise ConfigValueError(where, v, "must be a number in [0, 1)")
    if key in BOOL_KEYS and not isinstance(v, bool):
        raise ConfigValueError(where, v, "must be true or false")


def _as_dict(cfg: DictConfig | dict) -> dict[str, Any]:
    if isinstance(cfg, DictConfig):
        out = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)
    else:
        out = dict(cfg)
    out.pop("hydra", None)
    return out  # type: ignore[return-value]


def _from_pydantic(exc: ValidationError, raw: dict[str, Any]) -> ConfigValueError:
    field, msg = describe_validation_error(exc)
    first = exc.errors(include_url=False)[0]
    loc = [p for p in first["loc"] if not (isinstance(p, str) and (p.startswith("function-") or "[" in p))]
    key = ""
    for p in loc:
        key += f"[{p}]" if isinstance(p, int) else ("." if key else "") + ("_target_" if p == "target_" else str(p))
    value: Any = raw
    for p in loc:
        p = "_target_" if p == "target_" else p
        try:
            value = value[p]
        except (KeyError, IndexError, TypeError):
            value = "<missing>"
            break
    allowed = msg.split(" (got ")[0].replace("Input should be ", "must be ")
    allowed = allowed.replace("greater than or equal to", ">=").replace("less than or equal to", "<=")
    allowed = allowed.replace("greater than", ">").replace("less than", "<")
    return ConfigValueError(key or field, value, allowed)


def validate(cfg: DictConfig | dict, schema: type[BaseModel]) -> BaseModel:
    """Check a composed config against ``schema`` and the by-name rules; raise
    :class:`ConfigValueError` naming the first bad key."""
    try:
        raw = _as_dict(cfg)
    except Exception as exc:  # noqa: BLE001 - an interpolation that cannot resolve, a missing value
        raise ConfigValueError(getattr(exc, "full_key", "") or "<config>", "???", " ".join(str(exc).split())) from None
    try:
        model = schema.model_validate(raw)
    except ValidationError as exc:
        raise _from_pydantic(exc, raw) from None
    for section in ("router", "features", "dataset", "logger", "training"):
        if isinstance(raw.get(section), dict):
            check_by_name(raw[section], section)
    return model


def validate_or_exit(cfg: DictConfig | dict, schema: type[BaseModel], prog: str) -> BaseModel:
    """:func:`validate`, and on a bad value print one line and exit 2 (``HYDRA_FULL_ERROR=1``:
    raise with the traceback)."""
    try:
        return validate(cfg, schema)
    except ConfigValueError as exc:
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        print(f"{prog}: bad config value: {exc}", file=sys.stderr)
        sys.exit(2)
