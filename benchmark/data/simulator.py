"""A simulator of DARS data with known ground truth (SPEC §2 layout, SPEC §3 truth quantities).

The simulator draws a routing problem from an explicit generative model and writes it in the
layout of the official DARS release, so the whole harness (loader, supervision modes, routers,
metrics, diagnostics) runs on it unchanged, while the true per-pair expected quality, expected
cost and quality spread are known exactly.

Generative model (the full description, with every knob, is in ``docs/simulator.md``):

* A query ``x`` has a latent topic ``k(x)`` (``K`` topics with distinct English vocabularies) and
  a difficulty ``d(x) ~ N(difficulty_mean, difficulty_std^2)``. Its text is built from its topic's
  vocabulary, shared filler words and a few numbers; harder queries carry more condition clauses
  (so they are longer). Rewrites are deterministic lexical perturbations of the original:
  single-word synonym swaps, reordered conditions and a reordered question clause. Every view of
  a query has the same number of words.
* Model ``m`` has a skill per topic ``skill[m, k] = skill_scale * skill_m + specialist_bonus *
  [m is the specialist of k] + topic_skill_scale * G[m, k]`` with ``G ~ N(0, 1)`` drawn from
  the seed.
* The base logit of a pair is ``l(x, m) = skill[m, k(x)] - d(x) + pair_noise * eps(x, m)``.
  Each rewrite ``r`` shifts it by ``z(x, m, r) ~ N(0, input_noise^2)`` (a share
  ``input_noise_shared`` of that variance is common to all models: a badly worded rewrite hurts
  everyone); each decode adds ``output_noise(T) * e`` with ``e ~ N(0, 1)`` and
  ``output_noise(T) = output_noise * (T / temperature) ** temperature_noise_exponent``.
  The success probability of one decode is ``p = floor + (1 - floor) * sigmoid(logit)``.
* Score of a decode: ``Bernoulli(p)`` for ``task="binary"``; for ``task="f1"`` a mixture with mean
  ``p``: with probability ``f1_exact_share`` an exact match or miss (``Bernoulli(p)``), otherwise
  partial credit ``Beta(p * kappa, (1 - p) * kappa)`` with ``kappa = f1_concentration``.
* Completion tokens ``X ~ LogNormal(log(med), completion_sigma^2)`` with ``med =
  verbosity_scale * verbosity_m * exp(length_difficulty_slope * d(x))``, rounded
  (``max(1, round(X))``); an answer that reaches ``max_tokens`` is cut
  (``finish_reason="length"``, unparsable, score 0). Independently, a share
  ``parse_failure_rate`` of answers cannot be parsed (score 0). Prompt tokens follow the prompt's
  word count and the model's tokenizer factor. ``cost = prompt_tokens * price_in +
  completion_tokens * price_out`` (USD).

Truth (per pair, over the pair's observation distribution: a fresh random rewrite and one
decode at the training temperature): ``mu_q = E[q]``, ``mu_c = E[cost]`` (USD) and
``sigma_q = sqrt(Var[q])`` (population standard deviation). They are computed exactly:
exponentially convergent trapezoidal quadrature over the logit noise (the input and output
shifts add up to one Gaussian), the discrete distribution of the rounded, capped completion
length, and the law of total variance; see :func:`pair_truth`.

Determinism: every random quantity comes from one ``numpy.random.Generator`` per purpose,
seeded by ``SeedSequence(seed, spawn_key=(stream,))``; the same configuration and seed give
byte-identical files. Changing the test shape never changes the training data.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Literal

import numpy as np
import pandas as pd
from scipy.special import expit, ndtr

from benchmark.data.dataset import DarsDataset, ObservationBlock, TruthTable
from benchmark.data.io import atomic_write_json, atomic_write_text

#: Bumped whenever the generative model or the file layout changes (it keys the cache).
SIMULATOR_VERSION = "1"

Task = Literal["binary", "f1"]
QuestionStyle = Literal["open", "multiple_choice", "reading"]

# --------------------------------------------------------------------------------------------
# Vocabulary
# --------------------------------------------------------------------------------------------

#: Content words per topic (real English words, disjoint across topics).
TOPIC_VOCAB: dict[str, tuple[str, ...]] = {
    "algebra": (
        "polynomial", "equation", "variable", "coefficient", "quadratic", "root", "matrix",
        "determinant", "exponent", "logarithm", "inequality", "factor", "binomial", "integer",
        "fraction", "vector", "eigenvalue", "sequence", "function", "parabola", "slope", "term",
        "denominator", "numerator",
    ),
    "chemistry": (
        "molecule", "reaction", "catalyst", "solvent", "acid", "enzyme", "isotope", "electron",
        "bond", "oxidation", "compound", "titration", "precipitate", "polymer", "ion", "salt",
        "alkane", "ester", "buffer", "crystal", "reagent", "mole", "valence", "nitrogen",
    ),
    "history": (
        "empire", "dynasty", "treaty", "revolution", "monarch", "parliament", "colony",
        "crusade", "senate", "pharaoh", "rebellion", "armistice", "kingdom", "conquest",
        "emperor", "republic", "feudalism", "manuscript", "chronicle", "siege", "tribe",
        "constitution", "regime", "reformation",
    ),
    "biology": (
        "cell", "protein", "gene", "chromosome", "organism", "membrane", "mitochondria",
        "species", "ribosome", "neuron", "photosynthesis", "tissue", "bacteria", "mutation",
        "allele", "embryo", "hormone", "virus", "nucleus", "antibody", "ecosystem", "habitat",
        "predator", "genome",
    ),
    "physics": (
        "velocity", "momentum", "particle", "photon", "gravity", "friction", "wavelength",
        "magnet", "voltage", "current", "resistor", "pendulum", "acceleration", "quantum",
        "torque", "entropy", "lens", "orbit", "inertia", "spring", "charge", "frequency",
        "projectile", "capacitor",
    ),
    "literature": (
        "novel", "poem", "sonnet", "narrator", "protagonist", "metaphor", "stanza", "tragedy",
        "playwright", "chapter", "verse", "allegory", "satire", "prose", "epic", "villain",
        "heroine", "plot", "rhyme", "author", "anthology", "ballad", "irony", "memoir",
    ),
    "geography": (
        "river", "mountain", "continent", "glacier", "desert", "peninsula", "volcano",
        "latitude", "plateau", "delta", "archipelago", "canyon", "coastline", "monsoon",
        "valley", "island", "border", "tundra", "estuary", "savanna", "lake", "highland",
        "reef", "basin",
    ),
    "economics": (
        "inflation", "tariff", "market", "supply", "demand", "wage", "interest", "currency",
        "deficit", "recession", "investment", "monopoly", "tax", "subsidy", "export", "import",
        "budget", "consumer", "dividend", "loan", "price", "labor", "profit", "revenue",
    ),
    "astronomy": (
        "galaxy", "comet", "nebula", "telescope", "asteroid", "planet", "supernova", "quasar",
        "eclipse", "meteor", "constellation", "pulsar", "star", "moon", "satellite", "cosmos",
        "redshift", "exoplanet", "observatory", "sunspot", "crater", "zodiac", "solstice",
        "parallax",
    ),
    "medicine": (
        "patient", "diagnosis", "symptom", "vaccine", "dose", "therapy", "surgeon", "clinic",
        "infection", "antibiotic", "tumor", "fever", "prescription", "artery", "biopsy",
        "syndrome", "pulse", "insulin", "fracture", "nurse", "trial", "ward", "remedy",
        "pathogen",
    ),
    "law": (
        "statute", "court", "verdict", "plaintiff", "defendant", "contract", "jury", "appeal",
        "tort", "precedent", "attorney", "clause", "lawsuit", "testimony", "judge", "evidence",
        "warrant", "liability", "injunction", "felony", "custody", "arbitration", "covenant",
        "subpoena",
    ),
    "music": (
        "melody", "harmony", "chord", "rhythm", "tempo", "symphony", "orchestra", "octave",
        "violin", "cello", "sonata", "opera", "composer", "scale", "piano", "choir", "concerto",
        "overture", "motif", "cadence", "timbre", "quartet", "libretto", "fugue",
    ),
}

# Synonym groups for template words. Every alternative is a single word, so a synonym swap
# never changes a view's word count (and so its prompt tokens).
_SYNONYMS: dict[str, tuple[str, ...]] = {
    "consider": ("Consider", "Examine", "Study", "Review"),
    "problem": ("problem", "question", "exercise", "task"),
    "involves": ("involves", "features", "includes", "uses"),
    "concerns": ("concerns", "discusses", "addresses", "covers"),
    "equals": ("equals", "reaches", "hits", "matches"),
    "assume": ("Assume", "Suppose", "Imagine", "Say"),
    "contains": ("contains", "holds", "includes", "has"),
    "changes": ("changes", "shifts", "moves", "varies"),
    "differ": ("differ", "vary", "deviate", "diverge"),
    "new": ("new", "resulting", "final", "updated"),
    "record": ("record", "report", "log", "register"),
    "start": ("start", "beginning", "outset", "onset"),
    "later": ("later", "afterwards", "subsequently", "then"),
    "near": ("near", "beside", "around", "by"),
}

# A template is a string with ``{w}`` (a topic word), ``{n}`` (a number), ``{T}`` (the topic
# name) and ``<group>`` (a synonym slot). Slots are filled left to right.
_OPENERS = (
    "<consider> the following {T} <problem> about the {w} and the {w}.",
    "This {T} <problem> <involves> a {w}, a {w} and a {w}.",
    "The <problem> below <concerns> the {w} of a {w}.",
)
_CONDITIONS = (
    "The {w} <equals> {n} when the {w} is {n}.",
    "<assume> each {w} <contains> {n} units of {w}.",
    "The {w} of the {w} <changes> by {n} percent.",
    "<assume> the {w} and the {w} <differ> by {n}.",
    "A {w} <contains> {n} {w} at the <start>.",
)
# Question clause: "If <cond>, <ask>?" or, reordered, "<Ask> if <cond>?" (same words).
_ASK_CONDS = (
    "the {w} <changes> by {n}",
    "the {w} <equals> {n}",
    "each {w} <contains> {n} {w}",
)
_ASK_HEADS = (
    "what is the <new> {w}",
    "how large is the <new> {w}",
    "what is the {w} of the {w}",
)
# Reading style: passage sentences and a question about the passage.
_PASSAGE_SENTENCES = (
    "In {y}, the {w} of the {w} recorded {n} {w}.",
    "The {w} <later> reported {n} {w} <near> the {w}.",
    "At the <start>, the {w} <contains> {n} {w}.",
    "By {y}, every {w} <near> the {w} had {n} {w}.",
    "The {w} and the {w} <differ> by {n} {w}.",
)
_READING_HEADS = (
    "how many {w} did the {w} <record>",
    "how many {w} were there <near> the {w}",
    "what number of {w} did the {w} <record>",
)
_MC_LETTERS = ("A", "B", "C", "D")


# --------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# Exact truth
# --------------------------------------------------------------------------------------------


def _normal_nodes(sd: float) -> tuple[np.ndarray, np.ndarray]:
    """Nodes ``x`` and weights ``w`` with ``sum(w * f(x)) ~= E[f(xi)]``, ``xi ~ N(0, 1)``, for
    ``f(xi) = g(mean + sd * xi)`` with ``g`` analytic in the strip ``|Im t| < pi`` (the sigmoid).

    The trapezoidal rule on ``[-9.5, 9.5]`` with step ``min(0.5, 0.4 / sd)`` converges
    exponentially for such integrands; its error is below 1e-14 for every ``sd <= 10`` and any
    mean (checked against adaptive quadrature in the tests). Gauss-Hermite is not used: its error
    grows to 1e-4 for ``sd = 8`` because the sigmoid's poles come close in the scaled variable.
    """
    h = min(0.5, _TRAPEZOID_C / sd) if sd > 0 else 0.5
    n = int(math.ceil(_TRAPEZOID_HALF_WIDTH / h))
    x = np.arange(-n, n + 1, dtype=float) * h
    w = h * np.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)
    return x, w


_TRAPEZOID_C = 0.4
_TRAPEZOID_HALF_WIDTH = 9.5


def normal_expect(fun: Callable[[np.ndarray], np.ndarray], mean: np.ndarray, sd: float) -> np.ndarray:
    """``E[fun(mean + sd * xi)]`` with ``xi ~ N(0, 1)``, element-wise over ``mean``."""
    mean = np.asarray(mean, dtype=float)
    if sd == 0:
        return fun(mean)
    x, w = _normal_nodes(sd)
    out = np.empty_like(mean)
    flat_in, flat_out = mean.reshape(-1), out.reshape(-1)
    chunk = max(1, 2_000_000 // x.size)
    for i in range(0, flat_in.size, chunk):
        pts = flat_in[i : i + chunk, None] + sd * x
        flat_out[i : i + chunk] = fun(pts) @ w
    return out


def _sigmoid_moments(logit: np.ndarray, sd: float) -> tuple[np.ndarray, np.ndarray]:
    """``E[s]`` and ``E[s^2]`` for ``s = sigmoid(logit + sd * xi)``.

    Clipped to [0, 1]: quadrature weights sum to 1 only up to rounding, which could otherwise put
    an expectation 1 ulp above 1 (a probability the loader would rightly reject).
    """
    e1 = np.clip(normal_expect(expit, logit, sd), 0.0, 1.0)
    e2 = np.clip(normal_expect(lambda t: expit(t) ** 2, logit, sd), 0.0, 1.0)
    return e1, e2


def f1_variance_factor(cfg: SimulatorConfig) -> float:
    """``c`` with ``Var[score | p] = c * p * (1 - p)`` for one decode of success probability ``p``.

    Binary: 1. F1 mixture (both components have mean ``p``): ``share * 1 + (1 - share) /
    (kappa + 1)`` (the Beta(``p kappa``, ``(1 - p) kappa``) variance is ``p (1 - p) / (kappa + 1)``).
    """
    if cfg.task == "binary":
        return 1.0
    return cfg.f1_exact_share + (1.0 - cfg.f1_exact_share) / (cfg.f1_concentration + 1.0)


def completion_stats(cfg: SimulatorConfig, median: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exact ``E[completion_tokens]`` and ``P(truncated)`` for the rounded, capped lognormal.

    ``raw = max(1, round(X))``, ``X ~ LogNormal(log(median), completion_sigma^2)``;
    ``completion = min(raw, max_tokens)``; truncated iff ``raw >= max_tokens``. Since
    ``E[completion] = sum_{n=1}^{cap} P(completion >= n)`` and ``P(raw >= n) = P(X >= n - 1/2)``
    for ``n >= 2``: ``E = 1 + sum_{n=2}^{cap} S(n - 1/2)`` with ``S`` the survival function.
    """
    cap = int(cfg.max_tokens)
    median = np.asarray(median, dtype=float)
    log_med = np.log(median)
    sig = cfg.completion_sigma
    thresholds = np.arange(2, cap + 1, dtype=float) - 0.5  # n - 1/2 for n = 2..cap
    if sig == 0:
        x = np.maximum(1.0, np.floor(median + 0.5))
        mean = np.minimum(x, cap)
        return mean, (x >= cap).astype(float)
    # Chunk over pairs to bound memory at [chunk, cap].
    flat = log_med.ravel()
    mean = np.empty_like(flat)
    chunk = max(1, 4_000_000 // max(cap, 1))
    log_t = np.log(thresholds)
    for i in range(0, flat.size, chunk):
        lm = flat[i : i + chunk, None]
        surv = ndtr((lm - log_t[None, :]) / sig)  # P(X >= t)
        mean[i : i + chunk] = 1.0 + surv.sum(axis=1)
    p_trunc = ndtr((log_med - np.log(cap - 0.5)) / sig)
    return mean.reshape(median.shape), p_trunc


@dataclass(frozen=True)
class TruthDetail:
    """Extra exact quantities of a split (in memory only).

    Attributes:
        var_input: ``[Q, M]`` variance of the per-rewrite expected score over rewrites
            (infinite-decode limit of SPEC §7's input-side term).
        var_output: ``[Q, M]`` expected within-rewrite variance (output-side term);
            ``var_input + var_output = sigma_q ** 2``.
        p_keep: ``[Q, M]`` probability that an answer is neither cut nor unparsable.
        mean_completion_tokens: ``[Q, M]`` expected completion tokens.
        decoding_mu_q: ``[Q, M, S]`` expected score of the original query at each test
            temperature (the ``decoding_variation`` view; test split only, else None).
    """

    var_input: np.ndarray
    var_output: np.ndarray
    p_keep: np.ndarray
    mean_completion_tokens: np.ndarray
    decoding_mu_q: np.ndarray | None = None


def pair_truth(
    cfg: SimulatorConfig,
    base_logit: np.ndarray,
    prompt_tokens: np.ndarray,
    completion_median: np.ndarray,
    temperatures: tuple[float, ...] | None = None,
) -> tuple[TruthTable, TruthDetail]:
    """Exact per-pair truth over the observation distribution (random rewrite, training decode).

    With ``s = sqrt(input_noise^2 + output_noise^2)``, ``sig = sigmoid(l + s * xi)``,
    ``p = floor + (1 - floor) * sig``, ``keep = (1 - P(cut)) * (1 - parse_failure_rate)``
    (independent of the score draw) and ``c`` from :func:`f1_variance_factor`:

    * ``mu_q = keep * E[p]``;
    * ``E[q^2] = keep * (c * E[p] + (1 - c) * E[p^2])`` (since ``E[Y^2 | p] = c p (1 - p) + p^2``);
    * ``sigma_q = sqrt(E[q^2] - mu_q^2)``;
    * ``mu_c = prompt_tokens * price_in + E[completion_tokens] * price_out``.

    The input/output split of ``sigma_q^2`` uses a nested quadrature: ``m(z) = E_e[p | z]``,
    ``var_input = keep^2 * Var_z(m(z))``.
    """
    g = cfg.chance_floor
    c = f1_variance_factor(cfg)
    s_in = cfg.input_noise
    s_out = cfg.output_noise
    s_tot = math.hypot(s_in, s_out)
    e_sig, e_sig2 = _sigmoid_moments(base_logit, s_tot)
    e_p = g + (1 - g) * e_sig
    e_p2 = g * g + 2 * g * (1 - g) * e_sig + (1 - g) ** 2 * e_sig2

    mean_tokens, p_trunc = completion_stats(cfg, completion_median)
    keep = (1.0 - p_trunc) * (1.0 - cfg.parse_failure_rate)
    mu_q = keep * e_p
    e_q2 = keep * (c * e_p + (1.0 - c) * e_p2)
    var = np.maximum(e_q2 - mu_q**2, 0.0)

    # Nested: inner over decodes (s_out), outer over rewrites (s_in).
    xz, wz = _normal_nodes(s_in)
    e_m2 = np.zeros_like(e_p)
    for xi, wi in zip(xz, wz) if s_in > 0 else [(0.0, 1.0)]:
        m_z = g + (1 - g) * np.clip(normal_expect(expit, base_logit + s_in * xi, s_out), 0.0, 1.0)
        e_m2 += wi * m_z**2
    var_in = np.maximum(keep**2 * (e_m2 - e_p**2), 0.0)
    var_in = np.minimum(var_in, var)

    price_in = np.array([m.price_in for m in cfg.models])
    price_out = np.array([m.price_out for m in cfg.models])
    mu_c = prompt_tokens * price_in[None, :] + mean_tokens * price_out[None, :]

    decoding = None
    if temperatures is not None:
        by_t = {
            t: keep * (g + (1 - g) * _sigmoid_moments(base_logit, cfg.output_noise_at(t))[0])
            for t in sorted(set(temperatures))
        }
        decoding = np.stack([by_t[t] for t in temperatures], axis=-1)

    truth = TruthTable(mu_q=mu_q, mu_c=mu_c, sigma_q=np.sqrt(var))
    detail = TruthDetail(
        var_input=var_in,
        var_output=var - var_in,
        p_keep=keep,
        mean_completion_tokens=mean_tokens,
        decoding_mu_q=decoding,
    )
    return truth, detail


# --------------------------------------------------------------------------------------------
# Text
# --------------------------------------------------------------------------------------------

_Part = str | tuple[str, int]  # literal text, or (synonym group, original choice)


def _parse_template(
    template: str, words: Iterator[str], numbers: Iterator[str], topic: str, rng: np.random.Generator
) -> list[_Part]:
    """Fill ``{w}``/``{n}``/``{y}``/``{T}``; keep ``<group>`` as a slot with a random original choice."""
    parts: list[_Part] = []
    buf = []
    i = 0
    while i < len(template):
        ch = template[i]
        if ch == "{":
            j = template.index("}", i)
            key = template[i + 1 : j]
            if key == "w":
                buf.append(next(words))
            elif key in ("n", "y"):
                buf.append(next(numbers) if key == "n" else str(int(rng.integers(1700, 2000))))
            elif key == "T":
                buf.append(topic)
            else:  # pragma: no cover - templates are module constants
                raise ValueError(f"bad template key {key!r}")
            i = j + 1
        elif ch == "<":
            j = template.index(">", i)
            group = template[i + 1 : j]
            if buf:
                parts.append("".join(buf))
                buf = []
            parts.append((group, int(rng.integers(len(_SYNONYMS[group])))))
            i = j + 1
        else:
            buf.append(ch)
            i += 1
    if buf:
        parts.append("".join(buf))
    return parts


def _render(parts: list[_Part], choices: Iterator[int]) -> str:
    out = []
    for p in parts:
        if isinstance(p, tuple):
            out.append(_SYNONYMS[p[0]][next(choices)])
        else:
            out.append(p)
    return "".join(out)


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


@dataclass
class _QueryText:
    """The structure of one query's text, from which every view is rendered."""

    opener: list[_Part]
    conditions: list[list[_Part]]
    ask_cond: list[_Part]
    ask_head: list[_Part]
    options: str  # multiple choice options block ("" otherwise)
    passage: str  # reading passage ("" otherwise)
    gold: str
    wrong: tuple[str, ...]  # plausible wrong answers

    def slot_groups(self) -> list[str]:
        groups = []
        for parts in [self.opener, *self.conditions, self.ask_cond, self.ask_head]:
            groups.extend(p[0] for p in parts if isinstance(p, tuple))
        return groups

    def original_choices(self) -> list[int]:
        ch = []
        for parts in [self.opener, *self.conditions, self.ask_cond, self.ask_head]:
            ch.extend(p[1] for p in parts if isinstance(p, tuple))
        return ch

    def render(self, choices: list[int], cond_order: list[int], ask_flip: bool, reading: bool) -> str:
        """Render a view: synonym choices per slot, condition order, question-clause order."""
        it = iter(choices)
        opener = _render(self.opener, it)
        conds = [_render(c, it) for c in self.conditions]
        cond = _render(self.ask_cond, it)
        head = _render(self.ask_head, it)
        if reading:
            lead = "according to the passage"
            ask = f"{_cap(head)}, {lead}?" if ask_flip else f"{_cap(lead)}, {head}?"
            return ask
        ask = f"{_cap(head)} if {cond}?" if ask_flip else f"If {cond}, {head}?"
        body = [opener] + [conds[i] for i in cond_order] + [ask]
        return " ".join(body)


def _make_query_text(
    cfg: SimulatorConfig, topic: str, n_clauses: int, rng: np.random.Generator
) -> _QueryText:
    vocab = TOPIC_VOCAB[topic]
    # A fresh shuffled stream of topic words (cycled if a query needs more than the list).
    order = rng.permutation(len(vocab))

    def word_stream() -> Iterator[str]:
        k = 0
        while True:
            yield vocab[order[k % len(order)]]
            k += 1

    def number_stream() -> Iterator[str]:
        while True:
            yield str(int(rng.integers(2, 100)))

    def pick(templates: tuple[str, ...]) -> str:
        return templates[int(rng.integers(len(templates)))]

    words, numbers = word_stream(), number_stream()
    reading = cfg.question_style == "reading"
    passage = ""
    if reading:
        sentences = []
        for _ in range(n_clauses + 1):
            tpl = _PASSAGE_SENTENCES[int(rng.integers(len(_PASSAGE_SENTENCES)))]
            parts = _parse_template(tpl, words, numbers, topic, rng)
            # Passage synonyms are fixed (rewrites touch only the question).
            sentences.append(_cap(_render(parts, iter(p[1] for p in parts if isinstance(p, tuple)))))
        passage = " ".join(sentences)
        opener: list[_Part] = []
        conditions: list[list[_Part]] = []
        ask_cond: list[_Part] = []
        ask_head = _parse_template(
            _READING_HEADS[int(rng.integers(len(_READING_HEADS)))], words, numbers, topic, rng
        )
    else:
        opener = _parse_template(pick(_OPENERS), words, numbers, topic, rng)
        conditions = [
            _parse_template(pick(_CONDITIONS), words, numbers, topic, rng) for _ in range(n_clauses)
        ]
        ask_cond = _parse_template(pick(_ASK_CONDS), words, numbers, topic, rng)
        ask_head = _parse_template(pick(_ASK_HEADS), words, numbers, topic, rng)

    answers = rng.choice(np.arange(2, 1000), size=4, replace=False)
    options = ""
    if cfg.question_style == "multiple_choice":
        gold_idx = int(rng.integers(4))
        options = "\n".join(f"({L}) {int(a)}" for L, a in zip(_MC_LETTERS, answers))
        gold = _MC_LETTERS[gold_idx]
        wrong = tuple(L for i, L in enumerate(_MC_LETTERS) if i != gold_idx)
    else:
        gold = str(int(answers[0]))
        wrong = tuple(str(int(a)) for a in answers[1:])
    return _QueryText(opener, conditions, ask_cond, ask_head, options, passage, gold, wrong)


def _rewrite_views(
    qt: _QueryText, n_views: int, reading: bool, rng: np.random.Generator
) -> list[str]:
    """``n_views`` distinct rewrites (never the original while the rewrite space allows it)."""
    groups = qt.slot_groups()
    radices = [len(_SYNONYMS[g]) for g in groups]
    n_cond = len(qt.conditions)
    can_swap = n_cond >= 2
    original_key = (tuple(qt.original_choices()), False, False)
    seen = {original_key}
    views: list[str] = []
    space = int(np.prod(radices, dtype=np.int64)) * 2 * (2 if can_swap else 1)
    max_distinct = space - 1
    for _ in range(n_views):
        for _attempt in range(64):
            choices = tuple(int(rng.integers(r)) for r in radices)
            flip = bool(rng.integers(2))
            swap = bool(rng.integers(2)) if can_swap else False
            key = (choices, flip, swap)
            if key not in seen or len(seen) > max_distinct:
                break
        seen.add(key)
        order = list(range(n_cond))
        if swap:
            order[0], order[1] = order[1], order[0]
        views.append(qt.render(list(choices), order, flip, reading))
    return views


# --------------------------------------------------------------------------------------------
# Simulation
# --------------------------------------------------------------------------------------------

_STREAM_WORLD, _STREAM_TRAIN_Q, _STREAM_TRAIN_OBS, _STREAM_TEST_Q, _STREAM_TEST_OBS = range(5)


def _rng(seed: int, stream: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=(stream,)))


