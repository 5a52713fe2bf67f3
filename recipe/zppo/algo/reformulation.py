"""BCQ / NCQ reformulation of hard questions (paper Sec. 3.2, templates in Figs 17-18): the teacher goes into the
prompt, not the gradient.

For a hard question (the student mostly fails) this module builds, from this step's rollouts:

* a BCQ (Binary Candidate-included Question) when the teacher has a correct response: the original question,
  the instruction, then "Candidate A" and "Candidate B" - one correct teacher response and one wrong student
  response, in a seeded random order, with nothing that says which is which - then the usual answer closer;
* an NCQ (Negative Candidate-included Question) for every hard question with a usable wrong response: the
  original question, the instruction, the student's distinct wrong responses (at most
  ``ncq_max_candidates``), a statement that none of them is correct, then the closer.

The student answers the original question; ground truth and verifier are unchanged, so the caller scores a
BCQ/NCQ rollout exactly like one on the original prompt.

The reformulated user turn starts with the original one unchanged (``<image>`` placeholders included), so the
caller carries the row's images over as they are; candidates are cleaned of every ``<image>``/``<video>`` and
chat-control token (``clean_candidate_text``).

Token budget: a prompt must fit ``max_prompt_length`` tokens of the processor's output. The caller measures
each original prompt once (``HardQuestion.prompt_length``) and passes the responses' token ids from the
rollout; the template text is counted once per layout, so the new prompt's length is known up to a few tokens
of merging at the joins (``length_margin_tokens``). Candidates share what is left; a long one is cut on its
token ids to head + elision marker + tail (the final answer is at the end), and only kept tokens are decoded.
A layout that cannot give every candidate ``min_candidate_tokens`` is skipped and counted. The caller may
re-measure the built prompts (``measure_prompt``): one found over length is moved to the skipped list, never
sent over length and never dropped silently.

Each random draw (teacher response, wrong student response, A/B order, the responses an NCQ keeps) comes from a
generator seeded from (seed, step, question id, purpose): reproducible and independent of the batch order.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from recipe.zppo.algo.answer_format import ANSWER_CLOSER, THINK_CLOSE, extract_final_answer

BCQ = "bcq"
NCQ = "ncq"
SKIPPED_FOR_LENGTH = "skipped_for_length"
NO_WRONG_CANDIDATE = "no_wrong_candidate"  # no usable wrong student response: nothing can be built
NO_TEACHER_CANDIDATE = "no_teacher_candidate"  # no usable correct teacher response: no BCQ (NCQ only)

# Placeholders that verl's dataset replaces by image/video tokens: their count in a prompt must stay that of
# the row's media.
MEDIA_PLACEHOLDERS = ("<image>", "<video>")

# What must not reach the user turn from a response: think tags (the reasoning itself stays), chat-control
# and vision tokens of Qwen-style templates (<|im_start|>, <|im_end|>, <|endoftext|>, <|vision_start|>,
# <|image_pad|>, ...) and verl's media placeholders.
_CONTROL_TOKENS = re.compile(r"</?think>|<\|[^|<>\s]{1,64}\|>|<image>|<video>")
_THINK_TAG = re.compile(r"</?think>")

# Lazy decoding of responses given as token ids (``_Builder._answer_probe``): the suffix decoded first, in
# tokens (the whole response is decoded when it does not hold the end of the think block), and how many leading
# characters of a suffix can be replacement characters (a UTF-8 character is at most 4 bytes, so a cut inside
# one garbles at most 3).
_FIRST_SUFFIX_TOKENS = 64
_SUFFIX_GARBLE_CHARS = 3

DEFAULT_BCQ_INSTRUCTION = (
    "Here are two responses to the question above. One is correct and another is wrong. "
    "Use these as references to help you solve the problem."
)
DEFAULT_NCQ_INSTRUCTION = "Below are the incorrect reasoning processes."
DEFAULT_NCQ_STATEMENT = "None of the reasoning processes above is correct. Solve the problem on your own."


@dataclass  # not frozen: it is also a Hydra structured config node (config/schema.py)
class ReformulationConfig:
    """Templates and limits (``zppo.reformulation.*``); instruction texts default to the paper's wording."""

    bcq_instruction: str = DEFAULT_BCQ_INSTRUCTION
    ncq_instruction: str = DEFAULT_NCQ_INSTRUCTION
    # Not given verbatim by the paper ("a statement that none of them is correct"): our wording.
    ncq_statement: str = DEFAULT_NCQ_STATEMENT
    bcq_candidate_header: str = "Candidate {label}:"
    ncq_candidate_header: str = "Incorrect response {number}:"
    section_separator: str = "\n\n"
    answer_closer: str = ANSWER_CLOSER
    elision_marker: str = "\n...[truncated]...\n"
    # At most this many wrong responses in one NCQ (drawn with the seeded RNG when there are more). Ours:
    # the paper does not give it; 4 of n=8 leaves each a useful share of the prompt budget.
    ncq_max_candidates: int = 4
    # Share of a cut candidate's kept tokens taken from its start; the rest is its end (the final answer).
    head_fraction: float = 0.5
    # A candidate that would keep fewer tokens than this is useless: the prompt is skipped for length.
    min_candidate_tokens: int = 32
    # Slack for tokenizers merging tokens differently at the joins; the optional final check is exact.
    length_margin_tokens: int = 8
    build_bcq: bool = True
    build_ncq: bool = True
    seed: int = 0

    def __post_init__(self):
        texts = {
            "bcq_instruction": self.bcq_instruction,
            "ncq_instruction": self.ncq_instruction,
            "ncq_statement": self.ncq_statement,
            "bcq_candidate_header": self.bcq_candidate_header,
            "ncq_candidate_header": self.ncq_candidate_header,
            "elision_marker": self.elision_marker,
        }
        for name, text in texts.items():
            if _CONTROL_TOKENS.search(text):
                raise ValueError(f"zppo.reformulation.{name} must not contain control tokens or media placeholders")
        if self.ncq_max_candidates < 1:
            raise ValueError("zppo.reformulation.ncq_max_candidates must be >= 1")
        if not 0.0 <= self.head_fraction < 1.0:
            raise ValueError("zppo.reformulation.head_fraction must be in [0, 1) (the tail holds the answer)")
        if self.min_candidate_tokens < 1 or self.length_margin_tokens < 0 or self.seed < 0:
            raise ValueError("min_candidate_tokens must be >= 1, length_margin_tokens and seed >= 0")


