"""Task scorers: multiple choice (letter match), math (answer equivalence), reading (DROP F1).

Every scorer reads the model's answer from the LAST ``Final Answer:`` line of the output
(the prompts ask for one). A scorer never raises on malformed output: it returns a
:class:`ScoreResult` with ``parse_success=False`` and score 0.

* ``mcq``: the option letter after ``Final Answer:`` (``B``, ``(B)``, ``**B**``, ``B) text``,
  ``Option B``, ``\\boxed{B}``), or the exact text of one option. Score 1 iff it equals the gold
  letter.
* ``math``: the expression after ``Final Answer:`` (else the last ``\\boxed{...}``), normalised
  (LaTeX fractions and roots, thousands separators, units, ``$``) and compared with the gold
  answer by exact rational arithmetic in sympy (floats within a relative 1e-6).
* ``reading``: DROP F1 (the official ``drop_eval`` bag-of-words alignment with number
  normalisation: ``5``, ``5.0`` and ``5.00`` are the same token; numbers in the gold must be
  matched), max over the gold alternatives.
"""

from __future__ import annotations

import math
import re
import string
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment

SCORER_VERSION = "1"
TASK_TYPES = ("mcq", "math", "reading")

_FINAL_RE = re.compile(r"final\s*answer\s*(?:is)?\s*[:：]?\s*\**\s*[:：]?", re.IGNORECASE)


@dataclass(frozen=True)
class ScoreResult:
    """The outcome of scoring one output.

    Attributes:
        score: quality in [0, 1].
        predicted_answer: the normalised answer read from the output (None when none found).
        parse_success: whether an answer could be read from the output.
        score_type: ``binary`` (mcq, math) or ``f1`` (reading).
    """

    score: float
    predicted_answer: str | None
    parse_success: bool
    score_type: str


def extract_final_answer(text: str | None) -> str | None:
    """The text after the last ``Final Answer:`` marker, up to the end of its line.

    Markdown emphasis around the marker (``**Final Answer:**``) is allowed. Returns None when
    the marker is absent or nothing follows it on the line.
    """
    if not text:
        return None
    matches = list(_FINAL_RE.finditer(text))
    if not matches:
        return None
    tail = text[matches[-1].end():]
    line = tail.split("\n", 1)[0].strip()
    if not line:
        # "Final Answer:\n42": take the next non-empty line.
        for nxt in tail.split("\n")[1:]:
            if nxt.strip():
                line = nxt.strip()
                break
    line = line.strip().strip("*_`").strip()
    return line or None


def _last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` (balanced braces), or None."""
    idx = text.rfind("\\boxed")
    if idx < 0:
        return None
    start = text.find("{", idx)
    if start < 0:
        return None
    depth = 0
    for pos in range(start, len(text)):
        if text[pos] == "{":
            depth += 1
        elif text[pos] == "}":
            depth -= 1
            if depth == 0:
                return text[start + 1:pos]
    return None


# ---------------------------------------------------------------------------------------------
# Multiple choice
# ---------------------------------------------------------------------------------------------

_LETTER_PREFIX_RE = re.compile(
    r"^(?:the\s+)?(?:correct\s+)?(?:answer|option|choice)?\s*(?:is\s*)?[:：]?\s*", re.IGNORECASE
)
_LETTER_RE = re.compile(r"^[\(\[]?([A-Za-z])[\)\]]?(?=$|[\s\.\):,;])")


def _norm_choice_text(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


def parse_mcq(output: str | None, n_choices: int, choices: Sequence[str] | None = None) -> str | None:
    """The option letter of an output, or None when none can be read unambiguously."""
    answer = extract_final_answer(output)
    if answer is None:
        return None
    boxed = _last_boxed(answer)
    if boxed is not None:
        answer = boxed
    answer = answer.replace("$", "").replace("\\text{", "").replace("}", "").strip().strip("*_`").strip()
    letters = string.ascii_uppercase[:n_choices]
    stripped = _LETTER_PREFIX_RE.sub("", answer, count=1).strip().strip("*_`").strip()
    for candidate in (stripped, answer):
        m = _LETTER_RE.match(candidate)
        if m:
            letter = m.group(1)
            rest = candidate[m.end():].strip()
            # A lower-case single letter counts only on its own ("a dog" is not option A).
            if letter.islower() and rest and not candidate.startswith(("(", "[")):
                continue
            letter = letter.upper()
            if letter in letters:
                # "A or B", "A, B": more than one option letter is ambiguous.
                if re.search(r"\b(?:or|and)\s+[\(\[]?[A-Z][\)\]]?\b", rest) or re.match(
                    r"^[,/&]\s*[\(\[]?[A-Z][\)\]]?(?:$|\W)", rest
                ):
                    return None
                return letter
            return None
    if choices:
        target = _norm_choice_text(stripped or answer)
        hits = [letters[i] for i, c in enumerate(choices[:n_choices]) if _norm_choice_text(str(c)) == target]
        if len(hits) == 1:
            return hits[0]
    return None


