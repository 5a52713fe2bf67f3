"""Converters of the text (LLM) benchmarks (App. B.2, Tab. 6). Each reads the published fields and yields ``Item``s
(see common.py); the expected layout of each local copy is in docs/evaluation.md."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator
from pathlib import Path

from .common import (
    Item,
    Source,
    SourceError,
    as_list,
    clean_option,
    field_of,
    letter_of,
    strip_format_instructions,
)


def aime(source: Source) -> Iterator[Item]:
    """AIME: integer answers 0-999. Any of the common releases (problem/question, answer, id / problem_idx):
    HuggingFaceH4/aime_2024, opencompass/AIME2025 (aime2025-I.jsonl, aime2025-II.jsonl: question, answer; the id is
    ``<file>-<n>``), MathArena/aime_2026 (problem_idx, problem, answer)."""
    counts: dict[str, int] = {}
    for record in source.records("**/*.parquet", "**/*.jsonl", "**/*.json"):
        stem = Path(record["_file"]).stem
        number = counts[stem] = counts.get(stem, 0) + 1
        qid = field_of(record, "id", "ID", "unique_id", "problem_idx", required=False, default=None)
        yield Item(
            qid=str(qid) if qid is not None else f"{stem}-{number}",
            question=str(field_of(record, "problem", "Problem", "question", "Question")),
            answer=str(field_of(record, "answer", "Answer")).strip(),
            reward_type="numeric",
            category=stem if qid is None else "",
        )


def math500(source: Source) -> Iterator[Item]:
    """MATH-500 (test.jsonl: problem, answer, subject, level, unique_id); symbolic answers: the math verifier."""
    for number, record in enumerate(source.records("**/test.jsonl", "**/*.jsonl", "**/*.parquet")):
        yield Item(
            qid=str(field_of(record, "unique_id", "id", required=False, default=number)),
            question=str(field_of(record, "problem")),
            answer=str(field_of(record, "answer")),
            reward_type="math",
            category=str(record.get("subject") or ""),
        )


def gpqa_diamond(source: Source) -> Iterator[Item]:
    """GPQA-Diamond (gpqa_diamond.csv): the correct answer and three distractors, shuffled with a seed drawn from
    the record id, so the same record always gets the same option order (and the gold letter is spread)."""
    for record in source.records("**/gpqa_diamond.csv", "**/*diamond*.csv", "**/*diamond*.parquet"):
        qid = str(field_of(record, "Record ID", "id"))
        correct = clean_option(field_of(record, "Correct Answer"))
        options = [correct] + [clean_option(field_of(record, f"Incorrect Answer {i}")) for i in (1, 2, 3)]
        seed = int(hashlib.sha256(qid.encode()).hexdigest()[:8], 16)
        random.Random(seed).shuffle(options)
        yield Item(
            qid=qid,
            question=str(field_of(record, "Question")).strip(),
            answer="ABCD"[options.index(correct)],
            reward_type="multiple_choice",
            choices=options,
            category=str(record.get("High-level domain") or ""),
        )


def mmlu_pro(source: Source) -> Iterator[Item]:
    """MMLU-Pro test split (question_id, question, options up to 10, answer letter, category)."""
    for record in source.records("**/test-*.parquet", "**/test*.parquet", "**/test*.jsonl"):
        options = [clean_option(o) for o in field_of(record, "options")]
        where = f"{record['_file']} question {record.get('question_id')}"
        yield Item(
            qid=str(field_of(record, "question_id")),
            question=strip_format_instructions(str(field_of(record, "question"))),
            answer=letter_of(field_of(record, "answer"), options, where),
            reward_type="multiple_choice",
            choices=options,
            category=str(record.get("category") or ""),
        )


def _subject_of(path: Path, split: str) -> str:
    """The subject (config) folder of a per-subject file: ``<subject>/<file>`` or ``<subject>/<split>/<file>``."""
    return path.parent.parent.name if path.parent.name == split else path.parent.name


def ceval(source: Source) -> Iterator[Item]:
    """C-Eval val, all 52 subjects (ceval/ceval-exam: the release zip's ``val/<subject>_val.csv``, or the parquet
    conversion's ``<subject>/val/*.parquet`` / ``<subject>/ceval-exam-val.parquet``): id, question, A-D, answer
    letter. ``subset`` = the subject."""
    for record in source.records("val/*_val.csv", "**/*_val.csv", "*/val/*.parquet", "*/ceval-exam-val.parquet",
                                 "**/val-*.parquet"):
        path = Path(record["_file"])
        subject = _subject_of(path, "val") if path.suffix == ".parquet" else path.stem.removesuffix("_val")
        options = [clean_option(field_of(record, letter)) for letter in "ABCD"]
        qid = f"{subject}-{field_of(record, 'id')}"
        yield Item(qid, str(field_of(record, "question")).strip(),
                   letter_of(field_of(record, "answer"), options, f"{path} question {qid}", "letter"),
                   "multiple_choice", choices=options, category=subject, subset=subject)


def hle(source: Source) -> Iterator[Item]:
    """Humanity's Last Exam (cais/hle test: id, question, image (a data URI, or empty), answer, answer_type
    exactMatch | multipleChoice, category). Scored by the official CAIS judge (BenchJudge, Fig. 13) alone: it reads
    ``judge_question`` and ``gold_answers``; ``reward_type`` only matters to the training reward."""
    for record in source.records("**/test-*.parquet", "**/test.parquet"):
        qid = str(field_of(record, "id"))
        question = str(field_of(record, "question"))
        answer = str(field_of(record, "answer")).strip()
        answer_type = str(record.get("answer_type") or "")
        image = record.get("image")
        images = [image] if image not in (None, "") else []
        category = str(record.get("category") or "")
        yield Item(qid, question, answer, "multiple_choice" if answer_type == "multipleChoice" else "math", images,
                   category=category, subset=category,
                   fields={"judge": "hle", "judge_question": question, "question_type": answer_type,
                           "gold_answers": [answer]})


def imo_answerbench(source: Source) -> Iterator[Item]:
    """IMO-AnswerBench (OpenEvals/IMO-AnswerBench; the release's columns Problem ID, Problem, Short Answer,
    Category, Subcategory, Source, or their snake_case forms): short answers, often expressions."""
    for number, record in enumerate(source.records("**/*.parquet", "**/*.csv", "**/*.jsonl", "**/*.json")):
        qid = field_of(record, "Problem ID", "problem_id", "id", required=False, default=number)
        category = str(field_of(record, "Category", "category", required=False, default=""))
        yield Item(str(qid), str(field_of(record, "Problem", "problem", "question")),
                   str(field_of(record, "Short Answer", "short_answer", "answer")).strip(), "math",
                   category=category, subset=category)


def _indexed_choice(record: dict, qid: str, subject: str, where: str) -> Item:
    options = [clean_option(o) for o in as_list(field_of(record, "choices"))]
    return Item(qid, str(field_of(record, "question")).strip(),
                letter_of(field_of(record, "answer"), options, where, "index"), "multiple_choice",
                choices=options, category=subject, subset=subject)


def mmlu(source: Source) -> Iterator[Item]:
    """MMLU test, all subjects (cais/mmlu: ``all/test-*.parquet``, else the per-subject folders): question,
    subject, choices, answer index."""
    counts: dict[str, int] = {}
    for record in source.records("all/test-*.parquet", "**/test-*.parquet"):
        subject = str(record.get("subject") or Path(record["_file"]).parent.name)
        number = counts[subject] = counts.get(subject, -1) + 1
        qid = f"{subject}-{number}"
        yield _indexed_choice(record, qid, subject, f"{record['_file']} question {qid}")


def mmlu_redux(source: Source) -> Iterator[Item]:
    """MMLU-Redux 2.0, all 57 subjects (edinburgh-dawg/mmlu-redux-2.0, saved with ``datasets``: one
    ``<subject>/data-*.arrow`` per subject, or the parquet conversion's ``<subject>/test/*.parquet``): question,
    choices, answer index, error_type, ... Only the questions the re-annotation found correct (error_type "ok") are
    kept, the benchmark's clean subset (*ours*: the paper does not say which rows it scores)."""
    counts: dict[str, int] = {}
    for record in source.records("*/data-*.arrow", "**/*.arrow", "*/test/*.parquet", "**/test-*.parquet"):
        subject = _subject_of(Path(record["_file"]), "test")
        number = counts[subject] = counts.get(subject, -1) + 1
        if str(record.get("error_type") or "ok") != "ok":
            continue
        qid = f"{subject}-{number}"
        yield _indexed_choice(record, qid, subject, f"{record['_file']} question {qid}")


def multichallenge(source: Source) -> Iterator[Item]:
    """MultiChallenge (ScaleAI/MultiChallenge; the release's QUESTION_ID, AXIS, CONVERSATION, TARGET_QUESTION,
    PASS_CRITERIA): a multi-turn conversation that ends with a user turn. The earlier turns become the prompt's
    earlier messages and the closer goes after the last user turn; the official YES/NO verifier (Fig. 11) reads
    ``target_question`` and passes the answer when its verdict equals ``pass_criteria``."""
    for record in source.records("**/*.jsonl", "**/*.parquet", "**/*.json"):
        qid = str(field_of(record, "QUESTION_ID", "question_id", "id"))
        turns = as_list(field_of(record, "CONVERSATION", "conversation"))
        if not turns or not isinstance(turns[-1], dict) or turns[-1].get("role") != "user":
            raise SourceError(f"{record['_file']} question {qid}: the conversation does not end with a user turn")
        axis = str(field_of(record, "AXIS", "axis", required=False, default=""))
        target = str(field_of(record, "TARGET_QUESTION", "target_question"))
        passes = str(field_of(record, "PASS_CRITERIA", "pass_criteria")).strip().upper()
        yield Item(qid, str(turns[-1]["content"]), passes, "llm_judge", category=axis, subset=axis,
                   history=[{"role": t["role"], "content": t["content"]} for t in turns[:-1]],
                   fields={"judge": "multichallenge", "axis": axis, "target_question": target,
                           "pass_criteria": passes})
