"""Text and number normalisation shared by the verifiers (pure Python, no sympy: fast path).

``parse_number`` reads one number written in the many ways models and data sets write it:
``1,234.5``, ``1{,}234``, ``1\\,234``, ``-3`` with a unicode minus, ``3/4``, ``\\frac{3}{4}``, ``1\\frac{1}{2}``,
``1 1/2``, ``½``, ``1.2e-3``, ``1.2 \\times 10^{-3}``, ``1.2×10⁻³``, ``50%``, ``$5``, ``5 cm``, ``5^\\circ``,
``x = 5``, ``approximately 5``, ``five``. It returns None for anything else (expressions such as ``2\\sqrt{3}``
are left to math-verify).
"""

from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import dataclass

MAX_NUMBER_CHARS = 200  # longer strings are not parsed as one number

# ---------------------------------------------------------------------------------------------------------
# LaTeX and unicode clean-up
# ---------------------------------------------------------------------------------------------------------
_WRAPPER_RE = re.compile(
    r"\\(?:text|textbf|textit|textrm|textsf|texttt|textnormal|mathrm|mathbf|mathit|mathsf|mathtt|mathbb|"
    r"mathcal|mbox|hbox|operatorname|emph|boldsymbol|bm|underline|overline)\s*\{([^{}]*)\}"
)
_BOXED_RE = re.compile(r"^\\(?:boxed|fbox)\s*\{(.*)\}$", re.DOTALL)
_SPACING_RE = re.compile(r"\\(?:[,;:! ]|quad|qquad|displaystyle|textstyle|left|right|big|Big|bigg|Bigg)(?![a-zA-Z])")
_DASHES = {
    "\u2212": "-",  # minus sign
    "\u2012": "-",
    "\u2013": "-",
    "\u2014": "-",
    "\u2010": "-",
    "\u2011": "-",
    "\ufe63": "-",
    "\uff0d": "-",
    "\u2044": "/",  # fraction slash
    "\u2215": "/",
    "\u00d7": "\\times ",
    "\u22c5": "\\cdot ",
    "\u00b7": "\\cdot ",
    "\u2248": "\\approx ",
    "\u2018": "'",
    "\u2019": "'",
    "\u201c": '"',
    "\u201d": '"',
    "\u00a0": " ",
    "\u2009": " ",
    "\u202f": " ",
    "\u2026": "...",
}
_DASH_TABLE = str.maketrans(_DASHES)
_SUPERSCRIPT_RE = re.compile("[\u2070\u00b9\u00b2\u00b3\u2074-\u2079\u207b\u207a]+")
_SUPERSCRIPT_TABLE = str.maketrans(
    "\u2070\u00b9\u00b2\u00b3\u2074\u2075\u2076\u2077\u2078\u2079\u207b\u207a", "0123456789-+"
)
_VULGAR = {}
for _ch in (
    "\u00bc\u00bd\u00be\u2150\u2151\u2152\u2153\u2154\u2155"
    "\u2156\u2157\u2158\u2159\u215a\u215b\u215c\u215d\u215e"
):
    _VULGAR[_ch] = " " + unicodedata.normalize("NFKC", _ch).replace("\u2044", "/")
_VULGAR_TABLE = str.maketrans(_VULGAR)


def clean_unicode(s: str) -> str:
    """Superscripts to ``^{..}``, vulgar fractions to `` a/b``, NFKC, dashes/minus to ``-``, odd spaces to space."""
    if any(ord(c) > 127 for c in s):
        s = _SUPERSCRIPT_RE.sub(lambda m: "^{" + m.group(0).translate(_SUPERSCRIPT_TABLE) + "}", s)
        s = s.translate(_VULGAR_TABLE)
        s = unicodedata.normalize("NFKC", s)
        s = s.translate(_DASH_TABLE)
    return s