@dataclass(frozen=True)
class SimulatedSplit:
    """One simulated split: query table, dense observations, per-row extras, truth.

    Attributes:
        queries: one row per query: ``query_id``, ``topic``, ``difficulty``,
            ``original_question``, ``question`` (original view as shown, options included),
            ``context``, ``gold``, ``text`` (SPEC §5 feature text).
        view_questions: ``[Q][V]`` ``input_question`` of each view (``-1`` view: the original).
        view_prompts: ``[Q][V]`` ``question`` field of each view (options appended).
        blocks: ``{"train": ...}`` or ``{"prompt_variation": ..., "decoding_variation": ...}``,
            raw USD costs.
        prompt_tokens, completion_tokens: int ``[Q, M, V, S]`` per block (same keys).
        truncated, parse_success: bool ``[Q, M, V, S]`` per block.
        temperatures: ``[S]`` decode temperature per block.
        truth / detail: exact pair quantities.
        base_logit: ``[Q, M]`` the pair's logit before rewrite and decode noise.
    """

    split: str
    queries: pd.DataFrame
    view_questions: dict[str, list[list[str]]]
    view_prompts: dict[str, list[list[str]]]
    blocks: dict[str, ObservationBlock]
    prompt_tokens: dict[str, np.ndarray]
    completion_tokens: dict[str, np.ndarray]
    truncated: dict[str, np.ndarray]
    parse_success: dict[str, np.ndarray]
    temperatures: dict[str, np.ndarray]
    truth: TruthTable
    detail: TruthDetail
    base_logit: np.ndarray


