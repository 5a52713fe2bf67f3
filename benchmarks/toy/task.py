"""The toy task: count in steps mod 100, answered step by step.

Question ``Count 5 numbers from 37 in steps of 8, mod 100.`` -> response
``<think>37 45 53 61 69</think> \\boxed{3745536169}``: each number is the previous one plus the step, mod 100,
always written with two digits. The answer is multi-token and built step by step from the question (each number
from the previous one and the step), so a rollout on a BCQ prompt exercises the same conditionals as one on the
plain prompt; a count of L numbers has 100 x 9 possible answers per question shape and cannot be guessed.

Difficulty is the count. Easy questions (``easy_lengths``) have counts the plain warm-up shows; hard ones
(``hard_lengths``) are longer than anything the plain warm-up shows, so the warmed-up student does not know when
to stop and cannot reach them alone. The candidate-format warm-up shows BCQ prompts (built by
``recipe.zppo.algo.reformulation.reformulate``, exactly what RL builds) for all counts, on fresh questions, so the
student learns to read a correct candidate without meeting the RL or held-out questions. The toy has no teacher
server, so its candidates are uncompressed: each is a raw response (cleaned of its think tags), not a Fig. 16
compression; responses are a few dozen tokens, well under compression's 512-token bound.

A question is ``(start, step, count)``: start 0-99, step 1-9, so 900 questions per count. Question sets
(``make_splits``): RL easy/hard and held-out easy/hard, pairwise disjoint; warm-up questions are drawn fresh each
time and never one of those (``sample_question`` with ``reserved``). Everything is seeded.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from data_prep.tiny.datasets import _qid, _row, _write_parquet, text_schema, user_content
from recipe.zppo.algo.answer_format import extract_final_answer
from recipe.zppo.algo.reformulation import (
    BCQ,
    NCQ,
    STUDENT,
    TEACHER,
    Candidate,
    CandidateSet,
    ReformulationConfig,
    Tokenization,
    clean_candidate_text,
    reformulate,
)

SOURCE = "toy_count"
MODULUS = 100

Question = tuple[int, int, int]  # (start, step, count)
_QUESTION_RE = re.compile(r"^Count (\d+) numbers from (\d+) in steps of (\d+), mod 100\.$")


def question_text(question: Question) -> str:
    start, step, count = question
    return f"Count {count} numbers from {start:02d} in steps of {step}, mod 100."


def parse_question(text: str) -> Question:
    """The question of a question text (the user turn, with or without the answer closer)."""
    first_line = text.strip().splitlines()[0]
    match = _QUESTION_RE.match(first_line)
    if not match:
        raise ValueError(f"not a toy question: {first_line!r}")
    count, start, step = (int(g) for g in match.groups())
    return start, step, count


def sequence(question: Question) -> list[int]:
    start, step, count = question
    return [(start + i * step) % MODULUS for i in range(count)]


def answer_of(question: Question) -> str:
    return "".join(f"{n:02d}" for n in sequence(question))


def format_response(numbers: Sequence[int]) -> str:
    """A response in the project's answer format: the numbers in the think block, joined in the box."""
    return ("<think>" + " ".join(f"{n:02d}" for n in numbers) + "</think> \\boxed{"
            + "".join(f"{n:02d}" for n in numbers) + "}")


def solution(question: Question) -> str:
    """The correct worked solution (what the teacher responds)."""
    return format_response(sequence(question))


def wrong_solution(question: Question, rng: random.Random) -> str:
    """A well-formed wrong response, like a student's: stops early, slips once (carrying on from the slip), or
    uses a wrong step."""
    start, step, count = question
    numbers = sequence(question)
    kind = rng.choice(["short", "slip", "step"] if count > 1 else ["slip"])
    if kind == "short":
        numbers = numbers[: rng.randint(1, count - 1)]
    elif kind == "slip":
        at = rng.randrange(count)
        numbers[at] = (numbers[at] + rng.choice([-10, -2, -1, 1, 2, 10])) % MODULUS
        for i in range(at + 1, count):
            numbers[i] = (numbers[i - 1] + step) % MODULUS
    else:
        other = rng.choice([s for s in range(1, 10) if s != step])
        numbers = sequence((start, other, count))
    return format_response(numbers)


@dataclass(frozen=True)
class TaskSpec:
    """Lengths and set sizes of the task."""

    easy_lengths: tuple[int, ...] = (3, 4)
    hard_lengths: tuple[int, ...] = (6, 7)
    plain_warmup_lengths: tuple[int, ...] = (2, 3, 4)  # the plain warm-up never shows a hard length
    candidate_warmup_lengths: tuple[int, ...] = (2, 3, 4, 5, 6, 7)
    rl_easy: int = 32
    rl_hard: int = 32
    heldout_easy: int = 64
    heldout_hard: int = 64

    def __post_init__(self):
        if set(self.hard_lengths) & set(self.plain_warmup_lengths):
            raise ValueError("hard lengths must not be shown by the plain warm-up")
        if not set(self.easy_lengths) <= set(self.plain_warmup_lengths):
            raise ValueError("easy lengths must be lengths the plain warm-up shows")


def sample_question(rng: random.Random, lengths: Sequence[int], reserved: Iterable[Question] = ()) -> Question:
    """A random question whose count is one of ``lengths``, not in ``reserved``."""
    reserved = reserved if isinstance(reserved, (set, frozenset)) else set(reserved)
    for _ in range(10_000):
        question = (rng.randrange(MODULUS), rng.randint(1, 9), rng.choice(lengths))
        if question not in reserved:
            return question
    raise RuntimeError(f"no free question of lengths {tuple(lengths)}: all are reserved")


