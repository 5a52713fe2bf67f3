"""The single answer format: the paper's RL closer appended to every question, in training and evaluation.

Every prompt the student sees (original, BCQ, NCQ, benchmark) ends with ``ANSWER_CLOSER``, the closer of Fig. 8
(App. B.2 of arXiv 2606.18216, "applied identically at training and evaluation"), so the policy is trained
against exactly the format it is evaluated with. The extraction rules below are the project's own: the closer asks
for a ``\\boxed{}`` answer after the think block; the later rules are fallbacks for responses that give none.

Extraction rules (``extract_answer``), in order; the first that yields a non-empty answer wins:

1. The response is split at the think block (``split_think``). A ``<think>`` that is never closed (the
   response was cut off) means **no answer**, whatever follows. Anything inside the think block is ignored,
   boxes included.
2. ``boxed``: the content of the LAST ``\\boxed{...}`` (or ``\\fbox{...}``) in the answer part, nested
   braces allowed (``\\boxed{\\frac{1}{2}}`` -> ``\\frac{1}{2}``). A box whose closing brace never comes (or
   comes more than ``MAX_BOX_CHARS`` later) is skipped and the previous box is used.
3. ``answer_tag``: the content of the last closed ``<answer>...</answer>`` (a box inside it is unwrapped).
4. ``marker``: the text after the last "answer is / answer: / final answer: / correct option is ..." on
   its line, cleaned of markdown, ``$`` and a trailing period ("**Answer:** B." -> "B").
5. ``short``: the whole answer part when it is a single line of at most ``MAX_SHORT_CHARS`` characters
   ("42", "(B)", "B.").
6. ``last_line``: the last line of the answer part when it is a bare choice letter or a bare number.

Cost is bounded: the think split and the box search use ``str.find``/``rfind`` over the whole text (C
speed); the regex fallbacks scan only the last ``MAX_SCAN_CHARS`` characters of the answer part; an answer
longer than ``MAX_ANSWER_CHARS`` is cut to its last ``MAX_ANSWER_CHARS`` characters.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Fig. 8 (App. B.2), verbatim: the RL closer, on every prompt (plain, BCQ, NCQ; training and evaluation).
ANSWER_CLOSER = (
    "You FIRST think about the reasoning process as an internal monologue and then provide the final answer. "
    "The reasoning process MUST BE enclosed within <think> </think> tags. The final answer MUST BE put in \\boxed{}."
)

THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"

MAX_SCAN_CHARS = 20_000  # only this tail of the answer part is scanned by the regex fallbacks
MAX_BOX_CHARS = 4_000  # a box must close within this many characters of its opening brace
MAX_BOXES_TRIED = 64  # unclosed boxes skipped before giving up
MAX_SHORT_CHARS = 100  # a whole answer part up to this long (one line) is taken as the answer
MAX_ANSWER_CHARS = 2_000  # longer extracted answers are cut to their tail

_BOX_KEYS = ("\\boxed", "\\fbox")


@dataclass(frozen=True)
class Extraction:
    """Result of ``extract_answer``.

    answer: the final answer (stripped, non-empty) or None.
    method: "boxed" | "answer_tag" | "marker" | "short" | "last_line" | "none".
    reason: "ok" when an answer was found, else why not: "empty_response", "unclosed_think",
        "empty_answer" (think block closed, nothing after it), "no_answer".
    answer_part: the tail (at most MAX_SCAN_CHARS) of the text after the think block ("" when unclosed).
    """

    answer: str | None
    method: str
    reason: str
    answer_part: str


def _as_text(text) -> str:
    if text is None:
        return ""
    if isinstance(text, bytes):
        return text.decode("utf-8", errors="replace")
    return text if isinstance(text, str) else str(text)


def split_think(text: str) -> tuple[str | None, str]:
    """Split a response into (reasoning, answer part).

    Returns (None, "") when a ``<think>`` block is opened and never closed: such a response was cut off and
    has no final answer. This includes a second think block opened after the last ``</think>``. A response
    that starts inside the think block (chat templates that put ``<think>`` in the prompt) and closes it is
    split at the last ``</think>``. A response without think tags is all answer part.
    """
    if text is None:
        return None, ""
    text = _as_text(text)
    open_at = text.find(THINK_OPEN)
    close_at = text.rfind(THINK_CLOSE)
    if close_at >= 0:
        if text.find(THINK_OPEN, close_at) >= 0:  # a think block re-opened after the last close: cut off
            return None, ""
        start = open_at + len(THINK_OPEN) if 0 <= open_at < close_at else 0
        return text[start:close_at], text[close_at + len(THINK_CLOSE) :]
    if open_at >= 0:
        return None, ""
    return "", text


def box_content_at(text: str, brace_at: int) -> str | None:
    """Content of the brace group opening at ``text[brace_at] == '{'``, or None if it does not close in time."""
    depth, i = 0, brace_at
    end = min(len(text), brace_at + MAX_BOX_CHARS)
    while i < end:
        ch = text[i]
        if ch == "\\":  # escaped brace \{ \} (or any command): skip the next char
            i += 2
            continue
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return text[brace_at + 1 : i]
        i += 1
    return None


def extract_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` (or ``\\fbox{...}``) in ``text`` (nested braces allowed), or None.

    Unclosed boxes are skipped (the previous one is used). A box nested directly in a box is unwrapped.
    An empty box counts as no box.
    """
    if not text:
        return None
    text = _as_text(text)
    positions = []
    for key in _BOX_KEYS:
        pos = text.rfind(key)
        if pos >= 0:
            positions.append((pos, key))
    tried = 0
    while positions and tried < MAX_BOXES_TRIED:
        positions.sort()
        start, key = positions.pop()
        tried += 1
        after = start + len(key)
        j = after
        while j < len(text) and text[j] in " \t":
            j += 1
        content = None
        if j < len(text) and text[j] == "{" and (after == len(text) or not text[after].isalpha()):
            content = box_content_at(text, j)
        if content is not None:
            content = _unwrap_single_box(content.strip())
            if content:
                return content
        prev = text.rfind(key, 0, start)
        if prev >= 0:
            positions.append((prev, key))
    return None