@dataclass(frozen=True)
class Tokenization:
    """How the caller counts and cuts tokens (the rollout's tokenizer, or a stand-in in tests).

    ``count_text_tokens`` counts plain text (the template glue) and ``decode`` turns kept token ids back into
    text; ``encode`` is only used for responses given as text without token ids (e.g. stored teacher answers).
    ``decodes_suffixes`` says that ``decode(ids[k:])`` is the end of ``decode(ids)`` except for at most
    ``_SUFFIX_GARBLE_CHARS`` leading replacement characters (true of byte-level BPE): a response given as token
    ids is then checked for a final answer on a decoded suffix instead of its whole text.
    """

    decode: Callable[[Sequence[int]], str]
    count_text_tokens: Callable[[str], int]
    encode: Callable[[str], Sequence[int]] | None = None
    decodes_suffixes: bool = False

    @classmethod
    def for_tokenizer(cls, tokenizer) -> Tokenization:
        """From a Hugging Face tokenizer: its own ``decode`` (special tokens kept) and ``encode`` (none added)."""
        backend = getattr(tokenizer, "backend_tokenizer", None)
        try:
            from tokenizers import decoders

            byte_level = backend is not None and isinstance(backend.decoder, decoders.ByteLevel)
        except ImportError:
            byte_level = False
        return cls(
            decode=lambda ids: tokenizer.decode(list(ids), skip_special_tokens=False),
            count_text_tokens=lambda text: len(tokenizer.encode(text, add_special_tokens=False)),
            encode=lambda text: tokenizer.encode(text, add_special_tokens=False),
            # Cleaning up spaces rewrites text around punctuation, which a cut could change.
            decodes_suffixes=byte_level and not getattr(tokenizer, "clean_up_tokenization_spaces", False),
        )