def score_mcq(output: str | None, gold: str, choices: Sequence[str] | None = None, n_choices: int | None = None) -> ScoreResult:
    """Score a multiple-choice output against the gold letter (``A``...)."""
    n = n_choices if n_choices is not None else (len(choices) if choices else 26)
    letter = parse_mcq(output, n, choices)
    gold_letter = str(gold).strip().upper()
    if letter is None:
        return ScoreResult(0.0, None, False, "binary")
    return ScoreResult(1.0 if letter == gold_letter else 0.0, letter, True, "binary")


# ---------------------------------------------------------------------------------------------
# Math
# ---------------------------------------------------------------------------------------------

_MAX_EXPR_LEN = 200
_ALLOWED_EXPR_RE = re.compile(r"^[0-9a-zA-Z\s\.\+\-\*/\(\)_]+$")
_ALLOWED_NAMES = {"sqrt", "pi", "E", "I", "oo"}


def _strip_latex_wrappers(s: str) -> str:
    s = s.strip()
    for a, b in (("\\(", "\\)"), ("\\[", "\\]")):
        if s.startswith(a) and s.endswith(b):
            s = s[len(a):-len(b)]
    boxed = _last_boxed(s)
    if boxed is not None:
        s = boxed
    s = s.replace("$", "")
    s = re.sub(r"\\text\{([^{}]*)\}", r"\1", s)
    s = re.sub(r"\\mathrm\{([^{}]*)\}", r"\1", s)
    s = s.replace("\\!", "").replace("\\,", "").replace("\\;", "").replace("\\ ", " ")
    s = s.replace("\\left", "").replace("\\right", "")
    return s.strip()


def _latex_to_plain(s: str) -> str:
    s = re.sub(r"\\[dt]?frac\s*\{([^{}]*)\}\s*\{([^{}]*)\}", r"((\1)/(\2))", s)
    s = re.sub(r"\\[dt]?frac\s*(\d)(\d)", r"((\1)/(\2))", s)
    s = re.sub(r"\\sqrt\s*\{([^{}]*)\}", r"sqrt(\1)", s)
    s = re.sub(r"\\sqrt\s*(\d+)", r"sqrt(\1)", s)
    s = s.replace("\\cdot", "*").replace("\\times", "*").replace("\\div", "/").replace("×", "*").replace("÷", "/")
    s = s.replace("\\pi", "pi").replace("π", "pi").replace("−", "-")
    s = s.replace("^", "**").replace("{", "(").replace("}", ")")
    return s


def normalise_math_answer(answer: str | None) -> str | None:
    """A plain-text form of a math answer, or None when it is empty.

    Strips ``$``, ``\\boxed``, ``\\text``, a leading ``x =`` or ``answer is``, a trailing period,
    thousands separators (``1,234``), a trailing ``%`` and trailing unit words (``12 apples``).
    """
    if answer is None:
        return None
    s = _strip_latex_wrappers(str(answer))
    s = s.strip().rstrip(".").strip()
    s = re.sub(r"^(?:the\s+)?(?:final\s+)?(?:answer\s+is|answer\s*[:=]|result\s*[:=])\s*", "", s, flags=re.I)
    if "=" in s:
        # "x = 5", "14 * 6 - 9 = 75": the value is the right-hand side of the last "=".
        s = s.rsplit("=", 1)[1].strip()
    s = re.sub(r"(?<=\d),(?=\d{3}(?:\D|$))", "", s)  # thousands separators
    s = s.replace("\\%", "%").rstrip("%").strip()
    s = s.rstrip(".").strip()
    # Trailing unit words after a number: "12 apples", "3.5 cm", "7 dollars".
    m = re.match(r"^([-+]?[\d\.]+(?:\s*/\s*[\d\.]+)?)\s+[a-zA-Z][a-zA-Z\s\.]*$", s)
    if m:
        s = m.group(1)
    s = s.strip()
    return s or None


_POW_EXP_RE = re.compile(r"\s*\(?\s*[-+]?(?:(\d+)(?:\.\d*)?|[a-zA-Z])\s*(?:/\s*\d+\s*)?\)?")