@dataclass(frozen=True)
class SimulatedData:
    """A whole simulated dataset in memory (what :func:`write_simulated` writes).

    Attributes:
        cfg, seed, name: how it was made.
        skill: ``[M, K]`` logit skill per model and topic.
        train, test: :class:`SimulatedSplit`.
    """

    cfg: SimulatorConfig
    seed: int
    name: str
    skill: np.ndarray
    train: SimulatedSplit
    test: SimulatedSplit

    @property
    def models(self) -> tuple[str, ...]:
        return self.cfg.model_names

    def model_table(self) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "model": [m.name for m in self.cfg.models],
                "price_in": [m.price_in for m in self.cfg.models],
                "price_out": [m.price_out for m in self.cfg.models],
                "params_b": [
                    np.nan if m.params_b is None else float(m.params_b) for m in self.cfg.models
                ],
            }
        )

    def to_dataset(self) -> DarsDataset:
        """The same data as a :class:`DarsDataset` (raw USD costs, truth attached)."""
        return DarsDataset(
            name=self.name,
            models=self.models,
            train=self.train.blocks["train"],
            test_rewrite=self.test.blocks["prompt_variation"],
            test_decoding=self.test.blocks["decoding_variation"],
            train_queries=self.train.queries.copy(),
            test_queries=self.test.queries.copy(),
            model_table=self.model_table(),
            train_truth=self.train.truth,
            test_truth=self.test.truth,
            source={
                "simulator": SIMULATOR_VERSION,
                "seed": self.seed,
                "config_hash": config_hash(self.cfg, self.seed),
            },
        )

    def rows(self, split: str) -> Iterator[dict[str, Any]]:
        """The JSONL rows of ``split`` (``train`` or ``test``) as dicts, in file order."""
        for line in _split_lines(self, split):
            yield json.loads(line)