@dataclass(frozen=True)
class Response:
    """One response to the question: its text, whether it is correct, and its token ids when known.

    ``token_ids`` must be the tokens of ``text`` (the rollout's response ids, padding removed): the budget is
    computed on them. Without them the text is encoded with ``Tokenization.encode``. ``text`` may be None when
    ``token_ids`` are given (the rollout's responses): the reformulation then decodes only what it needs, i.e.
    the end of the response for the final-answer check and the kept head and tail of a candidate, which at
    paper scale is a fraction of every response's tokens.
    """

    text: str | None
    correct: bool
    token_ids: Sequence[int] | None = None

    def __post_init__(self):
        if self.text is None and self.token_ids is None:
            raise ValueError("a Response needs its text or its token_ids")


@dataclass(frozen=True)
class HardQuestion:
    """A hard question and this step's material for it.

    ``prompt`` is the row's original chat messages; ``prompt_length`` the processor's length of that prompt
    (chat template and image tokens included), measured once by the caller.
    """

    question_id: Any
    prompt: Sequence[Mapping[str, Any]]
    prompt_length: int
    ground_truth: Any
    student_responses: Sequence[Response]
    teacher_responses: Sequence[Response] = ()


@dataclass
class ReformulatedPrompt:
    """One built BCQ or NCQ: new messages, same question id and ground truth."""

    question_id: Any
    kind: str  # "bcq" or "ncq"
    messages: list[dict]
    ground_truth: Any
    num_candidates: int
    num_truncated: int
    estimated_length: int  # from the caller's original prompt length, the cached glue and the candidates
    correct_position: str | None = None  # BCQ: "A" or "B", where the teacher's correct response is
    student_indices: tuple[int, ...] = ()  # which of student_responses were shown
    teacher_index: int | None = None  # which of teacher_responses was shown (BCQ)
    measured_length: int | None = None  # set by the final length check when the caller runs it


@dataclass
class SkippedReformulation:
    question_id: Any
    kind: str | None  # "bcq", "ncq", or None when the question gave nothing at all
    reason: str  # SKIPPED_FOR_LENGTH, NO_WRONG_CANDIDATE or NO_TEACHER_CANDIDATE
    length: int | None = None  # the estimated or measured length that did not fit


