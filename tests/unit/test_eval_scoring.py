"""Per-benchmark scoring (recipe/zppo/eval/scoring.py, reward/bench_judges.py) against hand-computed results: ANLS and
OCRBench v2's rules, Exact/Rule+Judge with the truncation fallback, each official judge's prompt and reply rule. The
judge here is a stand-in that records the prompt and answers a canned reply through the real parsers; the live
server is in test_reward_judge_live.py."""

from __future__ import annotations

import pytest

from recipe.zppo.eval import scoring
from recipe.zppo.eval.evaluate import compute_score_with_ids, score_benchmarks
from recipe.zppo.reward import RESULT_KEYS, compute_score
from recipe.zppo.reward import bench_judges as bj
from recipe.zppo.reward.judge import FIG9_TEMPLATE, JudgeResult

JUDGE = {"judge_url": "http://judge.invalid/v1", "judge_model": "judge"}


class StubJudge:
    """Records each prompt; replies with ``reply`` read by the caller's parser (as Judge.ask does)."""

    def __init__(self, reply: str):
        self.reply, self.prompts = reply, []

    def ask(self, prompt, parse):
        self.prompts.append(prompt)
        value = parse(self.reply)
        if value is None:
            return JudgeResult(False, "malformed", "judge_malformed")
        return JudgeResult(float(value) >= 1.0, "verdict", "judge", float(value))

    def judge(self, question, options, response, ground_truth):
        from recipe.zppo.reward.judge import parse_verdict, render_prompt

        return self.ask(render_prompt(question, options, response, ground_truth), parse_verdict)


@pytest.fixture
def stub(monkeypatch):
    def install(reply: str) -> StubJudge:
        judge = StubJudge(reply)
        monkeypatch.setattr("recipe.zppo.reward.judge.get_judge", lambda config: judge)
        monkeypatch.setattr("recipe.zppo.reward.get_judge", lambda config: judge)
        return judge

    return install


# ------------------------------------------------------------------------------------------------ ANLS / OCRBench v2


def test_anls_by_hand():
    # "hello word" vs "hello world": one deletion over 11 characters -> 1 - 1/11
    assert scoring.anls("Hello  Word", ["hello world"]) == pytest.approx(1 - 1 / 11)
    assert scoring.anls("abc", ["xyz"]) == 0.0  # NL = 1 >= 0.5
    # NL exactly 0.5 is not below the threshold: 0; just below it counts
    assert scoring.anls("ab", ["ax"]) == 0.0  # NL = 1/2
    assert scoring.anls("abcd", ["abxy"]) == 0.0  # NL = 2/4 = 0.5
    assert scoring.anls("abcde", ["abcxy"]) == pytest.approx(0.6)  # NL = 2/5
    assert scoring.anls("xyz", ["nope", "XYZ"]) == 1.0  # the best gold
    assert scoring.normalized_levenshtein("kitten", "sitting") == pytest.approx(3 / 7)


def test_ocrbench_v2_rules_by_task_type():
    score = scoring.ocrbench_v2_score
    assert score("text recognition en", "The sign says OPEN today", ["open"]) == (1.0, "ocr_vqa")  # contained
    assert score("text recognition en", "closed", ["open"]) == (0.0, "ocr_vqa")
    long_gold = "the quick brown fox jumps"  # 5 words: the edit-distance branch
    assert score("cognition VQA en", "the quick brown fox jumped", [long_gold])[0] == pytest.approx(1 - 2 / 26)
    assert score("cognition VQA en", "something else entirely here", [long_gold])[0] == 0.0
    assert score("reasoning VQA cn", "答案是北京", ["北京"]) == (1.0, "ocr_vqa")  # short Chinese gold: containment
    assert score("text counting en", "there are 12 words", ["12"]) == (1.0, "ocr_counting")
    assert score("text counting en", "11", ["12"]) == (0.0, "ocr_counting")
    # one word each, no word in common: BLEU, METEOR and F1 are 0; 1 - edit distance 1/4 -> (0.75) / 4
    assert score("full-page OCR en", "abcd", ["abce"]) == (pytest.approx(0.75 / 4), "ocr_page")
    assert score("made-up task en", "x", ["x"]) == (None, "ocr_task_unknown")  # the real ones: test_eval_ocrbench_v2