def _powers_are_safe(plain: str) -> bool:
    """Only small literal exponents (``x**2``, ``2**(1/2)``), never towers (``9**9**9``).

    sympy evaluates integer powers exactly, so ``2**(10**9)`` would never return.
    """
    if plain.count("**") > 3:
        return False
    for m in re.finditer(r"\*\*", plain):
        em = _POW_EXP_RE.match(plain, m.end())
        if em is None or em.end() == m.end():
            return False
        if em.group(1) is not None and int(em.group(1)) > 1000:
            return False
        if plain[em.end():].lstrip().startswith("**"):
            return False
    return True


def _to_sympy(s: str) -> Any:
    """Parse a normalised answer into a sympy expression, or None (never evaluates arbitrary code)."""
    plain = _latex_to_plain(s).strip()
    # Scientific notation: 1e3, 2.5E-4 (before the name check, which would see "e3").
    plain = re.sub(r"(?<![A-Za-z_\d.])(\d+(?:\.\d*)?)[eE]([+-]?\d+)(?![\w.])", r"(\1*10**(\2))", plain)
    if not plain or len(plain) > _MAX_EXPR_LEN or "\\" in plain or not _ALLOWED_EXPR_RE.match(plain):
        return None
    names = set(re.findall(r"[A-Za-z_][A-Za-z_0-9]*", plain))
    if any(len(n) > 1 and n not in _ALLOWED_NAMES for n in names):
        return None
    if not _powers_are_safe(plain):
        return None
    # Heavy module imported where needed (tests/test_layering.py, LAZY_HEAVY): only math answers
    # use sympy, and darsbench's config validation imports this module's task list.
    import sympy
    from sympy.parsing.sympy_parser import (
        convert_xor,
        implicit_multiplication_application,
        parse_expr,
        standard_transformations,
    )

    local = {n: sympy.Symbol(n) for n in names if len(n) == 1 and n not in ("E", "I")}
    local.update({"sqrt": sympy.sqrt, "pi": sympy.pi, "E": sympy.E, "I": sympy.I, "oo": sympy.oo})
    try:
        expr = parse_expr(
            plain,
            local_dict=local,
            transformations=standard_transformations + (implicit_multiplication_application, convert_xor),
            evaluate=True,
        )
    except Exception:  # noqa: BLE001 - any parse failure means "not an expression"
        return None
    return expr


def _split_top_level(s: str) -> list[str]:
    parts, depth, cur = [], 0, []
    for ch in s:
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return [p.strip() for p in parts]


def math_equivalent(predicted: str | None, gold: str | None) -> bool:
    """Whether two math answers are equal (after normalisation; sympy arithmetic)."""
    p = normalise_math_answer(predicted)
    g = normalise_math_answer(gold)
    if p is None or g is None:
        return False
    if p == g or p.replace(" ", "") == g.replace(" ", ""):
        return True
    p_parts, g_parts = _split_top_level(p), _split_top_level(g)
    if len(p_parts) != len(g_parts):
        return False
    if len(g_parts) > 1:
        return all(math_equivalent(a, b) for a, b in zip(p_parts, g_parts))
    return _expr_equal(p, g)


def _expr_equal(p: str, g: str) -> bool:
    pe, ge = _to_sympy(p), _to_sympy(g)
    if pe is None or ge is None:
        return False
    import sympy  # loaded by _to_sympy already (LAZY_HEAVY, tests/test_layering.py)

    try:
        if pe.has(sympy.Float) or ge.has(sympy.Float):
            if pe.free_symbols or ge.free_symbols:
                return bool(sympy.simplify(pe - ge) == 0)
            a, b = complex(sympy.N(pe)), complex(sympy.N(ge))
            if not all(map(math.isfinite, (a.real, a.imag, b.real, b.imag))):
                return False
            return abs(a - b) <= 1e-6 * max(1.0, abs(b))
        diff = sympy.simplify(pe - ge)
        return bool(diff == 0)
    except Exception:  # noqa: BLE001 - an expression sympy cannot compare is "not equal"
        return False


def score_math(output: str | None, gold: str) -> ScoreResult:
    """Score a math output: the ``Final Answer:`` line (else the last ``\\boxed``) vs the gold."""
    answer = extract_final_answer(output)
    if answer is None and output:
        answer = _last_boxed(output)
    predicted = normalise_math_answer(answer)
    if predicted is None:
        return ScoreResult(0.0, None, False, "binary")
    return ScoreResult(1.0 if math_equivalent(predicted, str(gold)) else 0.0, predicted, True, "binary")


# ---------------------------------------------------------------------------------------------
# Reading comprehension: DROP F1 (port of the official allennlp drop_eval)
# ---------------------------------------------------------------------------------------------

_EXCLUDE = set(string.punctuation)


def _is_number(text: str) -> bool:
    try:
        value = float(text)
    except ValueError:
        return False
    return math.isfinite(value)


