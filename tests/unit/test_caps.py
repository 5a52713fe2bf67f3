"""Algorithm 1's sizes and caps (recipe/zppo/algo/caps.py) on hand-made accuracies."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from recipe.zppo.algo.caps import (
    admits,
    aug_cap,
    capped_reformulation,
    fraction_of,
    hardest_first,
    post_cap,
    pre_cap,
    replay_count,
)
from recipe.zppo.algo.reformulation import (
    BCQ,
    NCQ,
    STUDENT,
    TEACHER,
    Candidate,
    CandidateSet,
    ReformulationConfig,
    Tokenization,
)


@dataclass(frozen=True)
class Instance:
    question_id: str
    kind: str


def test_fractions_of_the_new_questions_round_half_up():
    # The paper's sizes (Tab. 8: 384 new questions, rho 0.25) and the CPU preset's (8).
    assert fraction_of(0.25, 384) == 96 and fraction_of(0.25, 8) == 2
    assert fraction_of(0.25, 2) == 1 and fraction_of(0.25, 10) == 3  # 0.5 and 2.5 round up (round() gives 0, 2)
    assert fraction_of(0.25, 1) == 0 and fraction_of(0.25, 3) == 1  # 0.25 and 0.75
    assert fraction_of(0.35, 10) == 4  # exactly 3.5 from the decimal ratio (0.35 * 10 is 3.4999... in floats)
    assert fraction_of(0.0, 100) == 0 and fraction_of(1.0, 7) == 7
    for bad in ((-0.1, 4), (0.25, -1), (float("nan"), 4)):
        with pytest.raises(ValueError):
            fraction_of(*bad)


def test_replay_count_is_the_rounded_fraction_at_most_the_buffer():
    assert replay_count(384, 0.25, buffer_size=10_000) == 96
    assert replay_count(8, 0.25, buffer_size=10) == 2 and replay_count(8, 0.25, buffer_size=1) == 1
    assert replay_count(8, 0.25, buffer_size=0) == 0 and replay_count(10, 0.25, buffer_size=5) == 3
    assert aug_cap(384, 0.25) == 96 and aug_cap(8, 0.25) == 2 and aug_cap(2, 0.25) == 1


def test_hardest_first_ascending_accuracy_with_a_seeded_tie_break():
    accuracy = {"a": 0.375, "b": 0.0, "c": 0.125, "d": 0.0, "e": 0.0, "f": 0.125}
    order = hardest_first(accuracy, seed=0, step=3)
    assert [accuracy[q] for q in order] == sorted(accuracy.values())
    assert set(order[:3]) == {"b", "d", "e"} and set(order[3:5]) == {"c", "f"} and order[5] == "a"
    # Reproducible, and independent of the order the questions come in.
    assert hardest_first(dict(reversed(accuracy.items())), seed=0, step=3) == order
    # The tie-break is a draw: over steps (and seeds) each tied question comes first sometimes.
    firsts = {hardest_first(accuracy, seed=0, step=s)[0] for s in range(60)}
    assert firsts == {"b", "d", "e"}
    assert {hardest_first(accuracy, seed=s, step=3)[0] for s in range(60)} == {"b", "d", "e"}


def test_pre_cap_keeps_the_cap_hardest_admissible_questions():
    accuracy = {"q1": 0.25, "q2": 0.0, "q3": 0.125, "q4": 0.375, "q5": 0.0}
    # q5 admits nothing (say, every compression of its wrong rollouts failed): it takes no slot.
    outcome = pre_cap(accuracy, admissible={"q1", "q2", "q3", "q4"}, cap=2, seed=0, step=1)
    assert outcome.kept == ["q2", "q3"] and outcome.dropped == ["q1", "q4"] and outcome.inadmissible == ["q5"]
    # A predicate works as well; a cap larger than the hard questions keeps every admissible one.
    wide = pre_cap(accuracy, admissible=lambda q: q != "q5", cap=10, seed=0, step=1)
    assert wide.kept == ["q2", "q3", "q1", "q4"] and wide.dropped == []
    assert pre_cap(accuracy, accuracy, cap=0, seed=0, step=1).kept == []
    with pytest.raises(ValueError):
        pre_cap(accuracy, accuracy, cap=-1, seed=0, step=1)


def test_pre_cap_tie_at_the_cap_is_broken_by_the_seeded_draw():
    accuracy = {f"q{i}": 0.0 for i in range(6)}
    kept = [tuple(pre_cap(accuracy, accuracy, cap=2, seed=0, step=s).kept) for s in range(40)]
    assert all(len(k) == 2 for k in kept) and len(set(kept)) > 5  # not always the same two (nor input order)
    assert kept == [tuple(pre_cap(accuracy, accuracy, cap=2, seed=0, step=s).kept) for s in range(40)]


def test_post_cap_walks_hardest_first_bcq_then_ncq_and_stops_at_the_cap():
    ranked = ["hardest", "second", "third"]
    built = [Instance("third", NCQ), Instance("second", NCQ), Instance("hardest", NCQ), Instance("second", BCQ),
             Instance("hardest", BCQ), Instance("third", BCQ)]
    kept, dropped = post_cap(ranked, built, cap=4)
    assert kept == [Instance("hardest", BCQ), Instance("hardest", NCQ), Instance("second", BCQ),
                    Instance("second", NCQ)]
    assert dropped == [Instance("third", BCQ), Instance("third", NCQ)]
    # Nothing to prune when the instances fit.
    assert post_cap(ranked, built, cap=6) == (sorted(built, key=lambda p: (ranked.index(p.question_id),
                                                                            p.kind != BCQ)), [])
    assert post_cap(ranked, [], cap=3) == ([], [])


def test_post_cap_one_slot_left_keeps_bcq_and_drops_ncq():
    # Algorithm 1 line 14: "when only one slot remains in a question that has both, BCQ is kept and NCQ is dropped".
    ranked = ["a", "b"]
    built = [Instance("a", BCQ), Instance("a", NCQ), Instance("b", BCQ), Instance("b", NCQ)]
    kept, dropped = post_cap(ranked, built, cap=3)
    assert kept == built[:3] and dropped == [Instance("b", NCQ)]
    # With one slot for a question that has only NCQ, its NCQ takes it; the walk stops after the cap.
    ncq_only = [Instance("a", BCQ), Instance("a", NCQ), Instance("b", NCQ), Instance("c", BCQ)]
    kept, dropped = post_cap(["a", "b", "c"], ncq_only, cap=3)
    assert kept == ncq_only[:3] and dropped == [Instance("c", BCQ)]
    # An odd cap, every question with both: the last question gets its BCQ only.
    both = [Instance(q, kind) for q in "xyz" for kind in (BCQ, NCQ)]
    assert post_cap(list("xyz"), both, cap=1) == (both[:1], both[1:])


def test_post_cap_refuses_instances_of_questions_not_kept():
    with pytest.raises(ValueError, match="did not keep"):
        post_cap(["a"], [Instance("b", BCQ)], cap=2)


# ----------------------------------------------------------------------------------------------------------
WORDS = Tokenization(decode=lambda ids: " ".join(map(str, ids)), count_text_tokens=lambda text: len(text.split()))


def _question(qid: str, teacher: bool = True, student: int = 2) -> CandidateSet:
    closer = "Answer in \\boxed{}."
    return CandidateSet(
        question_id=qid,
        prompt=[{"role": "user", "content": f"What is {qid}?\n\n{closer}"}],
        prompt_length=6,
        ground_truth="1",
        teacher=[Candidate("T \\boxed{1}", TEACHER, "1")] if teacher else [],
        student=[Candidate(f"S{i} \\boxed{{{i + 2}}}", STUDENT, str(i + 2), i) for i in range(student)],
        wrong_answers=[str(i + 2) for i in range(student)],
    )


def test_admissible_means_a_bcq_or_an_ncq_can_be_built():
    both, ncq = ReformulationConfig(), ReformulationConfig(build_bcq=False)
    bcq_only = ReformulationConfig(build_ncq=False)
    assert admits(_question("a"), both) and admits(_question("a", teacher=False), both)
    assert not admits(_question("a", student=0), both)  # no wrong candidate: neither
    assert admits(_question("a", teacher=False), ncq) and not admits(_question("a", teacher=False), bcq_only)
    assert admits(_question("a"), bcq_only)


def test_capped_reformulation_runs_both_caps_around_the_builder():
    # Six hard questions, cap 3: the pre-cap keeps the 3 hardest admissible ones; they would give 5 instances
    # (one has no teacher candidate); the post-cap keeps the 3 first in walk order.
    questions = [_question("easy", student=1), _question("no-wrong", student=0), _question("mid"),
                 _question("hard-no-teacher", teacher=False), _question("hardest"), _question("spare")]
    accuracy = {"easy": 0.375, "no-wrong": 0.0, "mid": 0.25, "hard-no-teacher": 0.125, "hardest": 0.0,
                "spare": 0.375}
    config = ReformulationConfig(answer_closer="Answer in \\boxed{}.")
    result, report = capped_reformulation(questions, accuracy, cap=3, seed=0, step=2, tokens=WORDS,
                                          max_prompt_length=10_000, config=config)
    assert report.pre.kept == ["hardest", "hard-no-teacher", "mid"]
    assert report.pre.inadmissible == ["no-wrong"] and set(report.pre.dropped) == {"easy", "spare"}
    assert [(p.question_id, p.kind) for p in result.prompts] == [("hardest", BCQ), ("hardest", NCQ),
                                                                 ("hard-no-teacher", NCQ)]
    assert [(p.question_id, p.kind) for p in report.dropped_instances] == [("mid", BCQ), ("mid", NCQ)]
    metrics = report.metrics()
    assert metrics == {"zppo/aug_cap": 3.0, "zppo/aug_questions": 3.0, "zppo/aug_questions_dropped_by_cap": 2.0,
                       "zppo/aug_inadmissible": 1.0, "zppo/aug_dropped_by_cap": 2.0}
    built = result.metrics()
    assert built["zppo/bcq_built"] == 1 and built["zppo/ncq_built"] == 2
    assert built["zppo/no_teacher_candidate"] == 1  # hard-no-teacher's BCQ


def test_a_prompt_over_the_length_budget_is_skipped_and_frees_its_slot():
    questions = [_question("a"), _question("b")]
    accuracy = {"a": 0.0, "b": 0.125}

    def measure(prompt):  # a's BCQ does not fit
        return 999 if (prompt.question_id, prompt.kind) == ("a", BCQ) else 50

    result, report = capped_reformulation(questions, accuracy, cap=2, seed=0, step=1, tokens=WORDS,
                                          max_prompt_length=100, config=ReformulationConfig(), measure_prompt=measure)
    assert [(p.question_id, p.kind) for p in result.prompts] == [("a", NCQ), ("b", BCQ)]
    assert [(p.question_id, p.kind) for p in report.dropped_instances] == [("b", NCQ)]
    assert result.metrics()["zppo/skipped_for_length"] == 1