def strip_latex(s: str) -> str:
    """Remove math delimiters, spacing commands and text wrappers: ``$\\text{(B)}$`` -> ``(B)``."""
    s = s.strip()
    m = _BOXED_RE.match(s)
    if m:
        s = m.group(1).strip()
    for _ in range(4):
        new = _WRAPPER_RE.sub(r"\1", s)
        if new == s:
            break
        s = new
    s = s.replace("\\%", "%").replace("\\$", "$").replace("\\{", "{").replace("\\}", "}")
    s = _SPACING_RE.sub(" ", s)
    s = s.replace("~", " ")
    for opener, closer in (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]")):
        if s.startswith(opener) and s.endswith(closer) and len(s) >= len(opener) + len(closer):
            s = s[len(opener) : len(s) - len(closer)].strip()
    return s.strip()


# ---------------------------------------------------------------------------------------------------------
# Text normalisation for string matching
# ---------------------------------------------------------------------------------------------------------
_THOUSANDS_RE = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")
_TRAILING_ZERO_RE = re.compile(r"\b(\d+)\.0+\b(?!\.)")
_SYMBOL_WORDS = [
    (re.compile(r"(?:^|(?<=[\s(\[{=]))-(?=\s*\d)"), " minus "),  # a leading minus sign is meaningful
    (re.compile(r"(?<=\d)\s*/\s*(?=\d)"), " over "),
    (re.compile(r"\+"), " plus "),
    (re.compile(r"%"), " percent "),
    (re.compile(r"<="), " le "),
    (re.compile(r">="), " ge "),
    (re.compile(r"<"), " lt "),
    (re.compile(r">"), " gt "),
    (re.compile(r"="), " eq "),
]
_NON_ALNUM_RE = re.compile(r"[\W_]+")
_ARTICLES = {"a", "an", "the"}


def _strip_accents(s: str) -> str:
    if all(ord(c) < 128 for c in s):
        return s
    return "".join(c for c in unicodedata.normalize("NFD", s) if unicodedata.category(c) != "Mn")


def normalize_text(value) -> str:
    """Case, whitespace, LaTeX wrappers, accents and punctuation normalised; articles dropped.

    Symbols that change meaning are spelled out before punctuation is dropped: a leading minus, ``/``
    between digits, ``+``, ``%``, comparison signs (so "-3" != "3" and "C++" != "C").
    """
    s = strip_latex(clean_unicode(str(value)))
    s = _strip_accents(s)
    s = _THOUSANDS_RE.sub("", s)
    s = _TRAILING_ZERO_RE.sub(r"\1", s)
    s = s.lower()
    for pattern, word in _SYMBOL_WORDS:
        s = pattern.sub(word, s)
    s = _NON_ALNUM_RE.sub(" ", s).strip()
    tokens = s.split()
    kept = [t for t in tokens if t not in _ARTICLES]
    if kept and any(len(t) > 1 for t in kept):
        tokens = kept
    return " ".join(tokens)


# ---------------------------------------------------------------------------------------------------------
# Numbers
# ---------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Num:
    """A parsed number: value, how it was written (int | decimal | fraction | sci), decimals, percent sign."""

    value: float
    kind: str
    decimals: int = 0
    percent: bool = False
    unit: str = ""  # the words after the number ("cm", "apples"), lower-cased; "" when none


_WORD_NUMBERS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14,
    "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19, "twenty": 20,
    "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90,
    "hundred": 100, "a hundred": 100, "one hundred": 100, "thousand": 1000, "a thousand": 1000,
    "one thousand": 1000, "a dozen": 12, "dozen": 12,
}
_TENS = {"twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"}