def test_det_rows_use_the_final_answer_and_no_judge(stub):
    judge = stub('{"verdict": "correct"}')
    info = {"scoring": "det", "metric": "anls", "reward_type": "string_match"}
    result = scoring.score_answer("infovqa", "<think>maybe hello</think> It is \\boxed{Hello World}.", "hello world",
                                  info, **JUDGE)
    assert (result["score"], result["route"], result["reason"], result["pred"]) == (1.0, "det", "anls", "Hello World")
    # without a box, the text after </think>
    near = scoring.score_answer("infovqa", "<think>x</think>hello word", ["hello world"], info, **JUDGE)
    assert near["score"] == pytest.approx(1 - 1 / 11)
    # a truncated answer predicts nothing, even with a box in its reasoning
    cut = scoring.score_answer("infovqa", "<think>\\boxed{hello world} but wait", "hello world", info, **JUDGE)
    assert (cut["score"], cut["truncated"]) == (0.0, 1.0)
    ocr = scoring.score_answer("ocrbench_v2_en", "<think>x</think>\\boxed{12}", "12",
                               {"scoring": "det", "metric": "ocrbench_v2", "ocr_task": "text counting en"}, **JUDGE)
    assert (ocr["score"], ocr["reason"]) == (1.0, "ocr_counting")
    uncovered = scoring.score_answer("ocrbench_v2_en", "<think>x</think>\\boxed{a}", "a",
                                     {"scoring": "det", "metric": "ocrbench_v2", "ocr_task": "text spotting en"})
    assert (uncovered["score"], uncovered["route"], uncovered["reason"]) == (0.0, "det", "ocr_spotting")  # no box
    unknown = scoring.score_answer("ocrbench_v2_en", "<think>x</think>\\boxed{A}", "A",
                                   {"scoring": "det", "metric": "ocrbench_v2", "ocr_task": "cognition VQA en",
                                    "ocr_eval": "no such rule"})
    assert (unknown["score"], unknown["route"], unknown["reason"]) == (0.0, "unsupported", "ocr_eval_unknown")
    # the row's gold_answers list wins over the ground-truth text: an answer that reads like a list stays one answer
    listed = {"scoring": "det", "metric": "anls", "gold_answers": ["[1, 2]"]}
    as_one = scoring.score_answer("infovqa", "<think>x</think>\\boxed{[1, 2]}", "[1, 2]", listed)
    split = scoring.score_answer("infovqa", "<think>x</think>\\boxed{[1, 2]}", "[1, 2]",
                                 {**listed, "gold_answers": None})
    assert (as_one["score"], split["score"]) == (1.0, 0.0)
    assert judge.prompts == []  # Det. never asks the judge


# ------------------------------------------------------------------------------------------------ Exact/Rule + Judge


def test_exact_judge_rows_rule_first_then_the_judge_on_what_it_cannot_resolve(stub):
    judge = stub('{"verdict": "correct"}')
    info = {"scoring": "exact_judge", "reward_type": "multiple_choice", "question": "Which? A. x B. y"}
    right = scoring.score_answer("ai2d", "<think>b</think> \\boxed{B}", "B", info, **JUDGE)
    wrong = scoring.score_answer("ai2d", "<think>b</think> \\boxed{A}", "B", info, **JUDGE)
    assert (right["score"], right["route"], right["judge_calls"]) == (1.0, "grader", 0.0)
    assert (wrong["score"], wrong["route"], wrong["judge_calls"]) == (0.0, "grader", 0.0)  # a letter decides
    assert judge.prompts == []
    # no box at all: the judge gets the whole response (look inside the reasoning), Fig. 9's prompt
    unboxed = scoring.score_answer("ai2d", "<think>it is B</think> I pick the second option.", "B", info, **JUDGE)
    assert (unboxed["score"], unboxed["route"], unboxed["judge_calls"]) == (1.0, "judge", 1.0)
    assert "I pick the second option." in judge.prompts[-1] and "## Ground Truth Answer\nB" in judge.prompts[-1]
    assert judge.prompts[-1].startswith(FIG9_TEMPLATE.split("\n", 1)[0])