def _skill_matrix(cfg: SimulatorConfig, rng: np.random.Generator) -> np.ndarray:
    m, k = len(cfg.models), len(cfg.topics)
    base = cfg.skill_scale * np.array([mod.skill for mod in cfg.models], dtype=float)
    skill = np.repeat(base[:, None], k, axis=1)
    if cfg.specialists is not None:
        for topic, spec in enumerate(cfg.specialists):
            if spec >= 0:
                skill[spec, topic] += cfg.specialist_bonus
    skill += cfg.topic_skill_scale * rng.standard_normal((m, k))
    return skill


def _feature_text(context: str, question: str) -> str:
    """SPEC §5 feature text: ``context[:1200] + "\\nQuestion: " + question`` (no context: question)."""
    return f"{context[:1200]}\nQuestion: {question}" if context else question


def _simulate_split(
    cfg: SimulatorConfig,
    split: str,
    n_queries: int,
    skill: np.ndarray,
    rng_q: np.random.Generator,
    rng_obs: np.random.Generator,
) -> SimulatedSplit:
    M = len(cfg.models)
    K = len(cfg.topics)
    # --- queries: topic, difficulty, pair noise, clause count, text --------------------------
    weights = np.ones(K) if cfg.topic_weights is None else np.asarray(cfg.topic_weights, float)
    topic = rng_q.choice(K, size=n_queries, p=weights / weights.sum())
    difficulty = cfg.difficulty_mean + cfg.difficulty_std * rng_q.standard_normal(n_queries)
    pair_eps = rng_q.standard_normal((n_queries, M))
    n_clauses = np.clip(
        np.rint(cfg.clauses_base + cfg.clauses_difficulty_slope * difficulty
                + 0.5 * rng_q.standard_normal(n_queries)),
        0, cfg.max_clauses,
    ).astype(int)
    base_logit = skill[:, topic].T - difficulty[:, None] + cfg.pair_noise * pair_eps  # [Q, M]

    reading = cfg.question_style == "reading"
    is_train = split == "train"
    n_rew = cfg.n_rewrites if is_train else cfg.n_test_rewrites
    texts = [_make_query_text(cfg, cfg.topics[t], int(c), rng_q) for t, c in zip(topic, n_clauses)]
    originals = [
        qt.render(qt.original_choices(), list(range(len(qt.conditions))), False, reading) for qt in texts
    ]
    rewrites = [_rewrite_views(qt, n_rew, reading, rng_q) for qt in texts]

    def shown(qt: _QueryText, q_text: str) -> str:
        return f"{q_text}\n{qt.options}" if qt.options else q_text

    contexts = [qt.passage for qt in texts]
    # Prompt tokens: identical for every view of a query (views have equal word counts).
    n_words = np.array(
        [len(shown(qt, o).split()) + len(qt.passage.split()) for qt, o in zip(texts, originals)], float
    )
    tok_factor = np.array([m.tokenizer_factor for m in cfg.models])
    prompt_tokens = np.rint(
        tok_factor[None, :] * (cfg.prompt_overhead_tokens + cfg.tokens_per_word * n_words[:, None])
    ).astype(np.int64)  # [Q, M]
    verbosity = cfg.verbosity_scale * np.array([m.verbosity for m in cfg.models])
    completion_median = verbosity[None, :] * np.exp(cfg.length_difficulty_slope * difficulty)[:, None]

    query_ids = [f"{split}-{i:04d}" for i in range(n_queries)]
    queries = pd.DataFrame(
        {
            "query_id": query_ids,
            "topic": [cfg.topics[t] for t in topic],
            "difficulty": difficulty,
            "original_question": originals,
            "question": [shown(qt, o) for qt, o in zip(texts, originals)],
            "context": contexts,
            "gold": [qt.gold for qt in texts],
            "wrong_answer": [qt.wrong[0] for qt in texts],
            "text": [_feature_text(c, o) for c, o in zip(contexts, originals)],
        }
    )

    # --- observations -------------------------------------------------------------------------
    if is_train:
        layout = {
            "train": (
                np.arange(n_rew), np.arange(cfg.n_decodes), np.full(cfg.n_decodes, cfg.temperature), True
            ),
        }
    else:
        n_t = len(cfg.test_temperatures)
        layout = {
            "prompt_variation": (np.arange(n_rew), np.zeros(1, int), np.array([cfg.temperature]), True),
            "decoding_variation": (
                np.array([-1]), np.arange(n_t), np.array(cfg.test_temperatures), False
            ),
        }

    blocks, ptoks, ctoks, truncs, parses, temps = {}, {}, {}, {}, {}, {}
    view_questions: dict[str, list[list[str]]] = {}
    view_prompts: dict[str, list[list[str]]] = {}
    g = cfg.chance_floor
    price_in = np.array([m.price_in for m in cfg.models])
    price_out = np.array([m.price_out for m in cfg.models])
    for key, (view_ids, decode_ids, temperatures, rewritten) in layout.items():
        V, S = len(view_ids), len(decode_ids)
        shape = (n_queries, M, V, S)
        if rewritten:
            shared = rng_obs.standard_normal((n_queries, 1, V))
            own = rng_obs.standard_normal((n_queries, M, V))
            rho = cfg.input_noise_shared
            z = cfg.input_noise * (np.sqrt(rho) * shared + np.sqrt(1.0 - rho) * own)
            view_questions[key] = [list(r) for r in rewrites]
            view_prompts[key] = [[shown(qt, v) for v in r] for qt, r in zip(texts, rewrites)]
        else:
            z = np.zeros((n_queries, M, V))
            view_questions[key] = [[o] for o in originals]
            view_prompts[key] = [[shown(qt, o)] for qt, o in zip(texts, originals)]
        s_out = np.array([cfg.output_noise_at(t) for t in temperatures])  # [S]
        e = rng_obs.standard_normal(shape)
        logit = base_logit[:, :, None, None] + z[..., None] + s_out * e
        p = g + (1.0 - g) * expit(logit)
        u_hit = rng_obs.random(shape)
        if cfg.task == "binary":
            y0 = (u_hit < p).astype(float)
        else:
            u_exact = rng_obs.random(shape)
            pc = np.clip(p, 1e-12, 1.0 - 1e-12)
            beta = rng_obs.beta(pc * cfg.f1_concentration, (1.0 - pc) * cfg.f1_concentration)
            y0 = np.where(u_exact < cfg.f1_exact_share, (u_hit < p).astype(float), beta)
        log_med = np.log(completion_median)[:, :, None, None]
        log_x = log_med + cfg.completion_sigma * rng_obs.standard_normal(shape)
        raw = np.maximum(1, np.rint(np.exp(log_x))).astype(np.int64)
        truncated = raw >= cfg.max_tokens
        comp = np.minimum(raw, cfg.max_tokens)
        parse_fail = rng_obs.random(shape) < cfg.parse_failure_rate
        ok = ~truncated & ~parse_fail
        score = np.where(ok, y0, 0.0)
        pt = np.broadcast_to(prompt_tokens[:, :, None, None], shape).copy()
        cost = pt * price_in[None, :, None, None] + comp * price_out[None, :, None, None]
        blocks[key] = ObservationBlock(
            score=score,
            cost=cost,
            present=np.ones(shape, dtype=bool),
            view_ids=np.asarray(view_ids, dtype=np.int64),
            decode_ids=np.asarray(decode_ids, dtype=np.int64),
        )
        ptoks[key], ctoks[key], truncs[key], parses[key] = pt, comp, truncated, ok
        temps[key] = np.asarray(temperatures, dtype=float)

    truth, detail = pair_truth(
        cfg,
        base_logit,
        prompt_tokens.astype(float),
        completion_median,
        temperatures=None if is_train else cfg.test_temperatures,
    )
    return SimulatedSplit(
        split=split,
        queries=queries,
        view_questions=view_questions,
        view_prompts=view_prompts,
        blocks=blocks,
        prompt_tokens=ptoks,
        completion_tokens=ctoks,
        truncated=truncs,
        parse_success=parses,
        temperatures=temps,
        truth=truth,
        detail=detail,
        base_logit=base_logit,
    )


