"""Simulator configuration: the model pool (:class:`SimModel`), every knob of the generative
model (:class:`SimulatorConfig`) and the cache key of a simulation (docs/simulator.md)."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

from benchmark.data.simulator.text import TOPIC_VOCAB

#: Bumped whenever the generative model, the file layout or the bits of the truth change (it keys
#: the cache). 2: interpolated expected tokens and rewrite moment (docs/simulator.md, "Truth").
SIMULATOR_VERSION = "2"

Task = Literal["binary", "f1"]
QuestionStyle = Literal["open", "multiple_choice", "reading"]



@dataclass(frozen=True)
class SimModel:
    """One simulated model of the pool.

    Attributes:
        name: model name as written in the JSONL ``model`` field.
        params_b: parameter count in billions (``None`` where unknown, as for hosted models).
        price_in: USD per prompt token.
        price_out: USD per completion token.
        skill: mean logit skill over topics (before topic specialisation).
        verbosity: median completion tokens on a query of difficulty 0.
        tokenizer_factor: prompt tokens of this model per reference prompt token.
    """

    name: str
    params_b: float | None
    price_in: float
    price_out: float
    skill: float
    verbosity: float
    tokenizer_factor: float = 1.0

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("SimModel.name must be non-empty")
        for attr in ("price_in", "price_out"):
            if not (getattr(self, attr) >= 0 and math.isfinite(getattr(self, attr))):
                raise ValueError(f"SimModel {self.name!r}: {attr} must be finite and >= 0")
        if not (self.verbosity > 0 and math.isfinite(self.verbosity)):
            raise ValueError(f"SimModel {self.name!r}: verbosity must be positive")
        if not (self.tokenizer_factor > 0 and math.isfinite(self.tokenizer_factor)):
            raise ValueError(f"SimModel {self.name!r}: tokenizer_factor must be positive")
        if not math.isfinite(self.skill):
            raise ValueError(f"SimModel {self.name!r}: skill must be finite")


#: Default pool: six models shaped like the release's (sizes 8B..671B and one hosted model of
#: unknown size). Bigger models are stronger on average and more expensive; ``sim/reason-32b``
#: "thinks" (long answers), so it is costly despite a modest price.
DEFAULT_MODELS: tuple[SimModel, ...] = (
    SimModel("sim/small-8b", 8.0, 0.02e-6, 0.05e-6, skill=-0.40, verbosity=220, tokenizer_factor=1.00),
    SimModel("sim/mid-24b", 24.0, 0.05e-6, 0.10e-6, skill=-0.05, verbosity=260, tokenizer_factor=1.05),
    SimModel("sim/reason-32b", 32.0, 0.10e-6, 0.30e-6, skill=0.35, verbosity=650, tokenizer_factor=0.95),
    SimModel("sim/large-70b", 70.0, 0.13e-6, 0.40e-6, skill=0.30, verbosity=300, tokenizer_factor=1.00),
    SimModel("sim/flash-lite", None, 0.10e-6, 0.40e-6, skill=0.45, verbosity=350, tokenizer_factor=0.90),
    SimModel("sim/xl-671b", 671.0, 0.27e-6, 1.10e-6, skill=0.80, verbosity=420, tokenizer_factor=1.10),
)

DEFAULT_TOPICS: tuple[str, ...] = (
    "algebra", "chemistry", "history", "biology", "physics", "literature", "geography", "economics",
)

#: Default specialist per default topic (index into DEFAULT_MODELS): the planted signal that
#: makes the best model depend on the topic.
DEFAULT_SPECIALISTS: tuple[int, ...] = (2, 3, 1, 4, 2, 0, 1, 3)


@dataclass(frozen=True)
class SimulatorConfig:
    """Every knob of the generative model (see ``docs/simulator.md``).

    Shape
        n_train: training queries. n_test: test queries.
        n_rewrites, n_decodes: training grid (prompt_variant_id 0..R-1 x decode_id 0..D-1).
        n_test_rewrites: test ``prompt_variation`` rows per pair (decode 0, training temperature).
        test_temperatures: temperatures of the test ``decoding_variation`` decodes (original query).
        temperature, top_p: training decoding parameters (also the test rewrite view's).
        max_tokens: completion cap; an answer that reaches it is cut and scores 0.

    Task and text
        task: ``binary`` (0/1 scores) or ``f1`` (continuous scores in [0, 1]).
        question_style: ``open`` (numeric answer), ``multiple_choice`` (four options, rewrites
            touch only the stem) or ``reading`` (a passage in ``context``/``passage``; rewrites
            touch only the question).
        topics: topic names (keys of :data:`TOPIC_VOCAB`). topic_weights: sampling weights
            (``None``: uniform).

    Quality
        models: the pool (:class:`SimModel`, pool order).
        specialists: per topic, the index of its specialist model (-1: none; ``None``: none).
        skill_scale: multiplies every model's mean skill (spreads or shrinks the pool).
        specialist_bonus: logit bonus of a topic's specialist.
        topic_skill_scale: sd of the random per-(model, topic) logit deviations.
        difficulty_mean, difficulty_std: query difficulty distribution (logit units).
        pair_noise: sd of the fixed per-(query, model) logit noise (unpredictable from text).
        input_noise: sd of the per-(query, model, rewrite) logit shift (input-side noise).
        input_noise_shared: share of that variance common to all models of a (query, rewrite).
        output_noise: sd of the per-decode logit jitter at the training temperature
            (output-side noise); scaled by ``(T / temperature) ** temperature_noise_exponent``.
        chance_floor: success probability floor (0.25 for four-option multiple choice).
        f1_exact_share: ``task="f1"``: probability that a decode is an exact hit or miss.
        f1_concentration: ``task="f1"``: Beta concentration of partial-credit scores (higher:
            less output noise).
        parse_failure_rate: probability that an answer cannot be parsed (score 0).

    Tokens and cost
        verbosity_scale: multiplies every model's verbosity (longer answers for math).
        completion_sigma: sd of log completion tokens per sample.
        length_difficulty_slope: log completion length grows by this per unit of difficulty.
        prompt_overhead_tokens: tokens of the prompt template around the question.
        tokens_per_word: reference prompt tokens per word of question and context.

    Query length
        clauses_base, clauses_difficulty_slope, max_clauses: a query has
            ``clip(round(clauses_base + slope * difficulty + N(0, 0.5^2)), 0, max_clauses)``
            condition clauses (passage sentences minus one for ``reading``).
    """

    # shape
    n_train: int = 200
    n_test: int = 300
    n_rewrites: int = 5
    n_decodes: int = 5
    n_test_rewrites: int = 3
    test_temperatures: tuple[float, ...] = (0.2, 0.7, 1.0)
    temperature: float = 0.7
    top_p: float = 0.95
    max_tokens: int = 2048
    # task and text
    task: Task = "binary"
    question_style: QuestionStyle = "open"
    topics: tuple[str, ...] = DEFAULT_TOPICS
    topic_weights: tuple[float, ...] | None = None
    # quality
    models: tuple[SimModel, ...] = DEFAULT_MODELS
    specialists: tuple[int, ...] | None = DEFAULT_SPECIALISTS
    skill_scale: float = 1.0
    specialist_bonus: float = 1.4
    topic_skill_scale: float = 0.35
    difficulty_mean: float = 0.0
    difficulty_std: float = 1.0
    pair_noise: float = 0.5
    input_noise: float = 0.6
    input_noise_shared: float = 0.3
    output_noise: float = 0.5
    temperature_noise_exponent: float = 1.0
    chance_floor: float = 0.0
    f1_exact_share: float = 0.6
    f1_concentration: float = 4.0
    parse_failure_rate: float = 0.01
    # tokens and cost
    verbosity_scale: float = 1.0
    completion_sigma: float = 0.35
    length_difficulty_slope: float = 0.25
    prompt_overhead_tokens: int = 60
    tokens_per_word: float = 1.3
    # query length
    clauses_base: float = 1.5
    clauses_difficulty_slope: float = 0.8
    max_clauses: int = 4

    def __post_init__(self) -> None:
        # Accept lists / dicts (Hydra overrides) and normalise them to hashable tuples.
        def setf(name: str, value: Any) -> None:
            object.__setattr__(self, name, value)

        setf("test_temperatures", tuple(float(t) for t in self.test_temperatures))
        setf("topics", tuple(str(t) for t in self.topics))
        if self.topic_weights is not None:
            setf("topic_weights", tuple(float(w) for w in self.topic_weights))
        if self.specialists is not None:
            setf("specialists", tuple(int(s) for s in self.specialists))
        setf(
            "models",
            tuple(m if isinstance(m, SimModel) else SimModel(**dict(m)) for m in self.models),
        )
        self._validate()

    def _validate(self) -> None:
        def need(ok: bool, msg: str) -> None:
            if not ok:
                raise ValueError(f"SimulatorConfig: {msg}")

        for name in ("n_train", "n_test", "n_rewrites", "n_decodes", "n_test_rewrites"):
            need(int(getattr(self, name)) >= 1, f"{name} must be >= 1, got {getattr(self, name)}")
        need(len(self.test_temperatures) >= 1, "test_temperatures must not be empty")
        need(all(t > 0 for t in self.test_temperatures), "test_temperatures must be positive")
        need(self.temperature > 0, "temperature must be positive")
        need(0 < self.top_p <= 1, "top_p must be in (0, 1]")
        need(self.max_tokens >= 2, "max_tokens must be >= 2")
        need(self.task in ("binary", "f1"), f"task must be 'binary' or 'f1', got {self.task!r}")
        need(
            self.question_style in ("open", "multiple_choice", "reading"),
            f"question_style must be open, multiple_choice or reading, got {self.question_style!r}",
        )
        need(len(self.topics) >= 1, "topics must not be empty")
        unknown = [t for t in self.topics if t not in TOPIC_VOCAB]
        need(not unknown, f"unknown topics {unknown}; choose from {sorted(TOPIC_VOCAB)}")
        need(len(set(self.topics)) == len(self.topics), "topics must be distinct")
        if self.topic_weights is not None:
            need(len(self.topic_weights) == len(self.topics), "topic_weights must match topics")
            need(
                all(w >= 0 for w in self.topic_weights) and sum(self.topic_weights) > 0,
                "topic_weights must be >= 0 with a positive sum",
            )
        need(len(self.models) >= 1, "models must not be empty")
        names = [m.name for m in self.models]
        need(len(set(names)) == len(names), f"model names must be distinct: {names}")
        if self.specialists is not None:
            need(
                len(self.specialists) == len(self.topics),
                f"specialists has {len(self.specialists)} entries for {len(self.topics)} topics",
            )
            need(
                all(-1 <= s < len(self.models) for s in self.specialists),
                "specialists entries must be -1 or a model index",
            )
        for name in (
            "topic_skill_scale", "difficulty_std", "pair_noise", "input_noise", "output_noise",
            "completion_sigma", "tokens_per_word", "skill_scale",
        ):
            value = getattr(self, name)
            need(math.isfinite(value) and value >= 0, f"{name} must be finite and >= 0")
        need(math.isfinite(self.temperature_noise_exponent), "temperature_noise_exponent must be finite")
        largest_out = max(self.output_noise_at(t) for t in (*self.test_temperatures, self.temperature))
        need(
            self.input_noise <= 10 and largest_out <= 10,
            "logit noise scales (input_noise, output_noise at every temperature) must be <= 10",
        )
        need(0 <= self.input_noise_shared <= 1, "input_noise_shared must be in [0, 1]")
        need(0 <= self.chance_floor < 1, "chance_floor must be in [0, 1)")
        need(0 <= self.f1_exact_share <= 1, "f1_exact_share must be in [0, 1]")
        need(self.f1_concentration > 0, "f1_concentration must be positive")
        need(0 <= self.parse_failure_rate < 1, "parse_failure_rate must be in [0, 1)")
        need(
            self.verbosity_scale > 0 and math.isfinite(self.verbosity_scale),
            "verbosity_scale must be positive",
        )
        need(self.prompt_overhead_tokens >= 0, "prompt_overhead_tokens must be >= 0")
        need(0 <= self.max_clauses <= 12, "max_clauses must be in [0, 12]")

    @property
    def model_names(self) -> tuple[str, ...]:
        return tuple(m.name for m in self.models)

    def output_noise_at(self, temperature: float) -> float:
        """Logit sd of the per-decode jitter at ``temperature``."""
        return self.output_noise * (temperature / self.temperature) ** self.temperature_noise_exponent

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict of every field (what keys the cache)."""
        return asdict(self)



def config_hash(cfg: SimulatorConfig, seed: int) -> str:
    """Hex digest keying a simulation: the config, the seed and :data:`SIMULATOR_VERSION`."""
    payload = json.dumps(
        {"config": cfg.to_dict(), "seed": int(seed), "version": SIMULATOR_VERSION},
        sort_keys=True,
        allow_nan=False,
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:20]


def n_observations(cfg: SimulatorConfig) -> int:
    """Rows of both split files of a simulation with ``cfg``."""
    n_m = len(cfg.models)
    train = cfg.n_train * n_m * cfg.n_rewrites * cfg.n_decodes
    return train + cfg.n_test * n_m * (cfg.n_test_rewrites + len(cfg.test_temperatures))