@dataclass
class ReformulationResult:
    """Everything one step's reformulation produced, and its counters."""

    max_prompt_length: int
    prompts: list[ReformulatedPrompt] = field(default_factory=list)
    skipped: list[SkippedReformulation] = field(default_factory=list)
    num_questions: int = 0
    teacher_solvable: int = 0  # questions with at least one usable correct teacher response
    responses_excluded: int = 0  # empty or without a final answer
    responses_duplicate: int = 0  # same text as an earlier response of the same question

    def confirm_lengths(self, measured_lengths: Sequence[int]) -> list[ReformulatedPrompt]:
        """Final check: ``measured_lengths[i]`` is the processor's length of ``prompts[i]``.

        Prompts over ``max_prompt_length`` move to ``skipped`` (reason ``skipped_for_length``) and are
        returned; the rest keep their measured length.
        """
        if len(measured_lengths) != len(self.prompts):
            raise ValueError(f"{len(measured_lengths)} lengths for {len(self.prompts)} prompts")
        kept, rejected = [], []
        for prompt, length in zip(self.prompts, measured_lengths):
            prompt.measured_length = int(length)
            if length > self.max_prompt_length:
                rejected.append(prompt)
                self.skipped.append(
                    SkippedReformulation(prompt.question_id, prompt.kind, SKIPPED_FOR_LENGTH, int(length))
                )
            else:
                kept.append(prompt)
        self.prompts = kept
        return rejected

    def count(self, kind: str | None = None, reason: str | None = None) -> int:
        """Number of skip records matching ``kind`` and ``reason`` (None matches anything)."""
        return sum(1 for s in self.skipped if kind in (None, s.kind) and reason in (None, s.reason))

    def metrics(self, prefix: str = "zppo/") -> dict[str, float]:
        def mean_length(kind):
            lengths = [p.measured_length or p.estimated_length for p in self.prompts if p.kind == kind]
            return float(np.mean(lengths)) if lengths else 0.0

        bcq = [p for p in self.prompts if p.kind == BCQ]
        values = {
            "hard_questions": self.num_questions,
            "teacher_solvable_frac": self.teacher_solvable / self.num_questions if self.num_questions else 0.0,
            "bcq_built": len(bcq),
            "ncq_built": sum(1 for p in self.prompts if p.kind == NCQ),
            "skipped_for_length": self.count(reason=SKIPPED_FOR_LENGTH),
            "bcq_skipped_for_length": self.count(BCQ, SKIPPED_FOR_LENGTH),
            "ncq_skipped_for_length": self.count(NCQ, SKIPPED_FOR_LENGTH),
            "no_teacher_candidate": self.count(reason=NO_TEACHER_CANDIDATE),
            "no_wrong_candidate": self.count(reason=NO_WRONG_CANDIDATE),
            "candidates_truncated": sum(p.num_truncated for p in self.prompts),
            "responses_excluded": self.responses_excluded,
            "responses_duplicate": self.responses_duplicate,
            "bcq_correct_at_a": sum(1 for p in bcq if p.correct_position == "A"),
            "bcq_prompt_length_mean": mean_length(BCQ),
            "ncq_prompt_length_mean": mean_length(NCQ),
        }
        return {prefix + key: float(value) for key, value in values.items()}


# ----------------------------------------------------------------------------------------------------------
# Text helpers
# ----------------------------------------------------------------------------------------------------------
def clean_candidate_text(text: str) -> str:
    """A response as plain text for a user turn: think tags and control tokens removed, reasoning kept.

    Repeated until nothing matches, so that a removal cannot join two halves into a new control token
    (``<|im_<think>start|>``). Only ever shortens the text, so it does not add tokens to the budget.
    """
    # Every pattern starts with "<": a text without one has nothing to remove (checked at C speed).
    while "<" in text:
        # A think tag becomes a line break so the reasoning and the answer after it do not run together.
        cleaned = _CONTROL_TOKENS.sub("", _THINK_TAG.sub("\n", text))
        if cleaned == text:
            break
        text = cleaned
    return text.strip()


def has_final_answer_default(text: str) -> bool:
    """A response can be a candidate when it ends in a final answer (not cut off at the length limit)."""
    return extract_final_answer(text) is not None


def _count_media(text: str) -> tuple[int, ...]:
    return tuple(text.count(p) for p in MEDIA_PLACEHOLDERS)


def _user_turn(prompt: Sequence[Mapping[str, Any]]) -> tuple[list[dict], int, str]:
    """Copies of the messages, the index of the last user turn, and its text content."""
    messages = [dict(message) for message in prompt]
    for i in range(len(messages) - 1, -1, -1):
        if messages[i].get("role") == "user":
            content = messages[i].get("content")
            if not isinstance(content, str):
                raise TypeError(
                    "reformulation expects the user turn as text with <image> placeholders (verl's RL parquet "
                    f"layout), got {type(content).__name__}"
                )
            return messages, i, content
    raise ValueError("the prompt has no user turn")


def _question_part(content: str, closer: str) -> tuple[str, bool]:
    """The user turn without its closer (and the separator before it); whether the closer was there."""
    if content.rstrip().endswith(closer):
        return content.rstrip()[: -len(closer)].rstrip(), True
    return content.rstrip(), False


