"""Simulator text: topic vocabularies, sentence templates and the rendering of a query and its
rewrites (docs/simulator.md, "Queries and text")."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache

import numpy as np

from benchmark.data.simulator.intstream import BoundedInts

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


_Part = str | tuple[str, int]  # literal text, or (synonym group, original choice)


@cache
def _compile(template: str) -> tuple[tuple[str, str], ...]:
    """Tokens of a template: ``("lit", text)``, ``("w"|"n"|"y"|"T", "")`` or ``("slot", group)``."""
    tokens: list[tuple[str, str]] = []
    i = 0
    while i < len(template):
        ch = template[i]
        if ch == "{":
            j = template.index("}", i)
            key = template[i + 1 : j]
            if key not in ("w", "n", "y", "T"):  # pragma: no cover - templates are module constants
                raise ValueError(f"bad template key {key!r}")
            tokens.append((key, ""))
            i = j + 1
        elif ch == "<":
            j = template.index(">", i)
            tokens.append(("slot", template[i + 1 : j]))
            i = j + 1
        else:
            j = i
            while j < len(template) and template[j] not in "{<":
                j += 1
            tokens.append(("lit", template[i:j]))
            i = j
    return tuple(tokens)


def _parse_template(
    template: str, words: Iterator[str], numbers: Iterator[str], topic: str, rng: BoundedInts
) -> list[_Part]:
    """Fill ``{w}``/``{n}``/``{y}``/``{T}``; keep ``<group>`` as a slot with a random original choice.

    Random draws happen in template order (numbers, years, slot choices), one at a time.
    """
    parts: list[_Part] = []
    buf: list[str] = []
    for kind, text in _compile(template):
        if kind == "lit":
            buf.append(text)
        elif kind == "w":
            buf.append(next(words))
        elif kind == "n":
            buf.append(next(numbers))
        elif kind == "y":
            buf.append(str(rng.integers(1700, 2000)))
        elif kind == "T":
            buf.append(topic)
        else:
            if buf:
                parts.append("".join(buf))
                buf = []
            parts.append((text, rng.integers(len(_SYNONYMS[text]))))
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
class QueryText:
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


def make_query_text(
    question_style: str, topic: str, n_clauses: int, rng: BoundedInts
) -> QueryText:
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
            yield str(rng.integers(2, 100))

    def pick(templates: tuple[str, ...]) -> str:
        return templates[rng.integers(len(templates))]

    words, numbers = word_stream(), number_stream()
    reading = question_style == "reading"
    passage = ""
    if reading:
        sentences = []
        for _ in range(n_clauses + 1):
            tpl = _PASSAGE_SENTENCES[rng.integers(len(_PASSAGE_SENTENCES))]
            parts = _parse_template(tpl, words, numbers, topic, rng)
            # Passage synonyms are fixed (rewrites touch only the question).
            sentences.append(_cap(_render(parts, iter(p[1] for p in parts if isinstance(p, tuple)))))
        passage = " ".join(sentences)
        opener: list[_Part] = []
        conditions: list[list[_Part]] = []
        ask_cond: list[_Part] = []
        ask_head = _parse_template(
            _READING_HEADS[rng.integers(len(_READING_HEADS))], words, numbers, topic, rng
        )
    else:
        opener = _parse_template(pick(_OPENERS), words, numbers, topic, rng)
        conditions = [
            _parse_template(pick(_CONDITIONS), words, numbers, topic, rng) for _ in range(n_clauses)
        ]
        ask_cond = _parse_template(pick(_ASK_CONDS), words, numbers, topic, rng)
        ask_head = _parse_template(pick(_ASK_HEADS), words, numbers, topic, rng)

    answers = rng.distinct(2, 1000, 4)  # = rng.choice(np.arange(2, 1000), 4, replace=False)
    options = ""
    if question_style == "multiple_choice":
        gold_idx = rng.integers(4)
        options = "\n".join(f"({L}) {int(a)}" for L, a in zip(_MC_LETTERS, answers))
        gold = _MC_LETTERS[gold_idx]
        wrong = tuple(L for i, L in enumerate(_MC_LETTERS) if i != gold_idx)
    else:
        gold = str(int(answers[0]))
        wrong = tuple(str(int(a)) for a in answers[1:])
    return QueryText(opener, conditions, ask_cond, ask_head, options, passage, gold, wrong)


def rewrite_views(
    qt: QueryText, n_views: int, reading: bool, rng: BoundedInts
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
            choices = tuple(rng.integers_each(radices))
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