def simulate(cfg: SimulatorConfig, seed: int, name: str = "synthetic") -> SimulatedData:
    """Draw a dataset from the generative model (in memory). Deterministic in ``(cfg, seed)``."""
    if int(seed) != seed or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    seed = int(seed)
    skill = _skill_matrix(cfg, _rng(seed, _STREAM_WORLD))
    train = _simulate_split(
        cfg, "train", cfg.n_train, skill, _rng(seed, _STREAM_TRAIN_Q), _rng(seed, _STREAM_TRAIN_OBS)
    )
    test = _simulate_split(
        cfg, "test", cfg.n_test, skill, _rng(seed, _STREAM_TEST_Q), _rng(seed, _STREAM_TEST_OBS)
    )
    return SimulatedData(cfg=cfg, seed=seed, name=name, skill=skill, train=train, test=test)


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------


def _js(value: Any) -> str:
    return json.dumps(value)


def _split_lines(data: SimulatedData, split: str) -> Iterator[str]:
    """JSON lines of a split in file order: query, model, then the block's views and decodes."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    sp = data.train if split == "train" else data.test
    cfg = data.cfg
    score_type = "binary" if cfg.task == "binary" else "f1"
    ds = _js(data.name)
    split_js = _js(split)
    models_js = [_js(m) for m in cfg.model_names]
    keys = list(sp.blocks)
    q_orig = [_js(s) for s in sp.queries["original_question"]]
    q_ctx = [_js(s) for s in sp.queries["context"]]
    gold = list(sp.queries["gold"])
    gold_js = [_js(s) for s in gold]
    wrong_answer = list(sp.queries["wrong_answer"])
    topic_word = list(sp.queries["topic"])
    top_p = repr(float(cfg.top_p))
    max_tok = int(cfg.max_tokens)
    per_key = []
    for key in keys:
        b = sp.blocks[key]
        obs_type = None if split == "train" else key
        per_key.append(
            (
                b,
                None if obs_type is None else _js(obs_type),
                [[_js(v) for v in row] for row in sp.view_questions[key]],
                [[_js(v) for v in row] for row in sp.view_prompts[key]],
                sp.prompt_tokens[key],
                sp.completion_tokens[key],
                sp.truncated[key],
                sp.parse_success[key],
                [repr(float(t)) for t in sp.temperatures[key]],
            )
        )
    Q, M = sp.base_logit.shape
    for q in range(Q):
        qid = _js(sp.queries["query_id"].iat[q])
        wrong_q = wrong_answer[q]
        for m in range(M):
            for b, obs_js, vq, vp, pt, ct, tr, ok, temps in per_key:
                V, S = b.score.shape[2:]
                for v in range(V):
                    vid = int(b.view_ids[v])
                    for s in range(S):
                        score = float(b.score[q, m, v, s])
                        cost = float(b.cost[q, m, v, s])
                        ptk = int(pt[q, m, v, s])
                        ctk = int(ct[q, m, v, s])
                        if tr[q, m, v, s]:
                            finish, parse, pred = "length", "false", "null"
                            out = f"Working through this {topic_word[q]} problem step by step"
                        elif not ok[q, m, v, s]:
                            finish, parse, pred = "stop", "false", "null"
                            out = f"The {topic_word[q]} question is unclear; no answer can be given."
                        else:
                            if score >= 1.0:
                                ans = gold[q]
                            elif score <= 0.0:
                                ans = wrong_q
                            else:
                                ans = f"{gold[q]} {wrong_q}"
                            finish, parse, pred = "stop", "true", _js(ans)
                            out = f"Reasoning about this {topic_word[q]} problem.\nFinal Answer: {ans}"
                        obs_part = f', "observation_type": {obs_js}' if obs_js is not None else ""
                        cost_s = repr(cost)
                        yield (
                            f'{{"dataset": {ds}, "split": {split_js}, "query_id": {qid}, '
                            f'"model": {models_js[m]}, "prompt_variant_id": {vid}, '
                            f'"decode_id": {int(b.decode_ids[s])}'
                            f'{obs_part}, "score": {score!r}, "cost": {cost_s}, '
                            f'"original_question": {q_orig[q]}, "input_question": {vq[q][v]}, '
                            f'"question": {vp[q][v]}, "context": {q_ctx[q]}, "passage": {q_ctx[q]}, '
                            f'"gold": {gold_js[q]}, '
                            f'"usage": {{"prompt_tokens": {ptk}, "completion_tokens": {ctk}, '
                            f'"total_tokens": {ptk + ctk}, "cost": {cost_s}}}, '
                            f'"request_config": {{"temperature": {temps[s]}, "top_p": {top_p}, '
                            f'"max_tokens": {max_tok}}}, "finish_reason": "{finish}", '
                            f'"score_type": "{score_type}", "parse_success": {parse}, '
                            f'"output_text": {_js(out)}, "predicted_answer": {pred}}}'
                        )


def _metadata(data: SimulatedData) -> dict[str, Any]:
    cfg = data.cfg
    return {
        "dataset": data.name,
        "models": list(cfg.model_names),
        "model_info": {
            m.name: {"price_in": m.price_in, "price_out": m.price_out, "params_b": m.params_b}
            for m in cfg.models
        },
        "score_type": "binary" if cfg.task == "binary" else "f1",
        "simulator": {
            "version": SIMULATOR_VERSION,
            "seed": data.seed,
            "config_hash": config_hash(cfg, data.seed),
            "config": cfg.to_dict(),
        },
    }


def _truth_csv(data: SimulatedData) -> str:
    """``split,query_id,model,mu_q,mu_c,sigma_q`` with floats written exactly (``repr``)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["split", "query_id", "model", "mu_q", "mu_c", "sigma_q"])
    for sp in (data.train, data.test):
        t = sp.truth
        for q, qid in enumerate(sp.queries["query_id"]):
            for m, name in enumerate(data.models):
                writer.writerow(
                    [sp.split, qid, name, repr(float(t.mu_q[q, m])), repr(float(t.mu_c[q, m])),
                     repr(float(t.sigma_q[q, m]))]
                )
    return buf.getvalue()