def _unwrap_single_box(content: str) -> str:
    """``\\boxed{\\boxed{5}}`` -> ``5``: unwrap a content that is exactly one box, repeatedly."""
    for _ in range(8):
        for key in _BOX_KEYS:
            if content.startswith(key):
                j = len(key)
                while j < len(content) and content[j] in " \t":
                    j += 1
                if j < len(content) and content[j] == "{":
                    inner = box_content_at(content, j)
                    if inner is not None and j + len(inner) + 2 == len(content):
                        content = inner.strip()
                        break
        else:
            return content
    return content


_ANSWER_TAG_RE = re.compile(r"<answer>(.*?)</answer>", re.DOTALL | re.IGNORECASE)
_MARKER_RE = re.compile(
    r"(?i)\b(?:final\s+answer|correct\s+(?:answer|option|choice)|the\s+answer|answer)\b[\s*_]*"
    r"(?:is\b|:|=|-(?!\d))[\s*_:]*([^\n]+)"
)
_BARE_CHOICE_RE = re.compile(r"^\(?\[?([A-Za-z])\]?\)?\.?$")
_BARE_NUMBER_RE = re.compile(r"^[-+\u2212]?\$?\d[\d,]*(?:\.\d+)?\s*%?\.?$")


def _clean_fragment(s: str) -> str:
    """Strip markdown emphasis, math dollars, quotes and a trailing period/colon around a short answer."""
    s = s.strip()
    for _ in range(3):
        before = s
        s = s.strip().strip("*_`").strip()
        if len(s) >= 2 and s[0] == s[-1] and s[0] in "\"'":
            s = s[1:-1].strip()
        if s.startswith("$$") and s.endswith("$$") and len(s) > 4:
            s = s[2:-2].strip()
        elif s.startswith("$") and s.endswith("$") and len(s) > 2:
            s = s[1:-1].strip()
        elif s.startswith("\\(") and s.endswith("\\)"):
            s = s[2:-2].strip()
        elif s.startswith("\\[") and s.endswith("\\]"):
            s = s[2:-2].strip()
        s = s.rstrip(" \t.;:,!")
        if s == before:
            break
    return s


def _cap(answer: str) -> str:
    answer = answer.strip()
    return answer[-MAX_ANSWER_CHARS:] if len(answer) > MAX_ANSWER_CHARS else answer


def extract_answer(response) -> Extraction:
    """Final answer of a response with the method that found it; never raises (see the module docstring)."""
    text = _as_text(response)
    if not text.strip():
        return Extraction(None, "none", "empty_response", "")
    reasoning, answer_part = split_think(text)
    if reasoning is None:
        return Extraction(None, "none", "unclosed_think", "")
    if not answer_part.strip():
        return Extraction(None, "none", "empty_answer", "")

    boxed = extract_boxed(answer_part)
    tail = answer_part[-MAX_SCAN_CHARS:]
    if boxed:
        return Extraction(_cap(boxed), "boxed", "ok", tail)

    tags = _ANSWER_TAG_RE.findall(tail)
    for content in reversed(tags):
        inner = extract_boxed(content)
        content = _clean_fragment(inner if inner else content)
        if content:
            return Extraction(_cap(content), "answer_tag", "ok", tail)

    for match in reversed(list(_MARKER_RE.finditer(tail))):
        fragment = _cap(match.group(1))
        for _ in range(20):  # "answer is 3, so the final answer: 5" -> the last marker on the line
            markers = list(_MARKER_RE.finditer(fragment))
            inner = markers[-1] if markers else None
            if inner is None or not inner.group(1).strip():
                break
            fragment = inner.group(1)
        content = _clean_fragment(fragment)
        if content:
            return Extraction(_cap(content), "marker", "ok", tail)

    stripped = tail.strip()
    if "\n" not in stripped and len(stripped) <= MAX_SHORT_CHARS:
        content = _clean_fragment(stripped)
        if content:
            return Extraction(content, "short", "ok", tail)

    last_line = stripped.rsplit("\n", 1)[-1].strip()
    cleaned = _clean_fragment(last_line)
    if cleaned and (_BARE_CHOICE_RE.match(cleaned) or _BARE_NUMBER_RE.match(cleaned)):
        return Extraction(cleaned, "last_line", "ok", tail)
    return Extraction(None, "none", "no_answer", tail)


def extract_final_answer(response: str) -> str | None:
    """Final answer of a response (see ``extract_answer``); None if it has none (e.g. unclosed think block)."""
    return extract_answer(response).answer
