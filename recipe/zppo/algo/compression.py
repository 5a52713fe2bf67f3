"""Candidate compression (paper Sec. 3.2 (i), App. D.1, Fig. 16): the frozen teacher rewrites a candidate before
it enters a BCQ/NCQ prompt.

Every candidate goes through the same prompt and the same token cap. That holds for the correct teacher response
and the wrong student response of a BCQ, and for every wrong student response of an NCQ. "The frozen teacher
rewrites candidate responses into concise reasoning traces whose final answers are preserved verbatim" (App. D.1).
The cap is 512 tokens (Tab. 8: "Candidate compression on, max 512 tokens").

This module is pure text: it builds the teacher's messages (``compression_messages``) and judges its reply
(``parse_compression``). Sending the request is the caller's job (no Ray, no HTTP, no verl here).

Choices the paper leaves open (ours):

* The response is sent with its reasoning. NCQ exists to show the student's wrong reasoning, so the think block
  is kept as plain text. ``clean_candidate_text`` (reformulation.py) turns the ``<think>``/``</think>`` tags
  into line breaks and removes chat-control tokens (``<|im_start|>``, ``<|im_end|>``, ...) and the
  ``<image>``/``<video>`` placeholders. The user turn has no media, and a response cannot close the turn early.
* Failures have no fallback here. ``parse_compression`` says why a reply is unusable (``Compressed.reason``).
  The caller decides what to do with such a candidate (drop it, or show it uncompressed) and counts the
  reasons as metrics.
"""

from __future__ import annotations

from dataclasses import dataclass

from recipe.zppo.algo.answer_format import THINK_CLOSE, THINK_OPEN, extract_boxed
from recipe.zppo.algo.reformulation import clean_candidate_text

# Fig. 16 ("Teacher-side candidate compression prompt (off the gradient path)"), verbatim. Two departures from
# the PDF text: the bullets are "-" (the PDF renders them as "•"), and "<response>" starts its own line (in the
# extracted text it runs on from the last rule). This is not a str.format template, because "\boxed{}" has
# braces. ``compression_prompt`` fills the single "{response}" slot.
COMPRESSION_PROMPT = (
    "Compress the response below into a summary (in 5 lines max). Rules:\n"
    "- Response is in <response>...</response> tags\n"
    "- Summary should be in <summary>...</summary> tags and should be in 5 lines max\n"
    "- Keep ONLY the essential reasoning steps and the final answer\n"
    "- Remove ALL exploratory text, self-corrections, retries, and filler\n"
    "- Do NOT re-derive or add new information\n"
    "- End with the final answer in \\boxed{} format\n"
    "<response>\n{response}\n</response>"
)
RESPONSE_SLOT = "{response}"

COMPRESSION_MAX_TOKENS = 512  # paper, Tab. 8: "Candidate compression on, max 512 tokens"

SUMMARY_OPEN = "<summary>"
SUMMARY_CLOSE = "</summary>"

# Outcomes of parse_compression. Each string doubles as a metric name.
OK = "ok"
NO_SUMMARY = "no_summary"  # no closed <summary>...</summary> pair, or an unclosed think block at the start
NO_ANSWER = "no_answer"  # the summary has no \boxed{...}
ANSWER_CHANGED = "answer_changed"  # the summary's boxed answer is not the original one
TRUNCATED = "truncated"  # the teacher hit the token cap (COMPRESSION_MAX_TOKENS)
REASONS = (OK, NO_SUMMARY, NO_ANSWER, ANSWER_CHANGED, TRUNCATED)


@dataclass(frozen=True)
class Compressed:
    """The outcome of one compression.

    text: the summary to put in the ``<candidate>`` block, stripped and cleaned. None when it cannot be used.
    reason: ``OK``, or why the summary cannot be used (one of ``REASONS``).
    """

    text: str | None
    reason: str

    @property
    def ok(self) -> bool:
        return self.reason == OK


def compression_prompt(response: str) -> str:
    """The Fig. 16 prompt around ``response``, cleaned by ``clean_candidate_text``.

    The cleaning turns think tags into line breaks (the reasoning stays) and removes control tokens and media
    placeholders.
    """
    head, tail = COMPRESSION_PROMPT.split(RESPONSE_SLOT)
    return head + clean_candidate_text(response or "") + tail


def compression_messages(response: str) -> list[dict]:
    """The teacher's chat for compressing ``response``: one user turn, the Fig. 16 prompt around the response."""
    return [{"role": "user", "content": compression_prompt(response)}]


def _after_leading_think(output: str) -> str | None:
    """``output`` without a think block at its start, or None when that block never closes.

    Two cases count as a leading think block. In the first, the output opens with ``<think>``. In the
    second, a ``</think>`` comes before any ``<think>``: a chat template pre-filled ``<think>`` in the prompt,
    so the reply starts inside the block.
    """
    stripped = output.lstrip()
    if stripped.startswith(THINK_OPEN):
        close = stripped.find(THINK_CLOSE, len(THINK_OPEN))
        return None if close < 0 else stripped[close + len(THINK_CLOSE) :]
    close = output.find(THINK_CLOSE)
    if close >= 0 and THINK_OPEN not in output[:close]:
        return output[close + len(THINK_CLOSE) :]
    return output


def parse_compression(output: str, original_answer: str, *, truncated: bool = False) -> Compressed:
    """Judge the teacher's compression ``output`` of a response whose final answer is ``original_answer``.

    The paper only promises that "final answers are preserved verbatim" (App. D.1). It has no rule for failed
    compressions, so the rules below are ours, applied in this order:

    1. ``truncated`` (the teacher stopped at the token cap) gives ``TRUNCATED``, whatever the text holds.
    2. A think block at the start of the output is dropped: one that opens the output, or one the chat
       template opened in the prompt, so that a ``</think>`` comes before any ``<think>``. If that block never
       closes, there is no summary (``NO_SUMMARY``).
    3. The candidate is the text inside the LAST ``<summary>...</summary>`` pair: the last ``</summary>`` and
       the last ``<summary>`` before it. Without such a pair, the result is ``NO_SUMMARY``.
    4. That text is cleaned like any candidate (``clean_candidate_text``: think tags, chat-control tokens and
       media placeholders removed) and stripped. Its final answer is the content of its last ``\\boxed{...}``
       (``answer_format.extract_boxed``; nested braces allowed). With no box, the result is ``NO_ANSWER``.
    5. That answer must equal ``original_answer`` exactly after both are stripped of surrounding white space.
       Otherwise the result is ``ANSWER_CHANGED``. No normalisation is applied: "1/2" and "\\frac{1}{2}" differ.

    The answer is checked on the cleaned text, which is the text the student will see.
    """
    if original_answer is None or not str(original_answer).strip():
        raise ValueError("parse_compression needs the original response's final answer (got none)")
    if truncated:
        return Compressed(None, TRUNCATED)
    body = _after_leading_think(output or "")
    if body is None:
        return Compressed(None, NO_SUMMARY)
    close = body.rfind(SUMMARY_CLOSE)
    open_at = body.rfind(SUMMARY_OPEN, 0, close) if close >= 0 else -1
    if open_at < 0:
        return Compressed(None, NO_SUMMARY)
    text = clean_candidate_text(body[open_at + len(SUMMARY_OPEN) : close])
    answer = extract_boxed(text)
    if answer is None:
        return Compressed(None, NO_ANSWER)
    if answer.strip() != str(original_answer).strip():
        return Compressed(None, ANSWER_CHANGED)
    return Compressed(text, OK)
