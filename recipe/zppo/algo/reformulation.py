"""BCQ / NCQ prompts for hard questions (arXiv 2606.18216, Sec. 3.2, Algorithm 1 step 4 in App. C, Figs 17-18):
the teacher goes into the prompt, not the gradient.

For a hard question this module builds, from this step's material (candidates already compressed by the teacher,
``algo/compression.py``):

* a BCQ (Binary Candidate-included Question) when there is a correct teacher candidate and a wrong student
  candidate: the original question, a blank line, the Fig. 17 instruction, then two ``<candidate>`` blocks (one
  teacher-correct, one student-wrong, each drawn uniformly, in a seeded random order, nothing saying which is
  which), then the answer closer;
* an NCQ (Negative Candidate-included Question) when the plain group has wrong rollouts: the original question, a
  blank line, "The following answers are all WRONG: " with the parsed final answers of ALL wrong rollouts
  (de-duplicated, each as ``\\boxed{..}``, joined with ", "), the rest of the Fig. 18 instruction, then one
  ``<candidate>`` block per compressed wrong rollout (every one, no cap), then the closer.

The student answers the original question: ground truth and verifier are unchanged. The user turn starts with the
original one (``<image>`` placeholders included), so the caller carries the row's images over as they are;
candidate texts are cleaned of every ``<image>``/``<video>`` and chat-control token (``clean_candidate_text``).

Candidates are never cut: compression bounds them (Fig. 16, 512 tokens each). A prompt that still exceeds the
rollout's prompt budget (the caller's ``measure_prompt``, the processor's exact length) is skipped and counted,
never sent over length. Each random draw comes from a generator seeded from (seed, step, question id, purpose):
reproducible and independent of the batch order.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from recipe.zppo.algo.answer_format import ANSWER_CLOSER

BCQ = "bcq"
NCQ = "ncq"
TEACHER = "teacher"  # where a candidate comes from
STUDENT = "student"
SKIPPED_FOR_LENGTH = "skipped_for_length"
NO_WRONG_CANDIDATE = "no_wrong_candidate"  # no usable wrong student candidate: nothing can be built
NO_TEACHER_CANDIDATE = "no_teacher_candidate"  # no usable correct teacher candidate: no BCQ (NCQ only)

# Placeholders that verl's dataset replaces by image/video tokens: their count in a prompt must stay that of
# the row's media.
MEDIA_PLACEHOLDERS = ("<image>", "<video>")

# What must not reach the user turn from a response: think tags (the reasoning itself stays), chat-control
# and vision tokens of Qwen-style templates (<|im_start|>, <|im_end|>, <|endoftext|>, <|vision_start|>,
# <|image_pad|>, ...) and verl's media placeholders.
_CONTROL_TOKENS = re.compile(r"</?think>|<\|[^|<>\s]{1,64}\|>|<image>|<video>")
_THINK_TAG = re.compile(r"</?think>")

# Fig. 17 (BCQ) and Fig. 18 (NCQ), verbatim; NCQ's "{answers}" is the parsed wrong answers, each as \boxed{..}.
BCQ_INSTRUCTION = (
    "Here are two candidate responses in <candidate> </candidate> tags to the question above. One is correct and "
    "another is wrong. Use these as references to help you solve the problem."
)
NCQ_INSTRUCTION = (
    "The following answers are all WRONG: {answers}. Below are the incorrect reasoning processes in "
    "<candidate> </candidate> tags."
)


@dataclass  # not frozen: it is also a Hydra structured config node (config/schema.py)
class ReformulationConfig:
    """``zppo.reformulation.*``: which prompts are built and their texts (the paper's by default)."""

    # Fig. 17's instruction (paper); an ablation may change it.
    bcq_instruction: str = BCQ_INSTRUCTION
    # Fig. 18's instruction (paper); must contain "{answers}", where the wrong answers go.
    ncq_instruction: str = NCQ_INSTRUCTION
    # Appended to every prompt, plain and reformulated alike (App. B.2).
    answer_closer: str = ANSWER_CLOSER
    build_bcq: bool = True
    build_ncq: bool = True
    # Seed of the draws (teacher and student candidate, candidate order). ours: 0
    seed: int = 0

    def __post_init__(self):
        for name in ("bcq_instruction", "ncq_instruction"):
            if _CONTROL_TOKENS.search(getattr(self, name)):
                raise ValueError(f"zppo.reformulation.{name} must not contain control tokens or media placeholders")
        if "{answers}" not in self.ncq_instruction:
            raise ValueError("zppo.reformulation.ncq_instruction must contain {answers} (the wrong answers' list)")
        if self.seed < 0:
            raise ValueError("zppo.reformulation.seed must be >= 0")


@dataclass(frozen=True)
class Tokenization:
    """How the caller counts tokens and decodes them (the rollout's tokenizer, or a stand-in in tests)."""

    decode: Callable[[Sequence[int]], str]
    count_text_tokens: Callable[[str], int]
    encode: Callable[[str], Sequence[int]] | None = None

    @classmethod
    def for_tokenizer(cls, tokenizer) -> Tokenization:
        """From a Hugging Face tokenizer: its own ``decode`` (special tokens kept) and ``encode`` (none added)."""
        return cls(
            decode=lambda ids: tokenizer.decode(list(ids), skip_special_tokens=False),
            count_text_tokens=lambda text: len(tokenizer.encode(text, add_special_tokens=False)),
            encode=lambda text: tokenizer.encode(text, add_special_tokens=False),
        )


@dataclass(frozen=True)
class Candidate:
    """A response as it goes into a ``<candidate>`` block: its (compressed) text, its source and its answer."""

    text: str
    source: str  # TEACHER or STUDENT
    answer: str  # the original response's parsed final answer (kept by compression)
    index: int = -1  # which rollout of its group it came from (-1: unknown)


@dataclass(frozen=True)
class CandidateSet:
    """A hard question and this step's candidates for it.

    ``prompt`` is the row's original chat messages; ``prompt_length`` the processor's length of that prompt.
    ``teacher``: correct teacher candidates (the BCQ pool); ``student``: wrong student candidates (compressed);
    ``wrong_answers``: the parsed final answers of ALL wrong rollouts of the plain group (NCQ lists them even for
    a rollout whose compression failed).
    """

    question_id: Any
    prompt: Sequence[Mapping[str, Any]]
    prompt_length: int
    ground_truth: Any
    teacher: Sequence[Candidate] = ()
    student: Sequence[Candidate] = ()
    wrong_answers: Sequence[str] = ()


@dataclass
class ReformulatedPrompt:
    """One built prompt (BCQ, NCQ, or a baseline's): new messages, same question id and ground truth."""

    question_id: Any
    kind: str
    messages: list[dict]
    ground_truth: Any
    num_candidates: int
    estimated_length: int
    candidates: tuple[Candidate, ...] = ()  # in the order shown
    correct_position: str | None = None  # BCQ: "A" (first block) or "B" (second), where the teacher's one is
    num_truncated: int = 0  # the Hint baseline's hint cut to fit
    teacher_index: int | None = None  # which teacher response a baseline used
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
    teacher_solvable: int = 0  # questions with at least one correct teacher candidate

    def confirm_lengths(self, measured_lengths: Sequence[int]) -> list[ReformulatedPrompt]:
        """Final check: ``measured_lengths[i]`` is the processor's length of ``prompts[i]``.

        Prompts over ``max_prompt_length`` move to ``skipped`` (reason ``skipped_for_length``) and are returned;
        the rest keep their measured length.
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
        ncq = [p for p in self.prompts if p.kind == NCQ]
        values = {
            "teacher_solvable_frac": self.teacher_solvable / self.num_questions if self.num_questions else 0.0,
            "bcq_built": len(bcq),
            "ncq_built": len(ncq),
            "ncq_candidates_mean": float(np.mean([p.num_candidates for p in ncq])) if ncq else 0.0,
            "skipped_for_length": self.count(reason=SKIPPED_FOR_LENGTH),
            "bcq_skipped_for_length": self.count(BCQ, SKIPPED_FOR_LENGTH),
            "ncq_skipped_for_length": self.count(NCQ, SKIPPED_FOR_LENGTH),
            "no_teacher_candidate": self.count(reason=NO_TEACHER_CANDIDATE),
            "no_wrong_candidate": self.count(reason=NO_WRONG_CANDIDATE),
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
    (``<|im_<think>start|>``). Only ever shortens the text.
    """
    # Every pattern starts with "<": a text without one has nothing to remove (checked at C speed).
    while "<" in text:
        # A think tag becomes a line break so the reasoning and the answer after it do not run together.
        cleaned = _CONTROL_TOKENS.sub("", _THINK_TAG.sub("\n", text))
        if cleaned == text:
            break
        text = cleaned
    return text.strip()


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


def unique_in_order(values: Sequence[str]) -> list[str]:
    """``values`` without repeats (compared after stripping white space), first occurrence kept."""
    seen, out = set(), []
    for value in values:
        key = value.strip()
        if key and key not in seen:
            seen.add(key)
            out.append(key)
    return out


def candidate_blocks(candidates: Sequence[Candidate]) -> str:
    """The ``<candidate>`` blocks of Figs 17-18, one per candidate, in order."""
    return "\n".join(f"<candidate>\n{clean_candidate_text(c.text)}\n</candidate>" for c in candidates)


def bcq_content(question: str, pair: Sequence[Candidate], config: ReformulationConfig) -> str:
    """Fig. 17: question, blank line, instruction, the two candidate blocks, then the closer."""
    return f"{question}\n\n{config.bcq_instruction}\n{candidate_blocks(pair)}\n\n{config.answer_closer}"


def ncq_content(question: str, wrong_answers: Sequence[str], candidates: Sequence[Candidate],
                config: ReformulationConfig) -> str:
    """Fig. 18: question, blank line, the wrong answers and instruction, a block per wrong rollout, the closer. The
    answers are cleaned as the candidates are (a garbled student answer can hold a chat-control token or a media
    placeholder: the first would end the user turn early, the second break the image count)."""
    cleaned = [clean_candidate_text(answer) for answer in wrong_answers]
    answers = ", ".join(f"\\boxed{{{answer}}}" for answer in unique_in_order(cleaned))
    instruction = config.ncq_instruction.replace("{answers}", answers)
    return f"{question}\n\n{instruction}\n{candidate_blocks(candidates)}\n\n{config.answer_closer}"


# ----------------------------------------------------------------------------------------------------------
# The builder
# ----------------------------------------------------------------------------------------------------------
def _build(question: CandidateSet, kind: str, content_of: Callable[[str], str], shown: Sequence[Candidate],
           tokens: Tokenization | None, config: ReformulationConfig) -> ReformulatedPrompt:
    messages, user_index, content = _user_turn(question.prompt)
    question_text, _ = _question_part(content, config.answer_closer)
    new_content = content_of(question_text)
    if _count_media(new_content) != _count_media(content):  # cannot happen: candidates are cleaned
        raise AssertionError("reformulation changed the number of media placeholders")
    messages[user_index]["content"] = new_content
    # The processor's length of the original prompt, changed by the text's (the caller's measure is exact).
    # Skipped (tokens=None) when the caller measures every prompt anyway: counting twice costs as much again.
    estimated = 0 if tokens is None else (
        question.prompt_length + tokens.count_text_tokens(new_content) - tokens.count_text_tokens(content))
    return ReformulatedPrompt(
        question_id=question.question_id,
        kind=kind,
        messages=messages,
        ground_truth=question.ground_truth,
        num_candidates=len(shown),
        estimated_length=estimated,
        candidates=tuple(shown),
    )


def reformulate(
    questions: Sequence[CandidateSet],
    step: int,
    tokens: Tokenization,
    max_prompt_length: int,
    config: ReformulationConfig | None = None,
    measure_prompt: Callable[[ReformulatedPrompt], int] | None = None,
) -> ReformulationResult:
    """Build this step's BCQ and NCQ prompts for ``questions`` (the hard ones; the caller decides hardness).

    Per question: BCQ when it has a teacher candidate and a student candidate; NCQ when it has a student
    candidate. What cannot be built is recorded in ``skipped``. ``measure_prompt``, when given, is the final
    check: the real processor's length of a built prompt (over ``max_prompt_length``: skipped).
    """
    config = config or ReformulationConfig()
    result = ReformulationResult(max_prompt_length=int(max_prompt_length), num_questions=len(questions))
    counting = tokens if measure_prompt is None else None

    for question in questions:
        teacher, student = list(question.teacher), list(question.student)
        result.teacher_solvable += bool(teacher)
        if not student:
            result.skipped.append(SkippedReformulation(question.question_id, None, NO_WRONG_CANDIDATE))
            continue

        if config.build_bcq:
            if not teacher:
                result.skipped.append(SkippedReformulation(question.question_id, BCQ, NO_TEACHER_CANDIDATE))
            else:
                rng = _question_rng(config.seed, step, question.question_id, purpose=0)
                pair = [teacher[int(rng.integers(len(teacher)))], student[int(rng.integers(len(student)))]]
                correct_first = bool(rng.integers(2))
                shown = pair if correct_first else pair[::-1]
                built = _build(question, BCQ, lambda q, s=shown: bcq_content(q, s, config), shown, counting, config)
                built.correct_position = "A" if correct_first else "B"
                result.prompts.append(built)

        if config.build_ncq:
            answers = list(question.wrong_answers) or [c.answer for c in student]
            result.prompts.append(
                _build(question, NCQ, lambda q, a=answers, s=student: ncq_content(q, a, s, config), student,
                       counting, config)
            )

    if measure_prompt is not None:
        result.confirm_lengths([measure_prompt(p) for p in result.prompts])
    else:
        result.confirm_lengths([p.estimated_length for p in result.prompts])
    return result