def test_a_truncated_answer_goes_to_the_judge_whatever_box_its_reasoning_holds(stub):
    judge = stub('{"verdict": "wrong"}')
    info = {"scoring": "rule_judge", "reward_type": "multiple_choice", "question": "Which?"}
    cut = "<think>first guess \\boxed{B} hmm, let me check again"  # the think block never closes
    result = scoring.score_answer("mathvista", cut, "B", info, **JUDGE)
    assert (result["score"], result["route"], result["truncated"], result["judge_calls"]) == (0.0, "judge", 1.0, 1.0)
    assert cut in judge.prompts[-1]  # the full response, reasoning included
    # the rule alone (training's reward) would have taken that box
    assert compute_score("mathvista", cut.replace("<think>", ""), "B", {"reward_type": "multiple_choice"})["score"] == 1
    # hitting the length limit (the eval agent loop's flag) is truncation too, even with a closed think block
    limited = scoring.score_answer("mathvista", "<think>x</think> \\boxed{B}", "B",
                                   {**info, "response_truncated": True}, **JUDGE)
    assert (limited["route"], limited["truncated"]) == ("judge", 1.0)
    # a box only inside a closed reasoning block is no final answer either: the judge decides
    inner = scoring.score_answer("mathvista", "<think>maybe \\boxed{B}</think> I am not sure.", "B", info, **JUDGE)
    assert (inner["route"], inner["truncated"], inner["judge_calls"]) == ("judge", 0.0, 1.0)
    # without a judge configured, a truncated answer scores 0 (and says why)
    alone = scoring.score_answer("mathvista", cut, "B", info)
    assert (alone["score"], alone["route"], alone["reason"]) == (0.0, "unparseable", "truncated")


# ------------------------------------------------------------------------------------------------ BenchJudge


BENCH_ROWS = {
    # judge: (extra_info, gold, a reply that says correct, a reply that says wrong, a malformed reply)
    "hle": ({"judge_question": "What is 2+2?"}, "4",
            '{"extracted_final_answer": "4", "reasoning": "same", "correct": "yes", "confidence": 90}',
            '{"extracted_final_answer": "5", "reasoning": "differs", "correct": "no", "confidence": 90}',
            "correct: yes"),
    "charxiv_reasoning": ({"judge_question": "Which line is highest?", "inst_category": "2"}, "blue",
                          '{"extracted_answer": "blue", "score": 1}', '{"extracted_answer": "red", "score": 0}',
                          '{"extracted_answer": "blue", "score": 2}'),
    "charxiv_descriptive": ({"judge_question": "What is its title?", "inst_category": "1"}, "Sales",
                            '{"extracted_answer": "Sales", "score": "1"}',
                            '{"extracted_answer": "x", "score": 0}', "score 1"),
    "mmvu": ({"judge_question": "What happens?", "question_type": "open-ended"}, "it melts",
             '{"verdict": "correct"}', '{"verdict": "wrong"}', '{"verdict": "correct", "why": "x"}'),
    "multichallenge": ({"target_question": "Does it avoid nuts?", "pass_criteria": "YES"},
                       "YES", "The response never mentions nuts. YES", "It suggests almond milk. NO",
                       "I cannot tell."),
    "mm_vet": ({"judge_question": "What is x?"}, "-1 <AND> -5", "1.0", "0.0", "about half"),
}


@pytest.mark.parametrize("name", sorted(BENCH_ROWS))
def test_benchjudge_rows_use_the_official_prompt_and_reply_rule(stub, name):
    info, gold, yes, no, malformed = BENCH_ROWS[name]
    info = {"scoring": "benchjudge", "judge": name, "reward_type": "llm_judge", **info}
    response = "<think>working</think> Final: \\boxed{something}"
    for reply, expected, reason in ((yes, 1.0, "judge"), (no, 0.0, "judge"), (malformed, 0.0, "judge_malformed")):
        judge = stub(reply)
        result = compute_score_with_ids(name, response, gold, info, **JUDGE)
        assert (result["score"], result["route"], result["reason"]) == (expected, "benchjudge", reason), reply
        assert result["judge_calls"] == 1.0
        prompt = judge.prompts[-1]
        assert response in prompt  # the full response, reasoning included
        head = bj.TEMPLATES[name].split("{{", 1)[0].split("{%", 1)[0]
        assert prompt.startswith(head)
        assert "{{" not in prompt and "{%" not in prompt