def split_jsonl(data: SimulatedData, split: str) -> str:
    """The whole ``<split>_scored_generations.jsonl`` text (one JSON object per line)."""
    return "".join(line + "\n" for line in _split_lines(data, split))


def write_data(data: SimulatedData, out_dir: str | os.PathLike) -> Path:
    """Write an in-memory simulation to ``<out_dir>/<data.name>/`` (each file atomically)."""
    folder = Path(out_dir) / data.name
    folder.mkdir(parents=True, exist_ok=True)
    for split in ("train", "test"):
        atomic_write_text(folder / f"{split}_scored_generations.jsonl", split_jsonl(data, split))
    atomic_write_json(folder / "metadata.json", _metadata(data))
    atomic_write_text(folder / "truth.csv", _truth_csv(data))
    return folder


def write_simulated(cfg: SimulatorConfig, out_dir: str | os.PathLike, name: str, seed: int) -> Path:
    """Simulate and write ``<out_dir>/<name>/{train,test}_scored_generations.jsonl``,
    ``metadata.json`` and ``truth.csv`` (each atomically). Returns ``<out_dir>/<name>``.

    Pass ``out_dir`` as the loader's ``data_dir``: ``load_dars_dir(out_dir, name)``.
    """
    _check_name(name)
    return write_data(simulate(cfg, seed, name=name), out_dir)


