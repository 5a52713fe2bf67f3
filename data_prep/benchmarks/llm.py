"""Converters of the text (LLM) benchmarks. Each reads the published fields and yields ``Item``s (see common.py);
the expected layout of each local copy is in docs/evaluation.md."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator

from .common import Item, Source, clean_option, field_of, letter_of, strip_format_instructions


def aime(source: Source) -> Iterator[Item]:
    """AIME 2024 / 2025: integer answers 0-999. Any of the common releases (problem/question, answer, id)."""
    for number, record in enumerate(source.records("**/*.parquet", "**/*.jsonl", "**/*.json")):
        yield Item(
            qid=str(field_of(record, "id", "ID", "unique_id", required=False, default=number)),
            question=str(field_of(record, "problem", "Problem", "question", "Question")),
            answer=str(field_of(record, "answer", "Answer")).strip(),
            reward_type="numeric",
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
