"""The paper's rule-based grader (Tab. 8 "Reward", App. D.1 "Rule-based reward grader"), bounded in time.

App. D.1: "``extract_boxed_content`` first pulls the content inside the last \\boxed{...} span of the response;
``grade_answer`` then compares that content to the gold short answer, treating LaTeX/numerical equivalences
(e.g. 1/2 vs. 0.5, \\frac{1}{2} vs. 0.5) as matches. If this strict comparison fails but the response did contain a
boxed span, both sides are stripped of degree (∘, \\circ, \\deg) and percent (%, \\%) annotations and re-graded
once; the reward is 1 iff either pass succeeds and 0 otherwise." Both functions are ``mathruler.grader``'s (the
``mathruler`` package, a dependency), called as they are.

On top of that, where the paper is silent (*ours*, each a ``mode`` or an argument of ``grade``):

- ``mode="choice"`` (multiple choice): a boxed choice letter is read from its usual decorations (``B``, ``(B)``,
  ``B.``, ``\\text{B}``, ``B. dog``, ``(B) dog``) and compared with the gold letter; a box that names no single
  letter is left to ``grade_answer`` (which then almost always says wrong);
- ``tolerance`` (Vero's numeric rows): when both sides read as exact numbers (decimals, ``a/b``, ``\\frac{a}{b}``,
  ``1.5e3``, ``1.5\\times10^{3}``; after the degree/percent strip), ``|pred - gold| <= tolerance * |gold|``
  (absolute when gold is 0);
- ``mode="number_list"``: the box and the gold are split into items (one pair of outer brackets dropped, items
  separated by commas or semicolons) and graded item by item, in order, same length;
- a gold given as several items (a list) is correct when any item is (list_string_match, numpy arrays).

Cost and bounds. ``grade`` runs in a worker process under a deadline (``sandbox.py``); ``quick_grade`` runs in the
caller and decides only what it can decide with string operations and exact arithmetic, with the SAME verdict as
``grade`` (tests compare them): equal after mathruler's own first normalisation (``normalize_answer``, grade_answer's
first step), choice letters, and plain decimal numbers. A boxed answer longer than ``MAX_BOX_CHARS`` is not graded
(score 0; no gold answer of ZPPO-77K is longer than 512 characters).
"""

from __future__ import annotations

import re
from fractions import Fraction

from mathruler.grader import extract_boxed_content, grade_answer
from mathruler.math_normalize import normalize_answer

MAX_BOX_CHARS = 2_000  # *ours*: longer boxed answers score 0 without grading
MAX_ITEMS = 100  # *ours*: number lists longer than this are not split
MAX_DIGITS = 1_000  # *ours*: exact numbers with more digits (or a larger exponent) are not read as numbers

BOX_OPEN = "\\boxed{"
MODES = ("plain", "choice", "number_list")


# ------------------------------------------------------------------------------------------------ the boxed answer
_NONE_BOX = re.compile(r"\s*None\s*\}")


def boxed_answer(response: str) -> str | None:
    """mathruler's ``extract_boxed_content`` (the LAST ``\\boxed{``, braces balanced), or None when the response has no
    box or its last box never closes (mathruler then returns the string "None"; a real ``\\boxed{None}`` stays)."""
    at = response.rfind(BOX_OPEN)
    if at < 0:
        return None
    content = extract_boxed_content(response)
    if content == "None" and not _NONE_BOX.match(response, at + len(BOX_OPEN)):
        return None
    return content


# ------------------------------------------------------------------------------------------------ App. D.1's strip
# Degree and percent annotations (App. D.1: "∘, \circ, \deg" and "%, \%"), with the superscript that carries a degree
# sign; longest forms first so that "^{\circ}" does not leave "^{}" behind. Every alternative is a literal or a
# literal with \s* between literals: no backtracking blow-up.
_MARKS = re.compile(r"\^\s*\{\s*\\circ\s*\}|\^\s*\\circ|\^\s*\{\s*°\s*\}|\^\s*°|\\circ|\\degree|\\deg|°|∘|\\%|%")


def strip_marks(text: str) -> str:
    """``text`` without degree and percent marks (App. D.1's second pass)."""
    return _MARKS.sub("", text).strip()


# ------------------------------------------------------------------------------------------------ choice letters
_WRAPPERS = ("\\text{", "\\textbf{", "\\mathrm{", "\\mathbf{", "\\textrm{", "\\mbox{")
_LONE_MARK = re.compile(r"([A-Za-z])\s*[):：]")  # "B)", "b:"
_LEAD_PAREN = re.compile(r"\(\s*([A-Z])\s*\)\s*\S")  # "(B) dog"
_LEAD_MARK = re.compile(r"([A-Z])\s*[.):：]\s*\S")  # "B. dog", "B) dog", "B: dog"