def _check_name(name: str) -> None:
    if not name or name in (".", "..") or "/" in name or "\\" in name or name.startswith("."):
        raise ValueError(f"dataset name {name!r} must be a plain folder name")


def config_hash(cfg: SimulatorConfig, seed: int) -> str:
    """Hex digest keying a simulation: the config, the seed and :data:`SIMULATOR_VERSION`."""
    payload = json.dumps(
        {"config": cfg.to_dict(), "seed": int(seed), "version": SIMULATOR_VERSION},
        sort_keys=True,
        allow_nan=False,
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:20]


def ensure_simulated(
    cfg: SimulatorConfig, cache_root: str | os.PathLike, name: str, seed: int
) -> Path:
    """The data_dir of a cached simulation, writing it first if it is not there yet.

    Files live in ``<cache_root>/<config_hash>/<name>/``; the function returns
    ``<cache_root>/<config_hash>`` (the loader's ``data_dir``). The ``<name>`` folder is written
    in a temporary sibling and renamed into place, so a reader never sees a partial folder and
    concurrent callers (parallel sweeps) agree on one copy.
    """
    _check_name(name)
    data_dir = Path(cache_root).expanduser() / config_hash(cfg, seed)
    target = data_dir / name
    if target.is_dir():
        return data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".tmp", dir=data_dir))
    try:
        write_data(simulate(cfg, seed, name=name), tmp)
        try:
            os.rename(tmp / name, target)
        except OSError:
            if not target.is_dir():  # not a lost race: a real failure
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return data_dir


# --------------------------------------------------------------------------------------------
# Presets
# --------------------------------------------------------------------------------------------