_PREFIX_RE = re.compile(
    r"^(?:(?:approximately|approx\.?|about|around|roughly|nearly|almost|circa|ca\.|~|\\approx|\\sim|"
    r"≈|=|\+|\$|€|£|¥|₹|usd|us\$|eur|rs\.?|inr)\s*)+",
    re.IGNORECASE,
)
_LIT = r"(?:\d+(?:\.\d*)?|\.\d+)"
_LIT_RE = re.compile(r"([+-]?)\s*(" + _LIT + r")(?:[eE]([+-]?\d{1,4}))?")
_FRAC_RE = re.compile(r"\\[dtc]?frac\s*(?:\{([^{}]*)\}|(\d))\s*(?:\{([^{}]*)\}|(\d))")
_SCI_TAIL_RE = re.compile(
    r"^\s*(?:\\times|\\cdot|\*|x|X)\s*10\s*(?:\^|\*\*)\s*(?:\{\s*([+-]?\d{1,4})\s*\}|([+-]?\d{1,4}))"
)
_POW10_RE = re.compile(r"^10\s*(?:\^|\*\*)\s*(?:\{\s*([+-]?\d{1,4})\s*\}|([+-]?\d{1,4}))$")
_DEGREE_RE = re.compile(r"\^\s*\{?\s*\\circ\s*\}?|\\circ|\\degree|°|º")
_PERCENT_RE = re.compile(r"%|\bper\s*cent\b|\bpercent(?:age)?\b|\bpct\b", re.IGNORECASE)
_UNIT_EXP_RE = re.compile(r"\^\s*\{?\s*-?\d\s*\}?")
_UNIT_RE = re.compile(r"^[\sA-Za-zµμΩ℃℉'\"/.\-()\u00c0-\u024f]*$")
_MIXED_RE = re.compile(r"^(\d+)\s+(\d+)\s*/\s*(\d+)$")
_SPACE_THOUSANDS_RE = re.compile(r"(?<=\d)(?:\{,\}|\s|')(?=\d{3}(?!\d))")


def _to_float(text: str) -> float | None:
    try:
        value = float(text)
    except (ValueError, OverflowError):
        return None
    return value if math.isfinite(value) else None


def _word_number(s: str) -> int | None:
    s = s.strip().lower().rstrip(".")
    if s in _WORD_NUMBERS:
        return _WORD_NUMBERS[s]
    parts = re.split(r"[\s-]+", s)
    if len(parts) == 2 and parts[0] in _TENS and parts[1] in _WORD_NUMBERS and _WORD_NUMBERS[parts[1]] < 10:
        return _WORD_NUMBERS[parts[0]] + _WORD_NUMBERS[parts[1]]
    return None


def _literal(s: str) -> tuple[Num, str] | None:
    """Parse a number literal at the start of ``s``; return it and the rest of the string."""
    s = s.lstrip()
    frac_mixed = re.match(r"^([+-]?)\s*(\d+)?\s*" + _FRAC_RE.pattern, s)
    if frac_mixed:
        sign, whole, a1, a2, b1, b2 = frac_mixed.groups()
        num = parse_number(a1 if a1 is not None else a2, _depth=1)
        den = parse_number(b1 if b1 is not None else b2, _depth=1)
        if num is None or den is None or den.value == 0:
            return None
        value = num.value / den.value
        if whole is not None:
            value = int(whole) + value
        if sign == "-":
            value = -value
        return Num(value, "fraction"), s[frac_mixed.end() :]
    m = _LIT_RE.match(s)
    if not m:
        return None
    sign, lit, exp = m.groups()
    text = lit + (("e" + exp) if exp else "")
    value = _to_float(text)
    if value is None:
        return None
    if sign == "-":
        value = -value
    rest = s[m.end() :]
    kind = "sci" if exp else ("decimal" if "." in lit else "int")
    decimals = len(lit.split(".", 1)[1]) if "." in lit else 0
    sci = _SCI_TAIL_RE.match(rest)
    if sci:
        power = int(sci.group(1) or sci.group(2))
        value = _to_float(f"{sign}{lit}e{power}") if not exp else value * 10.0**power
        if value is None or not math.isfinite(value):
            return None
        kind, rest = "sci", rest[sci.end() :]
    else:
        frac = re.match(r"^\s*/\s*(\d+(?:\.\d+)?)(?!\s*[\d.])", rest)
        if frac and not exp:
            den = _to_float(frac.group(1))
            if not den:
                return None
            value, kind, decimals, rest = value / den, "fraction", 0, rest[frac.end() :]
    return Num(value, kind, decimals), rest