def test_official_prompts_fill_their_placeholders():
    mmvu_mc = bj.render("mmvu", {"judge_question": "Q?", "question_type": "multiple-choice"}, "resp", "B", "A. x\nB. y")
    mmvu_open = bj.render("mmvu", {"judge_question": "Q?", "question_type": "open-ended"}, "resp", "it melts")
    assert "## Options\nA. x\nB. y\n" in mmvu_mc and "word-for-word" not in mmvu_mc
    assert "## Options" not in mmvu_open and "exact same technique or concept" in mmvu_open
    hle = bj.render("hle", {"judge_question": "Q?"}, "resp", "42")
    assert "[question]: Q?" in hle and "[response]: resp" in hle and "[correct_answer]: 42" in hle
    mc = bj.render("multichallenge", {"target_question": "Is it polite?", "pass_criteria": "YES"}, "resp", "YES")
    assert "<MODEL_RESPONSE>\nresp\n</MODEL_RESPONSE>" in mc and "<CRITERIA>\nIs it polite?\n</CRITERIA>" in mc
    vet = bj.render("mm_vet", {"judge_question": "What is x?"}, "x = -1", "-1 <AND> -5")
    assert vet.endswith("What is x? | -1 <AND> -5 | x = -1 |")
    # CharXiv: the rubric bodies are not in the paper; the slot names the row's answer type / template instead
    rubric = bj.render("charxiv_reasoning", {"judge_question": "Q?", "inst_category": "4"}, "resp", "7")
    assert ("You must follow the scoring rules: (answer type 4 (number-in-general))\n### Your Turn ###\n"
            "* Question: Q?") in rubric
    descriptive = bj.render("charxiv_descriptive", {"judge_question": "Over?", "inst_category": "19"}, "resp", "7")
    assert ("Overarching Question: Over?\n(descriptive template 19)\n### Your Turn ###\nResponse: resp\n"
            "Ground Truth: 7") in descriptive
    with pytest.raises(ValueError, match="inst_category"):
        bj.render("charxiv_reasoning", {"judge_question": "Q?"}, "resp", "7")
    with pytest.raises(ValueError, match="target_question"):
        bj.render("multichallenge", {"pass_criteria": "YES"}, "resp", "YES")
    assert bj.parse_mm_vet("<think>hmm</think>0.5") == 0.5 and bj.parse_mm_vet("1.5") is None
    assert bj.parse_multichallenge("Yes it is fine, YES... actually NO") == "NO"


def test_benchjudge_without_a_judge_scores_zero_and_says_so():
    result = scoring.score_answer("hle", "<think>x</think> \\boxed{4}", "4",
                                  {"scoring": "benchjudge", "judge": "hle", "judge_question": "2+2?"})
    assert (result["score"], result["route"], result["reason"]) == (0.0, "judge_failed", "no_judge")


# ------------------------------------------------------------------------------------------------ aggregation


def test_every_result_has_the_same_keys_and_graded_scores_average_as_such(stub):
    stub("0.4")
    rows = [
        ("ai2d", "<think>x</think> \\boxed{B}", "B", {"scoring": "exact_judge", "reward_type": "multiple_choice"}),
        ("infovqa", "<think>x</think> \\boxed{hello word}", "hello world", {"scoring": "det", "metric": "anls"}),
        ("mm_vet", "<think>x</think> -1", "-1 <AND> -5",
         {"scoring": "benchjudge", "judge": "mm_vet", "judge_question": "x?"}),
        ("old", "<think>x</think> \\boxed{7}", "7", {"reward_type": "numeric"}),
    ]
    results = [compute_score_with_ids(s, r, g, {**i, "question_id": f"{s}-0"}, route_metrics=True, **JUDGE)
               for s, r, g, i in rows]
    keys = {frozenset(result) for result in results}
    assert len(keys) == 1 and set(RESULT_KEYS) <= set(results[0])
    assert [r["score"] for r in results] == pytest.approx([1.0, 1 - 1 / 11, 0.4, 1.0])
    dumped = [{**r, "uid": f"u{i}"} for i, r in enumerate(results)]
    per_bench = score_benchmarks(dumped)
    assert per_bench["infovqa"]["acc"] == pytest.approx(100 * (1 - 1 / 11))
    assert per_bench["mm_vet"]["acc"] == pytest.approx(40.0) and per_bench["mm_vet"]["pass@1"] == 0.0
    assert per_bench["mm_vet"]["judge_calls"] == 1


def test_unknown_scoring_is_zero_with_a_reason():
    result = scoring.score_answer("x", "<think>x</think> \\boxed{1}", "1", {"scoring": "vibes"})
    assert (result["score"], result["reason"]) == (0.0, "unknown_scoring")