# Calibration protocol (every preset below): the SPEC §7 diagnostics of the simulated training
# split (:func:`simulated_diagnostics`: lambda = 0.05 on min-max normalised cost over train and
# test, the 5 x 5 training grid) were matched to the paper's values by a random search over the
# noise, difficulty and skill knobs on seed 0, then a local search on the mean over seeds 0-3,
# with a realistic mean score as an extra target. The values quoted are mean +- sd over seeds
# 0-7; with 200 training queries a query share has a sampling sd of about 0.03 across seeds.


def default_preset() -> SimulatorConfig:
    """The default: the release's shape with a strong planted topic signal.

    Six models, 200 training queries x 5 rewrites x 5 decodes, 300 test queries x (3 rewrite +
    3 decoding) rows, binary scores, eight topics with a specialist each (the best model depends
    on the topic: four different models win at least one topic on seed 0). It is a noisy
    problem on which single-shot labels are unreliable. Diagnostics (seeds 0-5): outcome
    instability 0.982 +- 0.004, winner flip 0.996 +- 0.004, single-vs-DA disagreement
    0.767 +- 0.014, input-side share 0.211 +- 0.004 (exact infinite-decode share 0.059), mean
    score 0.58.
    """
    return SimulatorConfig()


def gpqa_like() -> SimulatorConfig:
    """GPQA-like: four-option multiple choice, binary scores, hard, mostly output-side noise.

    Targets (SPEC §7): outcome instability 0.715, winner flip 0.970, output-side dominated;
    mean score about 0.45. Achieved (seeds 0-7): outcome instability 0.722 +- 0.021, winner flip
    0.967 +- 0.013, single-vs-DA disagreement 0.752 +- 0.016, input-side share 0.292 +- 0.009
    (exact 0.167), mean score 0.480 +- 0.029. Shape as the release: 248 test queries (8,928 test
    rows), max_tokens 768 (the "thinking" model is cut about 30% of the time). Wide difficulty
    and skill spreads make many pairs always right or always wrong; noisy answer lengths make
    the cheapest correct model change between samples, so almost every query's single-shot
    winner flips. The strongest model is best on most queries, so the topic signal is weak
    (as on the real GPQA). A chance floor was searched over and came out at 0: real models are
    consistently wrong rather than guessing.
    """
    return SimulatorConfig(
        task="binary",
        question_style="multiple_choice",
        n_test=248,
        max_tokens=768,
        verbosity_scale=0.6,
        length_difficulty_slope=0.1,
        difficulty_mean=1.0,
        difficulty_std=6.25,
        skill_scale=4.25,
        specialist_bonus=0.6,
        pair_noise=1.15,
        input_noise=2.15,
        output_noise=2.3,
        completion_sigma=0.65,
    )


def math_like() -> SimulatorConfig:
    """MATH-500-like: open numeric answers, binary scores, many easy problems, output-side noise.

    Targets (SPEC §7): winner flip 0.645, output-side dominated; mean score about 0.8. Achieved
    (seeds 0-7): winner flip 0.629 +- 0.029, outcome instability 0.563 +- 0.023, single-vs-DA
    disagreement 0.524 +- 0.024, input-side share 0.279 +- 0.009 (exact 0.157), mean score
    0.837 +- 0.021. Shape as the release: 300 test queries (10,800 test rows), max_tokens 3072,
    longer answers (verbosity x 1.6). Easy problems that the cheapest model always solves give
    stable single-shot winners; the topic specialists keep the best model topic-dependent.
    """
    return SimulatorConfig(
        task="binary",
        question_style="open",
        n_test=300,
        max_tokens=3072,
        verbosity_scale=1.6,
        difficulty_mean=-4.1,
        difficulty_std=4.0,
        skill_scale=1.3,
        specialist_bonus=2.6,
        pair_noise=0.2,
        input_noise=1.25,
        output_noise=0.4,
        completion_sigma=0.15,
    )


def drop_like() -> SimulatorConfig:
    """DROP-800-like: reading comprehension, continuous F1 scores, slightly input-side noise.

    Targets (SPEC §7): winner flip 0.665, single-vs-DA disagreement 0.471, slightly input-side;
    mean F1 about 0.75-0.8. Achieved (seeds 0-7): winner flip 0.647 +- 0.025, single-vs-DA
    disagreement 0.518 +- 0.025, input-side share 0.566 +- 0.017 (exact 0.526), outcome
    instability 0.653 +- 0.023, mean score 0.828 +- 0.023 (the disagreement could not be
    lowered further without losing the flip rate or the input-side share). Shape as the
    release: 600 test queries (21,600 test rows), max_tokens 512, short answers (verbosity
    x 0.4). Large rewrite shifts with little decode noise make the question's wording matter
    more than sampling; 40% of the decodes earn partial credit.
    """
    return SimulatorConfig(
        task="f1",
        question_style="reading",
        n_test=600,
        max_tokens=512,
        verbosity_scale=0.4,
        difficulty_mean=-6.9,
        difficulty_std=6.1,
        skill_scale=0.55,
        specialist_bonus=1.7,
        pair_noise=0.1,
        input_noise=3.5,
        input_noise_shared=0.35,
        output_noise=0.05,
        f1_exact_share=0.6,
        f1_concentration=1.0,
        completion_sigma=0.25,
    )


#: Named configurations (see each function's docstring for its calibration). ``default`` has
#: the release's shape (6 models, 200 training queries x 5 rewrites x 5 decodes, 300 test queries
#: x (3 rewrite + 3 decoding) rows).
PRESETS: dict[str, SimulatorConfig] = {
    "default": default_preset(),
    "gpqa_like": gpqa_like(),
    "math_like": math_like(),
    "drop_like": drop_like(),
}


# --------------------------------------------------------------------------------------------
# Diagnostics (calibration of presets against SPEC §7)
# --------------------------------------------------------------------------------------------


def simulated_diagnostics(
    cfg: SimulatorConfig, seed: int, lam: float = 0.05, cost_norm: str = "minmax"
) -> dict[str, float | int | str]:
    """SPEC §7 diagnostics of the simulated training split (what the presets are calibrated on).

    Costs are normalised over train and test together (SPEC §3, ``cost_norm``) before
    :func:`evaluators.diagnostics.diagnose` computes outcome instability, winner flip rate,
    single-vs-DA disagreement (at ``lam``) and the input-/output-side variance decomposition.
    The result also carries ``truth_input_share``: the exact infinite-decode share
    ``mean(var_input) / mean(sigma_q^2)`` over training pairs.
    """
    from benchmark.data.dataset import normalise_costs
    from evaluators.diagnostics import diagnose

    data = simulate(cfg, seed)
    ds = normalise_costs(data.to_dataset(), cost_norm)  # type: ignore[arg-type]
    out = dict(diagnose(ds.train, lam))
    det = data.train.detail
    total = float((det.var_input + det.var_output).mean())
    out["truth_input_share"] = float(det.var_input.mean() / total) if total > 0 else float("nan")
    out["mean_score"] = float(np.nanmean(ds.train.score))
    return out