def parse_number(value, _depth: int = 0, word_units: bool = True) -> Num | None:
    """One number from ``value`` (str, int, float) or None; see the module docstring for the forms read.

    ``word_units=False`` refuses a number word followed by other words ("three apples", "Seven Up").
    """
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        f = _to_float(repr(value)) if isinstance(value, float) else _to_float(str(value))
        if f is None:
            return None
        return Num(f, "int" if isinstance(value, int) or f.is_integer() else "decimal")
    s = str(value)
    if not s or len(s) > MAX_NUMBER_CHARS or _depth > 2:
        return None
    s = strip_latex(clean_unicode(s))
    s = _SPACE_THOUSANDS_RE.sub("", s)
    if "=" in s:
        s = s.rsplit("=", 1)[1]
    s = _PREFIX_RE.sub("", s.strip()).strip()
    if len(s) > 2 and s[0] + s[-1] in ("()", "[]", "{}") and s.count(s[0]) == 1 and s.count(s[-1]) == 1:
        s = s[1:-1].strip()  # "(3)" -> "3"
    if not s:
        return None
    words, word_unit = _word_number(s), ""
    if words is None and word_units:  # "three apples", "twenty-one cars"
        tokens = re.split(r"\s+", s, maxsplit=2)
        for n in (2, 1):
            if len(tokens) > n and _UNIT_RE.match(" ".join(tokens[n:])):
                words = _word_number(" ".join(tokens[:n]))
                if words is not None:
                    word_unit = " ".join(tokens[n:])
                    break
    if words is not None:
        return Num(float(words), "int", unit=_unit_key(word_unit))
    percent = False
    if _PERCENT_RE.search(s):
        percent = True
        s = _PERCENT_RE.sub(" ", s).strip()
    s = _DEGREE_RE.sub(" ", s).strip()
    if re.match(r"^[+-]?\d{1,3}(?:,\d{3})+(?:\.\d+)?(?![\d,])", s):
        s = re.sub(r"(?<=\d),(?=\d{3})", "", s, count=0)
    pow10 = _POW10_RE.match(s)
    if pow10:
        v = _to_float("1e" + (pow10.group(1) or pow10.group(2)))
        return Num(v, "sci", percent=percent) if v is not None else None
    mixed = _MIXED_RE.match(s)
    if mixed:
        whole, a, b = (int(x) for x in mixed.groups())
        if b == 0 or a >= b:
            return None
        return Num(whole + a / b, "fraction", percent=percent)
    parsed = _literal(s)
    if parsed is None:
        return None
    num, rest = parsed
    rest = rest.strip().rstrip(".,;:!").strip()
    unit = ""
    if rest:
        if rest.startswith("(") and rest.endswith(")") and re.search(r"\d", rest):
            return None
        unit = _UNIT_EXP_RE.sub("", rest)
        if len(unit) > 30 or not _UNIT_RE.match(unit) or not re.search(r"[A-Za-zµμΩ℃℉\u00c0-\u024f]", unit):
            return None
    return Num(num.value, num.kind, num.decimals, percent, _unit_key(unit))


def _unit_key(unit: str) -> str:
    return " ".join(re.sub(r"[^\w]+", " ", unit.lower()).split())


def _close(a: float, b: float, rel_tol: float | None) -> bool:
    if rel_tol is not None:
        diff = abs(a - b)
        if abs(b) <= 1e-12:
            return diff <= rel_tol
        return diff <= rel_tol * abs(b) + 1e-12
    return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9)


def numbers_match(pred: Num, gold: Num, rel_tol: float | None = None) -> bool:
    """Numerical equality of two parsed numbers.

    - ``rel_tol`` (the row's ``tolerance``): |pred - gold| <= rel_tol * |gold| (absolute when gold is 0);
      without it, equality up to a relative 1e-6.
    - A percent sign on either side also matches the value divided by 100 ("50%" == "0.5" == "50").
    - A fraction against a decimal with k >= 2 decimals matches when the fraction rounds to it
      ("1/3" == "0.33" == "0.333"), not the other way round for integers ("3" != "10/3").
    """
    preds = [pred.value] + ([pred.value / 100.0] if pred.percent else [])
    golds = [gold.value] + ([gold.value / 100.0] if gold.percent else [])
    for p in preds:
        for g in golds:
            if _close(p, g, rel_tol):
                return True
    for frac, dec in ((pred, gold), (gold, pred)):
        if frac.kind == "fraction" and dec.kind == "decimal" and dec.decimals >= 2:
            if abs(round(frac.value, dec.decimals) - dec.value) <= 10 ** (-(dec.decimals + 3)):
                return True
    return False