def make_splits(spec: TaskSpec, seed: int = 0) -> dict[str, list[Question]]:
    """RL and held-out questions, easy and hard, unique and pairwise disjoint."""
    rng = random.Random(f"toy-splits-{seed}")
    taken: set[Question] = set()
    splits = {}
    for name, lengths, count in (
        ("rl_easy", spec.easy_lengths, spec.rl_easy),
        ("rl_hard", spec.hard_lengths, spec.rl_hard),
        ("heldout_easy", spec.easy_lengths, spec.heldout_easy),
        ("heldout_hard", spec.hard_lengths, spec.heldout_hard),
    ):
        items = []
        while len(items) < count:
            question = sample_question(rng, lengths, taken)
            taken.add(question)
            items.append(question)
        splits[name] = items
    return splits


def reserved_questions(splits: dict[str, list[Question]]) -> frozenset[Question]:
    return frozenset(d for items in splits.values() for d in items)


def rl_row(question: Question, split: str, index: int) -> dict:
    """A trainer row (data_prep/row_schema.py) with the correct worked solution as its teacher response."""
    text = question_text(question)
    return _row(SOURCE, "math", text, answer_of(question), "string_match", split, index, _qid(SOURCE, text),
                [solution(question)])


def write_rl_data(splits: dict[str, list[Question]], out_dir: Path) -> dict[str, Path]:
    """``train.parquet`` (RL easy + hard, interleaved) and ``val.parquet`` (held-out easy + hard)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    train = [d for pair in zip(splits["rl_easy"], splits["rl_hard"]) for d in pair]
    train += splits["rl_easy"][len(splits["rl_hard"]):] + splits["rl_hard"][len(splits["rl_easy"]):]
    heldout = splits["heldout_easy"] + splits["heldout_hard"]
    paths = {}
    for name, items in (("train", train), ("val", heldout)):
        rows = [rl_row(d, name, i) for i, d in enumerate(items)]
        paths[name] = out_dir / f"{name}.parquet"
        _write_parquet(rows, text_schema(), paths[name])
    return paths


# ------------------------------------------------------------------------------------------- warm-up examples


def plain_messages(question: Question) -> list[dict]:
    """The chat messages of a plain question, as the RL rows hold them."""
    return [{"role": "user", "content": user_content(question_text(question))}]


def candidate_prompts(
    question: Question,
    rng: random.Random,
    tokens: Tokenization,
    max_prompt_length: int,
    config: ReformulationConfig | None = None,
    num_wrong: int = 2,
) -> dict[str, list[dict]]:
    """BCQ and NCQ messages for ``question``, built by the project's reformulation from wrong "student" responses
    and the correct "teacher" response, by the builder the trainer uses for a hard question (`reformulate`).

    The candidates are uncompressed (the toy has no teacher server): each ``Candidate`` is a raw response,
    cleaned (``clean_candidate_text``), with its parsed final answer; NCQ lists those answers as the wrong ones.
    Returns ``{"bcq": messages, "ncq": messages}`` (a kind is missing if the reformulation skipped it).
    """
    wrong: list[str] = []
    for _ in range(20 * num_wrong):
        text = wrong_solution(question, rng)
        if text not in wrong:
            wrong.append(text)
        if len(wrong) == num_wrong:
            break
    messages = plain_messages(question)
    students = [Candidate(clean_candidate_text(text), STUDENT, extract_final_answer(text), index=i)
                for i, text in enumerate(wrong)]
    right = solution(question)
    candidates = CandidateSet(
        question_id=question_text(question),
        prompt=messages,
        prompt_length=tokens.count_text_tokens(messages[0]["content"]) + 8,  # + the chat template's few tokens
        ground_truth=answer_of(question),
        teacher=[Candidate(clean_candidate_text(right), TEACHER, extract_final_answer(right), index=0)],
        student=students,
        wrong_answers=[c.answer for c in students],
    )
    result = reformulate([candidates], step=rng.randrange(1 << 30), tokens=tokens,
                         max_prompt_length=max_prompt_length, config=config)
    return {p.kind: p.messages for p in result.prompts}


@dataclass(frozen=True)
class WarmupMix:
    """What one warm-up example is: plain (short lengths), BCQ (all lengths) or NCQ (short lengths) prompts."""

    plain: float = 0.5
    bcq: float = 0.35
    ncq: float = 0.15


def warmup_examples(
    count: int,
    rng: random.Random,
    spec: TaskSpec,
    reserved: frozenset[Question],
    tokens: Tokenization,
    max_prompt_length: int,
    mix: WarmupMix = WarmupMix(),
    config: ReformulationConfig | None = None,
) -> list[tuple[str, list[dict], str]]:
    """``count`` fresh (kind, messages, target response) triples; the target is always the correct solution.

    An NCQ asks the student to solve alone, so it uses only the plain warm-up's lengths; a BCQ shows the
    answer among the candidates, so it covers every length.
    """
    out = []
    kinds, weights = ("plain", BCQ, NCQ), (mix.plain, mix.bcq, mix.ncq)
    while len(out) < count:
        kind = rng.choices(kinds, weights)[0]
        lengths = spec.candidate_warmup_lengths if kind == BCQ else spec.plain_warmup_lengths
        question = sample_question(rng, lengths, reserved)
        if kind == "plain":
            out.append((kind, plain_messages(question), solution(question)))
            continue
        built = candidate_prompts(question, rng, tokens, max_prompt_length, config)
        if kind in built:
            out.append((kind, built[kind], solution(question)))
    return out
