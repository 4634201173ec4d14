"""The collection config: one declared schema (pydantic models) for ``conf/collect/*.yaml``.

``darsbench-collect`` composes the YAML with Hydra and hands the plain mapping to
:func:`parse_config`; pydantic checks types, ranges and closed choices, and the first problem
becomes one :class:`ConfigError` line naming the file, the field, the bad value and what is
allowed. API keys are never part of a config: a model names the ENVIRONMENT VARIABLE holding
its key (``api_key_env``); a credential-like field name at any depth is refused.
See ``docs/collect.md`` for the schema.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from pathlib import Path
from typing import Annotated, Any, Literal, Sequence

import yaml
from omegaconf import OmegaConf
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictInt,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from benchmark.collect.scorers import TASK_TYPES

ENDPOINTS = ("chat", "completions")
SPLITS = ("train", "test")
#: Shapes of provider API keys (a key pasted where a variable NAME belongs).
KEYLIKE = re.compile(r"(^|\b)(sk-|sk_|hf_|gsk_|xai-|ghp_|AIza|Bearer\s)[A-Za-z0-9_\-]{8,}")
#: Field names that hold credentials; a config never holds one at any depth.
_CRED_WORDS = frozenset({"authorization", "auth", "secret", "secrets", "password", "passwd", "credential",
                         "credentials", "bearer", "apikey", "token", "cookie"})
_TOKEN_PREFIXES = frozenset({"auth", "access", "api", "bearer", "refresh", "id", "hf", "session"})
#: The one credential-looking field name that is allowed: it holds a variable NAME, never a key.
_ALLOWED_KEY_FIELDS = frozenset({"api_key_env"})


class ConfigError(ValueError):
    """A collection config is invalid (the message names the file and the field)."""


def finite_number(v: Any) -> Any:
    """Booleans are not numbers here, and neither are NaN or infinity."""
    if isinstance(v, bool):
        raise ValueError("must be a number, not a boolean")
    if isinstance(v, float) and not math.isfinite(v):
        raise ValueError("must be a finite number")
    return v


Num = Annotated[float, BeforeValidator(finite_number), Field(allow_inf_nan=False)]
NonNeg = Annotated[float, BeforeValidator(finite_number), Field(ge=0.0, allow_inf_nan=False)]
Count0 = Annotated[StrictInt, Field(ge=0)]
Count1 = Annotated[StrictInt, Field(ge=1)]
Seed = Annotated[StrictInt, Field(ge=0)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def credential_fields(raw: Any, prefix: str = "") -> list[str]:
    """Dotted paths of every mapping key at any depth whose name looks like a credential."""
    found: list[str] = []
    if isinstance(raw, dict):
        for k, v in raw.items():
            path = f"{prefix}{k}"
            if isinstance(k, str) and looks_like_credential(k):
                found.append(path)
            found += credential_fields(v, path + ".")
    elif isinstance(raw, (list, tuple)):
        for i, v in enumerate(raw):
            found += credential_fields(v, f"{prefix.rstrip('.')}[{i}].")
    return found


def looks_like_credential(name: str) -> bool:
    """True for ``api_key``, ``Authorization``, ``x-api-key``, ``access_token``, ``password``...
    (``max_tokens`` and ``api_key_env`` are not credentials)."""
    if name.lower() in _ALLOWED_KEY_FIELDS:
        return False
    words = [w for w in re.split(r"[_\-.\s]+|(?<=[a-z0-9])(?=[A-Z])", name) if w]
    words = [w.lower() for w in words]
    if any(w in _CRED_WORDS for w in words):
        return True
    for a, b in zip(words, words[1:]):
        if a == "api" and b == "key":
            return True
        if b == "tokens" and a in _TOKEN_PREFIXES:
            return True
    return False


def keylike_values(raw: Any, prefix: str = "") -> list[str]:
    """Dotted paths of string values anywhere that look like a provider API key."""
    found: list[str] = []
    if isinstance(raw, dict):
        for k, v in raw.items():
            found += keylike_values(v, f"{prefix}{k}.")
    elif isinstance(raw, (list, tuple)):
        for i, v in enumerate(raw):
            found += keylike_values(v, f"{prefix.rstrip('.')}[{i}].")
    elif isinstance(raw, str) and KEYLIKE.search(raw):
        found.append(prefix.rstrip("."))
    return found


class EndpointConfig(_Model):
    """An OpenAI-compatible endpoint (a pool model or the rewriter)."""

    name: str = ""
    base_url: str
    model: Annotated[str, Field(min_length=1)]
    api_key_env: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")] | None = None
    endpoint: Literal["chat", "completions"] = "chat"
    price_in: NonNeg
    price_out: NonNeg
    max_concurrency: Count1 = 4
    params_b: NonNeg | None = None
    prompt_style: Literal["chat", "chat_fewshot", "completion_fewshot"] | None = None
    extra_body: dict[str, Any] = Field(default_factory=dict)

    @field_validator("base_url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return v.rstrip("/")

    @field_validator("api_key_env")
    @classmethod
    def _env_name(cls, v: str | None) -> str | None:
        if v is not None and KEYLIKE.match(v):
            raise ValueError("must be the NAME of an environment variable (this looks like a key)")
        return v

    @model_validator(mode="after")
    def _defaults(self) -> "EndpointConfig":
        if not self.name:
            object.__setattr__(self, "name", self.model)
        if self.prompt_style is None:
            object.__setattr__(self, "prompt_style", "chat_fewshot" if self.endpoint == "chat" else "completion_fewshot")
        return self


class SourceConfig(_Model):
    """Where the queries come from: a JSONL file, or the built-in ``tinymath`` generator."""

    path: str | None = None
    task: Literal["mcq", "math", "reading"] | None = None
    generator: Literal["tinymath"] | None = None
    n: Count0 = 0
    seed: Seed = 0

    @model_validator(mode="after")
    def _one_source(self) -> "SourceConfig":
        if (self.path is None) == (self.generator is None):
            raise ValueError("set exactly one of `path` (a JSONL file) or `generator` (tinymath)")
        return self


class SplitConfig(_Model):
    train_size: Count0
    test_size: Count0
    seed: Seed = 0
    stratify_by: str | None = None


class ViewConfig(_Model):
    """R x D of one split. ``temperatures`` (test decoding view) sets the temperature per decode."""

    rewrites: Count0
    decodes: Count0
    temperatures: tuple[NonNeg, ...] | None = None

    @field_validator("temperatures")
    @classmethod
    def _temps(cls, v: tuple[float, ...] | None, info: ValidationInfo) -> tuple[float, ...] | None:
        decodes = info.data.get("decodes")
        if v is not None and decodes is not None and len(v) != decodes:
            raise ValueError(f"has {len(v)} entries but decodes is {decodes}")
        return v


_DEFAULT_MAX_TOKENS = {"mcq": 768, "math": 3072, "reading": 512}


class DecodingConfig(_Model):
    temperature: NonNeg = 0.7
    top_p: Annotated[float, BeforeValidator(finite_number), Field(gt=0.0, le=1.0, allow_inf_nan=False)] = 0.95
    max_tokens: dict[Literal["mcq", "math", "reading"], Count1] = Field(default_factory=lambda: dict(_DEFAULT_MAX_TOKENS))
    stop: tuple[str, ...] = ()
    train: ViewConfig = ViewConfig(rewrites=5, decodes=5)
    test_rewrite: ViewConfig = ViewConfig(rewrites=3, decodes=1)
    test_decoding: ViewConfig = ViewConfig(rewrites=1, decodes=3, temperatures=(0.3, 0.7, 1.0))

    @model_validator(mode="before")
    @classmethod
    def _fill(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        mt = data.get("max_tokens")
        if isinstance(mt, int) and not isinstance(mt, bool):
            data["max_tokens"] = {t: mt for t in TASK_TYPES}
        elif isinstance(mt, dict):
            data["max_tokens"] = {**_DEFAULT_MAX_TOKENS, **mt}
        td = data.get("test_decoding")
        if isinstance(td, dict):
            # The default temperatures belong to the default 3 decodes only.
            temps = (0.3, 0.7, 1.0) if td.get("decodes", 3) == 3 else None
            data["test_decoding"] = {"rewrites": 1, "decodes": 3, "temperatures": temps, **td}
        for view, (r, d) in (("train", (5, 5)), ("test_rewrite", (3, 1))):
            if isinstance(data.get(view), dict):
                data[view] = {"rewrites": r, "decodes": d, **data[view]}
        return data

    @field_validator("test_decoding")
    @classmethod
    def _decoding_view(cls, v: ViewConfig) -> ViewConfig:
        if v.rewrites not in (0, 1):
            raise ValueError("the decoding view uses the original query only: rewrites is 0 (off) or 1")
        return v


class RewriterConfig(_Model):
    """``template`` (deterministic, offline) or ``llm`` (an OpenAI-compatible model)."""

    kind: Literal["template", "llm"] = "template"
    endpoint: EndpointConfig | None = Field(default=None, validate_default=True)
    constraints: str = ""
    temperature: NonNeg = 0.7
    max_tokens: Count1 = 512
    max_attempts: Count1 = 3

    @field_validator("endpoint")
    @classmethod
    def _needs_endpoint(cls, v: EndpointConfig | None, info: ValidationInfo) -> EndpointConfig | None:
        if info.data.get("kind") == "llm" and v is None:
            raise ValueError("is required when rewriter.kind is llm")
        return v


class RequestConfig(_Model):
    timeout_s: Annotated[float, BeforeValidator(finite_number), Field(gt=0.0, allow_inf_nan=False)] = 120.0
    max_retries: Count0 = 5
    backoff_base_s: NonNeg = 1.0
    backoff_max_s: NonNeg = 60.0
    seed: Seed = 0


class ValidateConfig(_Model):
    similarity: Literal["minilm", "none"] = "minilm"
    similarity_min: Annotated[float, BeforeValidator(finite_number), Field(ge=-1.0, le=1.0, allow_inf_nan=False)] = 0.6


class RunConfig(_Model):
    """How this invocation runs (not part of any fingerprint)."""

    stages: tuple[Literal["prepare", "rewrite", "generate", "score", "validate"], ...] = (
        "prepare", "rewrite", "generate", "score", "validate")
    budget_scope: Literal["run", "total"] = "run"
    progress: bool = True


class CollectConfig(_Model):
    """The whole collection config (one dataset)."""

    dataset: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.\-]+$")]
    source: SourceConfig
    split: SplitConfig
    pool: Annotated[tuple[EndpointConfig, ...], Field(min_length=1)]
    output_dir: Annotated[str, Field(min_length=1)]
    work_dir: Annotated[str, Field(min_length=1)]
    rewriter: RewriterConfig = RewriterConfig()
    decoding: DecodingConfig = DecodingConfig()
    request: RequestConfig = RequestConfig()
    validate_: ValidateConfig = Field(default=ValidateConfig(), alias="validate")
    budget_usd: NonNeg | None = None
    run: RunConfig = RunConfig()
    config_path: str | None = None

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @field_validator("pool")
    @classmethod
    def _unique(cls, pool: tuple[EndpointConfig, ...]) -> tuple[EndpointConfig, ...]:
        names = [m.name for m in pool]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"duplicate model name {dup[0]!r}")
        return pool

    @property
    def validate(self) -> ValidateConfig:  # type: ignore[override]
        return self.validate_

    def fingerprint(self, *parts: str) -> str:
        """sha256 of the named sections (canonical JSON): detects a changed config on resume."""
        data = self.model_dump(by_alias=True)
        payload = {p: data[p] for p in parts}
        return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()

    def model(self, name: str) -> EndpointConfig:
        for m in self.pool:
            if m.name == name:
                return m
        raise KeyError(name)

    def n_rewrites(self, split: str) -> int:
        """Rewrites per query asked for in ``split`` (train: the train view; test: the rewrite view)."""
        return self.decoding.train.rewrites if split == "train" else self.decoding.test_rewrite.rewrites


def _loc(loc: Sequence[Any]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("function-after", "function-before") or str(part).startswith(("function-", "constrained-")):
            continue
        else:
            out += ("." if out else "") + ("validate" if part == "validate_" else str(part))
    return out or "<root>"


def _show(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 60 else text[:57] + "..."


def describe_validation_error(exc: ValidationError) -> tuple[str, str]:
    """(field path, 'message (got value)') of the first problem pydantic found."""
    e = exc.errors(include_url=False)[0]
    loc = [p for p in e["loc"] if not (isinstance(p, str) and (p.startswith("function-") or "[" in p))]
    msg = e["msg"]
    msg = msg[len("Value error, "):] if msg.startswith("Value error, ") else msg
    if e["type"] == "extra_forbidden":
        msg = "unknown field"
    elif e["type"] == "missing":
        msg = "is required"
    elif "input" in e and e["type"] not in ("model_type", "dict_type") and not isinstance(e["input"], dict):
        msg += f" (got {_show(e['input'])})"
    more = len(exc.errors()) - 1
    if more:
        msg += f" [and {more} more problem(s)]"
    return _loc(loc), msg


def parse_config(raw: Any, path: str | None = None) -> CollectConfig:
    """Check and type a raw config mapping; a problem raises one-line :class:`ConfigError`."""
    where = path or "<config>"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: field `<root>`: the config must be a mapping")
    creds = credential_fields(raw)
    if creds:
        raise ConfigError(
            f"{where}: field `{creds[0]}`: looks like a credential; configs never hold keys or tokens: "
            "export the key in an environment variable and name it in `api_key_env`")
    keys = keylike_values(raw)
    if keys:
        raise ConfigError(f"{where}: field `{keys[0]}`: the value looks like an API key; configs never hold keys "
                          "(name an environment variable in `api_key_env`)")
    if "config_path" in raw:
        raise ConfigError(f"{where}: field `config_path`: unknown field")
    try:
        return CollectConfig.model_validate({**raw, "config_path": path})
    except ValidationError as exc:
        field, msg = describe_validation_error(exc)
        raise ConfigError(f"{where}: field `{field}`: {msg}") from None


def load_config(path: str | Path, overrides: Sequence[str] = ()) -> CollectConfig:
    """Read a YAML collection config, apply ``key=value`` overrides, and check it (library use;
    the CLI composes with Hydra). Values are YAML; list items by index (``pool.0.price_out=2e-7``)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        conf = OmegaConf.load(path)
        for item in overrides:
            if "=" not in item:
                raise ConfigError(f"{path}: override {item!r} is not key=value")
            key, value = item.split("=", 1)
            OmegaConf.update(conf, key.strip(), yaml.safe_load(value) if value.strip() else None, merge=True)
        raw = OmegaConf.to_container(conf, resolve=True)
    except ConfigError:
        raise
    except Exception as exc:  # noqa: BLE001 - YAML / interpolation errors: name the file
        raise ConfigError(f"{path}: cannot read the config: {' '.join(str(exc).split())}") from None
    if isinstance(raw, dict):
        raw.pop("defaults", None)
        raw.pop("hydra", None)
    return parse_config(raw, str(path))