def choice_letter(text: str) -> str | None:
    """The one option letter a short answer names (*ours*), upper case, or None.

    ``B``, ``b``, ``(B)``, ``[B]``, ``B.``, ``B)``, ``\\text{(B)}``, ``$B$``, and a letter leading its option text
    (``B. dog``, ``(B) dog``, ``B) dog``; capital letters only there, so "a cat" is not option A)."""
    s = text.strip()
    if len(s) > 200:
        return None
    for _ in range(4):  # peel wrappers: \text{(B)}, $B$, (B), [B], {B}
        before = s
        for wrapper in _WRAPPERS:
            if s.startswith(wrapper) and s.endswith("}"):
                s = s[len(wrapper) : -1].strip()
        if len(s) >= 2 and s[0] + s[-1] in ("()", "[]", "{}", "$$"):
            s = s[1:-1].strip()
        s = s.rstrip(".").strip()
        if s == before:
            break
    if len(s) == 1 and s.isascii() and s.isalpha():
        return s.upper()
    lone = _LONE_MARK.fullmatch(s)
    if lone:
        return lone.group(1).upper()
    match = _LEAD_PAREN.match(s) or _LEAD_MARK.match(s)
    return match.group(1) if match else None


# ------------------------------------------------------------------------------------------------ exact numbers
_SCI_TAIL = re.compile(r"^(.*?)\s*(?:\\times|\\cdot|\*|×)\s*10\s*\^\s*\{?\s*([+-]?\d{1,4})\s*\}?$")
_FRAC = re.compile(r"^([+-]?)\s*\\[dt]?frac\s*\{\s*([^{}]+?)\s*\}\s*\{\s*([^{}]+?)\s*\}$")
_PLAIN_DECIMAL = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)")
_THOUSANDS = re.compile(r"(?<=\d)(?:,|\{,\}|\\,)(?=\d{3}(?!\d))")


def _literal(text: str) -> Fraction | None:
    """A decimal literal with an optional exponent, or a/b of two such, as an exact fraction."""
    text = text.strip()
    if not text or len(text) > MAX_DIGITS or text.count("/") > 1:
        return None
    parts = text.split("/")
    values = []
    for part in parts:
        part = part.strip()
        mantissa, _, exponent = part.lower().partition("e")
        if not _PLAIN_DECIMAL.fullmatch(mantissa) or (exponent and not re.fullmatch(r"[+-]?\d{1,4}", exponent)):
            return None
        if exponent and abs(int(exponent)) > MAX_DIGITS:
            return None
        values.append(Fraction(part))
    if len(values) == 2:
        return values[0] / values[1] if values[1] else None
    return values[0]


def exact_number(text: str) -> Fraction | None:
    """``text`` as an exact number (*ours*, for tolerances and number lists), or None if it is anything else.

    Reads ``-12``, ``1,234.5``, ``.5``, ``3/4``, ``\\frac{3}{4}``, ``1.5e3``, ``1.5 \\times 10^{3}``, with ``$`` and
    spaces ignored; the caller strips degree and percent marks first. At most ``MAX_DIGITS`` digits and a decimal
    exponent of at most ``MAX_DIGITS``, so nothing here computes a huge number."""
    s = text.strip().strip("$").strip().replace("\\!", "").replace("−", "-")
    if not s or len(s) > MAX_DIGITS:
        return None
    s = _THOUSANDS.sub("", s)
    power = 0
    sci = _SCI_TAIL.match(s)
    if sci:
        s, power = sci.group(1).strip(), int(sci.group(2))
    frac = _FRAC.match(s)
    if frac:
        sign, num, den = frac.groups()
        a, b = _literal(num), _literal(den)
        value = None if a is None or not b else (-1 if sign == "-" else 1) * a / b
    else:
        value = _literal(s)
    if value is None:
        return None
    return value * Fraction(10) ** power if power else value


def _within(pred: Fraction, gold: Fraction, tolerance: float | None) -> bool:
    if tolerance is None:
        return pred == gold
    tol = Fraction(tolerance)
    return abs(pred - gold) <= (tol * abs(gold) if gold else tol)


def _plain_number(text: str) -> Fraction | None:
    """A bare decimal of at most 15 significant digits (the only numbers ``quick_grade`` decides on)."""
    s = text.strip()
    if not _PLAIN_DECIMAL.fullmatch(s) or sum(c.isdigit() for c in s.lstrip("+-0.")) > 15:
        return None
    return Fraction(s)


# ------------------------------------------------------------------------------------------------ number lists
_OPEN, _CLOSE = "([{", ")]}"