def _question_rng(seed: int, step: int, question_id: Any, purpose: int) -> np.random.Generator:
    # Python's hash() of a str changes with every process; a digest does not.
    digest = hashlib.blake2b(str(question_id).encode("utf-8"), digest_size=8).digest()
    return np.random.default_rng([seed, int(step), int.from_bytes(digest, "little"), purpose])


# ----------------------------------------------------------------------------------------------------------
# The builder
# ----------------------------------------------------------------------------------------------------------
class _Builder:
    """One step's reformulation: holds the config, the token functions and the caches they allow."""

    def __init__(
        self,
        config: ReformulationConfig,
        tokens: Tokenization,
        max_prompt_length: int,
        has_final_answer: Callable[[str], bool],
    ):
        self.config = config
        self.tokens = tokens
        self.max_prompt_length = int(max_prompt_length)
        self.has_final_answer = has_final_answer
        self.marker_tokens = tokens.count_text_tokens(config.elision_marker)
        self._glue_cache: dict[tuple, int] = {}
        # The end-of-response shortcut (see `_answer_probe`) is exact for the project's answer rules, when a
        # suffix of the ids decodes to a suffix of the text (up to its first characters).
        self._tail_probe = has_final_answer is has_final_answer_default and tokens.decodes_suffixes
        # Per-response caches for this call (keyed by id(): the responses live as long as the call).
        self._ids_cache: dict[int, Sequence[int]] = {}
        self._text_cache: dict[int, str] = {}

    # -- layouts ----------------------------------------------------------------------------------------------
    def _headers(self, kind: str, k: int) -> list[str]:
        if kind == BCQ:
            return [self.config.bcq_candidate_header.format(label=label) for label in "AB"[:k]]
        return [self.config.ncq_candidate_header.format(number=i + 1) for i in range(k)]

    def _content(self, question: str, kind: str, candidates: Sequence[str]) -> str:
        c = self.config
        sep = c.section_separator
        parts = [question, c.bcq_instruction if kind == BCQ else c.ncq_instruction]
        parts += [f"{header}\n{text}" for header, text in zip(self._headers(kind, len(candidates)), candidates)]
        if kind == NCQ:
            parts.append(c.ncq_statement)
        parts.append(c.answer_closer)
        return sep.join(parts)

    def _glue_tokens(self, kind: str, k: int, had_closer: bool) -> int:
        """Tokens the layout adds to the original prompt, candidates excluded (cached per layout)."""
        key = (kind, k, had_closer)
        if key not in self._glue_cache:
            # The layout with empty question and candidates, minus what the original already had (sep+closer).
            full = self._content("", kind, [""] * k)
            already = self.config.section_separator + self.config.answer_closer if had_closer else ""
            added = full[: len(full) - len(already)] if already else full
            self._glue_cache[key] = self.tokens.count_text_tokens(added)
        return self._glue_cache[key]

    # -- candidates -------------------------------------------------------------------------------------------
    def usable(self, responses: Sequence[Response], correct: bool, result: ReformulationResult) -> list[int]:
        """Indices of responses that can be candidates: right correctness, non-empty, with a final answer,
        first of each distinct text (texts compared after stripping surrounding white space)."""
        kept: list[tuple[Response, str]] = []
        chosen = []
        for i, response in enumerate(responses):
            if bool(response.correct) != correct:
                continue
            checked, key = self._answer_probe(response)
            if not checked or not self.has_final_answer(checked):
                result.responses_excluded += 1
                continue
            if any(self._same_text(response, key, other, other_key) for other, other_key in kept):
                result.responses_duplicate += 1
                continue
            kept.append((response, key))
            chosen.append(i)
        return chosen

    # -- lazy decoding ----------------------------------------------------------------------------------------
    # A rollout response arrives as token ids; decoding all of them (8 per question, thousands of tokens each)
    # would cost more than the rest of the step's host work, so a response given without text is decoded only
    # where needed: its end for the final-answer check, the kept head and tail when it is shown.

    def _token_ids(self, response: Response) -> Sequence[int]:
        if response.token_ids is not None:
            return response.token_ids
        key = id(response)
        if key not in self._ids_cache:
            if self.tokens.encode is None:
                raise ValueError("a response without token_ids needs Tokenization.encode")
            self._ids_cache[key] = self.tokens.encode(response.text)
        return self._ids_cache[key]

    def _text(self, response: Response) -> str:
        """The whole text of a response (decoded once if it came as token ids only)."""
        if response.text is not None:
            return response.text
        key = id(response)
        if key not in self._text_cache:
            self._text_cache[key] = self.tokens.decode(response.token_ids)
        return self._text_cache[key]

    def _end_of_think(self, ids: Sequence[int]) -> tuple[str, bool]:
        """The decoded last ``_FIRST_SUFFIX_TOKENS`` tokens of ``ids`` if they hold ``</think>``, else the whole
        text; and whether it is the whole text. A response cut off inside its think block costs one whole decode
        plus the short suffix."""
        total = len(ids)
        if total > _FIRST_SUFFIX_TOKENS:
            text = self.tokens.decode(ids[total - _FIRST_SUFFIX_TOKENS :])
            if THINK_CLOSE in text:
                return text, False
        return self.tokens.decode(ids), True

    def _answer_probe(self, response: Response) -> tuple[str, str]:
        """(text to check for a final answer, key for the duplicate test), decoding as little as possible.

        With the project's answer rules, a suffix holding the response's last ``</think>`` has the same answer
        part as the whole text (the answer part is what follows the last ``</think>``, and a ``<think>`` that
        reopens after it is in the suffix too), so the check on it is exact. The suffix can start inside a
        multi-byte character: its first ``_SUFFIX_GARBLE_CHARS`` characters may be replacement characters, and
        what follows them is exactly the end of the whole text; that is the duplicate-test key.
        """
        if response.text is not None or not self._tail_probe:
            text = self._text(response).strip()
            return text, text
        text, whole = self._end_of_think(response.token_ids)
        if whole:
            self._text_cache[id(response)] = text
            text = text.strip()
            return text, text
        return text.strip(), text[_SUFFIX_GARBLE_CHARS:].strip()

    def _same_text(self, response: Response, key: str, other: Response, other_key: str) -> bool:
        """Whether two responses have the same stripped text. Each key is a suffix of its stripped text (see
        ``_answer_probe``), so equal texts have keys of which one ends the other: only then are texts decoded."""
        if not (key.endswith(other_key) or other_key.endswith(key)):
            return False
        return self._text(response).strip() == self._text(other).strip()

    @staticmethod
    def _allocate(lengths: Sequence[int], budget: int) -> list[int]:
        """Split ``budget`` tokens: short candidates keep all they have, long ones share the rest equally."""
        shares = [0] * len(lengths)
        remaining = budget
        order = sorted(range(len(lengths)), key=lengths.__getitem__)
        for position, i in enumerate(order):
            shares[i] = min(lengths[i], remaining // (len(lengths) - position))
            remaining -= shares[i]
        return shares

    def _render(self, response: Response, ids: Sequence[int], share: int) -> str:
        if len(ids) <= share:
            return clean_candidate_text(self._text(response))
        keep = share - self.marker_tokens
        head = min(int(keep * self.config.head_fraction), keep - 1)
        tail = keep - head
        head_text = clean_candidate_text(self.tokens.decode(ids[:head])) if head > 0 else ""
        tail_text = clean_candidate_text(self.tokens.decode(ids[len(ids) - tail :]))
        return (head_text + self.config.elision_marker + tail_text).strip()

    # -- one prompt -------------------------------------------------------------------------------------------
    def build(self, question: HardQuestion, kind: str, responses: Sequence[Response]):
        """A ReformulatedPrompt showing ``responses`` in order, or a SkippedReformulation if it cannot fit."""
        messages, user_index, content = _user_turn(question.prompt)
        question_text, had_closer = _question_part(content, self.config.answer_closer)
        k = len(responses)
        fixed = question.prompt_length + self._glue_tokens(kind, k, had_closer)
        budget = self.max_prompt_length - self.config.length_margin_tokens - fixed

        ids = [self._token_ids(r) for r in responses]
        lengths = [len(x) for x in ids]
        shares = self._allocate(lengths, max(budget, 0))
        too_short = any(
            share < length and share - self.marker_tokens < self.config.min_candidate_tokens
            for share, length in zip(shares, lengths)
        )
        estimated = fixed + sum(shares)
        if budget < 0 or too_short:
            return SkippedReformulation(question.question_id, kind, SKIPPED_FOR_LENGTH, fixed + sum(lengths))

        texts = [self._render(r, x, share) for r, x, share in zip(responses, ids, shares)]
        new_content = self._content(question_text, kind, texts)
        if _count_media(new_content) != _count_media(content):  # cannot happen: candidates are cleaned
            raise AssertionError("reformulation changed the number of media placeholders")
        messages[user_index]["content"] = new_content
        return ReformulatedPrompt(
            question_id=question.question_id,
            kind=kind,
            messages=messages,
            ground_truth=question.ground_truth,
            num_candidates=k,
            num_truncated=sum(share < length for share, length in zip(shares, lengths)),
            estimated_length=estimated,
        )


def reformulate(
    questions: Sequence[HardQuestion],
    step: int,
    tokens: Tokenization,
    max_prompt_length: int,
    config: ReformulationConfig | None = None,
    has_final_answer: Callable[[str], bool] = has_final_answer_default,
    measure_prompt: Callable[[ReformulatedPrompt], int] | None = None,
) -> ReformulationResult:
    """Build this step's BCQ and NCQ prompts for ``questions`` (the hard ones; the caller decides hardness).

    Per question: BCQ when it has a usable correct teacher response and a usable wrong student response;
    NCQ when it has a usable wrong student response. What cannot be built is recorded in ``skipped``.
    ``measure_prompt``, when given, is the final check: the real processor's length of a built prompt.
    """
    config = config or ReformulationConfig()
    builder = _Builder(config, tokens, max_prompt_length, has_final_answer)
    result = ReformulationResult(max_prompt_length=int(max_prompt_length), num_questions=len(questions))

    for question in questions:
        wrong = builder.usable(question.student_responses, correct=False, result=result)
        right = builder.usable(question.teacher_responses, correct=True, result=result)
        result.teacher_solvable += bool(right)
        if not wrong:
            result.skipped.append(SkippedReformulation(question.question_id, None, NO_WRONG_CANDIDATE))
            continue

        if config.build_bcq:
            if not right:
                result.skipped.append(SkippedReformulation(question.question_id, BCQ, NO_TEACHER_CANDIDATE))
            else:
                rng = _question_rng(config.seed, step, question.question_id, purpose=0)
                teacher_index = right[int(rng.integers(len(right)))]
                student_index = wrong[int(rng.integers(len(wrong)))]
                correct_first = bool(rng.integers(2))
                pair = [question.teacher_responses[teacher_index], question.student_responses[student_index]]
                built = builder.build(question, BCQ, pair if correct_first else pair[::-1])
                if isinstance(built, ReformulatedPrompt):
                    built.correct_position = "A" if correct_first else "B"
                    built.student_indices = (student_index,)
                    built.teacher_index = teacher_index
                    result.prompts.append(built)
                else:
                    result.skipped.append(built)

        if config.build_ncq:
            shown = wrong
            if len(wrong) > config.ncq_max_candidates:
                rng = _question_rng(config.seed, step, question.question_id, purpose=1)
                picked = rng.choice(len(wrong), size=config.ncq_max_candidates, replace=False)
                shown = [wrong[i] for i in sorted(picked.tolist())]
            built = builder.build(question, NCQ, [question.student_responses[i] for i in shown])
            if isinstance(built, ReformulatedPrompt):
                built.student_indices = tuple(shown)
                result.prompts.append(built)
            else:
                result.skipped.append(built)

    if measure_prompt is not None:
        result.confirm_lengths([measure_prompt(p) for p in result.prompts])
    return result