def _drop_normalize(text: str) -> str:
    def remove_articles(t: str) -> str:
        return re.sub(r"\b(a|an|the)\b", " ", t, flags=re.UNICODE)

    def remove_punc(t: str) -> str:
        return t if _is_number(t) else "".join(ch for ch in t if ch not in _EXCLUDE)

    def fix_number(t: str) -> str:
        return str(float(t)) if _is_number(t) else t

    parts = [
        " ".join(remove_articles(fix_number(remove_punc(tok.lower()))).split())
        for tok in re.split(" |-", text)
    ]
    return " ".join(p for p in parts if p.strip()).strip()


def _answer_to_bags(answer: str | Sequence[str]) -> tuple[list[str], list[set[str]]]:
    spans = list(answer) if isinstance(answer, (list, tuple)) else [answer]
    normalized = [_drop_normalize(str(s)) for s in spans]
    return normalized, [set(n.split()) for n in normalized]


def _bag_f1(predicted: set[str], gold: set[str]) -> float:
    inter = len(gold & predicted)
    precision = inter / len(predicted) if predicted else 1.0
    recall = inter / len(gold) if gold else 1.0
    if precision == 0.0 and recall == 0.0:
        return 0.0
    return 2 * precision * recall / (precision + recall)


def _numbers_match(gold: set[str], predicted: set[str]) -> bool:
    gold_numbers = {w for w in gold if _is_number(w)}
    predicted_numbers = {w for w in predicted if _is_number(w)}
    return (not gold_numbers) or bool(gold_numbers & predicted_numbers)


def drop_f1(predicted: str | Sequence[str], gold: str | Sequence[str]) -> float:
    """DROP F1 of one prediction against one gold answer (a span or a list of spans).

    Spans are aligned one-to-one (Hungarian assignment) and the per-gold-span F1 averaged; a
    pairing whose gold span holds numbers none of which the prediction has scores 0. Rounded
    to 2 decimals, as the official script does.
    """
    _, pred_bags = _answer_to_bags(predicted)
    _, gold_bags = _answer_to_bags(gold)
    scores = np.zeros((len(gold_bags), len(pred_bags)))
    for gi, gb in enumerate(gold_bags):
        for pi, pb in enumerate(pred_bags):
            if _numbers_match(gb, pb):
                scores[gi, pi] = _bag_f1(pb, gb)
    rows, cols = linear_sum_assignment(-scores)
    best = np.zeros(max(len(gold_bags), len(pred_bags)))
    for r, c in zip(rows, cols):
        best[r] = max(best[r], scores[r, c])
    return round(float(np.mean(best)), 2)


def drop_exact_match(predicted: str | Sequence[str], gold: str | Sequence[str]) -> float:
    """DROP exact match: the normalised span sets are equal."""
    p, _ = _answer_to_bags(predicted)
    g, _ = _answer_to_bags(gold)
    return 1.0 if set(p) == set(g) and len(p) == len(g) else 0.0


def _gold_alternatives(gold: Any) -> list[str | list[str]]:
    """Gold for reading: a string, or a list of alternatives (each a string or a list of spans)."""
    if isinstance(gold, str):
        return [gold]
    if isinstance(gold, (list, tuple)) and gold:
        return [g if isinstance(g, str) else [str(s) for s in g] for g in gold]
    return [str(gold)]


def score_reading(output: str | None, gold: Any) -> ScoreResult:
    """DROP F1 of the ``Final Answer:`` line (spans separated by ``|`` or ``;``), max over golds."""
    answer = extract_final_answer(output)
    if answer is None:
        return ScoreResult(0.0, None, False, "f1")
    spans = [s.strip() for s in re.split(r"\s*[|;]\s*", answer) if s.strip()]
    if not spans:
        return ScoreResult(0.0, None, False, "f1")
    predicted: str | list[str] = spans[0] if len(spans) == 1 else spans
    best = max(drop_f1(predicted, g) for g in _gold_alternatives(gold))
    return ScoreResult(float(best), " | ".join(spans), True, "f1")


# ---------------------------------------------------------------------------------------------


def score_output(task: str, output: str | None, gold: Any, choices: Sequence[str] | None = None) -> ScoreResult:
    """Dispatch on the task type (``mcq``, ``math``, ``reading``)."""
    if task == "mcq":
        return score_mcq(output, str(gold), choices)
    if task == "math":
        return score_math(output, str(gold))
    if task == "reading":
        return score_reading(output, gold)
    raise ValueError(f"unknown task type {task!r}; expected one of {TASK_TYPES}")


SCORERS: dict[str, Callable[..., ScoreResult]] = {"mcq": score_mcq, "math": score_math, "reading": score_reading}