def split_items(text: str) -> list[str] | None:
    """The items of a list answer (*ours*): one pair of outer brackets dropped (``[..]``, ``(..)``, ``\\{..\\}``,
    ``\\left(..\\right)``), split at top-level commas and semicolons; None when it is not a list of 1..MAX_ITEMS."""
    s = text.strip().replace("\\left", "").replace("\\right", "").replace("\\{", "{").replace("\\}", "}")
    if len(s) >= 2 and s[0] in _OPEN and s[-1] == _CLOSE[_OPEN.index(s[0])]:
        s = s[1:-1]
    items, depth, start = [], 0, 0
    for i, ch in enumerate(s):
        if ch in _OPEN:
            depth += 1
        elif ch in _CLOSE:
            depth -= 1
        elif ch in ",;" and depth == 0:
            items.append(s[start:i].strip())
            start = i + 1
            if len(items) > MAX_ITEMS:
                return None
    items.append(s[start:].strip())
    if not all(items) or len(items) > MAX_ITEMS:
        return None
    return items


# ------------------------------------------------------------------------------------------------ grading
def _one(given: str, gold: str, tolerance: float | None) -> tuple[bool, str]:
    """App. D.1 for one gold item: grade_answer, then the degree/percent strip and grade_answer once more; then the
    tolerance (*ours*)."""
    if grade_answer(given, gold):
        return True, "grade_answer"
    given_s, gold_s = strip_marks(given), strip_marks(gold)
    # the second pass only when the strip changed something: grade_answer of the same strings says the same
    if (given_s, gold_s) != (given, gold) and grade_answer(given_s, gold_s):
        return True, "grade_answer_stripped"
    if tolerance is not None:
        pred, ref = exact_number(given_s), exact_number(gold_s)
        if pred is not None and ref is not None and _within(pred, ref, tolerance):
            return True, "tolerance"
    return False, "grade_answer"


def grade(given: str, golds: list[str], mode: str = "plain", tolerance: float | None = None) -> tuple[bool, str]:
    """Is the boxed answer ``given`` right for any of ``golds``? Returns (correct, how).

    ``mode``: "plain" (App. D.1 as it is), "choice" (letters first), "number_list" (item by item after the whole);
    ``tolerance``: relative tolerance for numbers (None: exact). Unbounded in time: call it through
    ``sandbox`` (``recipe.zppo.reward.grade_bounded``)."""
    if mode == "choice":
        letter = choice_letter(given)
        for gold in golds:
            gold_letter = choice_letter(gold)
            if letter is not None and gold_letter is not None:
                if letter == gold_letter:
                    return True, "choice_letter"
            elif _one(given, gold, None)[0]:
                return True, "grade_answer"
        return False, "choice_letter" if letter is not None else "grade_answer"
    for gold in golds:
        correct, how = _one(given, gold, tolerance)
        if correct:
            return True, how
    if mode == "number_list":
        items = split_items(strip_marks(given))
        for gold in golds:
            gold_items = split_items(strip_marks(gold))
            if items and gold_items and len(items) == len(gold_items) and all(
                    _one(a, b, tolerance)[0] for a, b in zip(items, gold_items)):
                return True, "number_list"
    return False, "grade_answer"


def quick_grade(given: str, golds: list[str], mode: str = "plain",
                tolerance: float | None = None) -> tuple[bool, str] | None:
    """The verdict ``grade`` would give, when string operations and exact arithmetic decide it; else None.

    - mathruler's ``normalize_answer`` makes both sides equal: ``grade_answer``'s own first test, so correct;
    - choice mode, both sides name one letter: the letters decide (``grade`` does the same);
    - every side a bare decimal (<= 15 significant digits): exact comparison (with the tolerance), which is what
      ``grade_answer`` concludes for two such numbers (string forms, then sympy's difference of two floats)."""
    if mode == "choice":
        letter = choice_letter(given)
        gold_letters = [choice_letter(gold) for gold in golds]
        if letter is not None and all(g is not None for g in gold_letters):
            return (True, "choice_letter") if letter in gold_letters else (False, "choice_letter")
        if letter is not None and letter in gold_letters:
            return True, "choice_letter"
    normalized = normalize_answer(given)
    for gold in golds:
        if normalize_answer(gold) == normalized:
            return True, "grade_answer"
    if mode == "choice":
        return None
    pred = _plain_number(given)
    refs = [_plain_number(gold) for gold in golds]
    if pred is None or any(r is None for r in refs):
        return None
    for ref in refs:  # in gold order, as ``grade``
        if pred == ref:
            return True, "grade_answer"
        if _within(pred, ref, tolerance):
            return True, "tolerance"
    return False, "grade_answer"
