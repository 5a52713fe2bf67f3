"""Conversion, evaluation through the validation path and scoring, per benchmark, against hand-computed results (issue
#23): for EVERY one of the paper's 31 benchmarks (Tabs 5-7), its fixture in the published layout
(``data_prep.benchmarks.fixtures``) is converted (``data_prep.benchmarks``), and a hand-written right answer and a
wrong one to its first row are scored through the eval reward as verl calls it
(``recipe.zppo.eval.evaluate.compute_score_with_ids(data_source, solution_str, ground_truth, extra_info)``, the row's
own fields). The judge is a fake OpenAI-compatible server (tests/fake_openai.py) behind the real judge client: the
rule/Det. benchmarks must never reach it; each BenchJudge benchmark's official prompt (Figs 10-15) must carry the
row's fields, and the fake judge's reply is read by the benchmark's official rule.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pyarrow.parquet as pq
import pytest

from data_prep.benchmarks import BENCHMARKS, convert_many, suite
from data_prep.benchmarks.common import ConvertOptions
from data_prep.benchmarks.fixtures import build_fixtures
from recipe.zppo.eval.evaluate import compute_score_with_ids
from recipe.zppo.reward import sandbox

from ..fake_openai import FakeOpenAIServer, completion_body

pytestmark = pytest.mark.usefixtures("fresh_judge")  # tests/unit/conftest.py


def respond(answer: str) -> str:
    return f"<think>Let me work it out.</think>\nThe final answer is \\boxed{{{answer}}}."


@dataclass
class Case:
    """A hand-written right and wrong answer to the benchmark's first converted row and their hand-computed scores;
    for a BenchJudge benchmark, the fake judge's replies and what the official prompt must show."""

    right: str
    wrong: str
    right_score: float = 1.0
    wrong_score: float = 0.0
    judge_yes: str | None = None  # BenchJudge: the fake judge's reply to the right answer ...
    judge_no: str | None = None  # ... and to the wrong one
    prompt_has: tuple[str, ...] = ()  # BenchJudge: the rendered prompt holds these ("{response}": the answer)
    fig9_wrong: str | None = None  # Exact+Judge: the shared judge's (Fig. 9) reply to a wrong answer the rule
    # cannot settle (a free-form math answer the verifier does not match)


HLE_YES = json.dumps({"extracted_final_answer": "11", "reasoning": "same", "correct": "yes", "confidence": 95})
HLE_NO = json.dumps({"extracted_final_answer": "13", "reasoning": "differs", "correct": "no", "confidence": 95})
MMVU_OPTIONS = "\n".join(f"{letter}. option {letter} of row 0" for letter in "ABCDE")

CASES = {
    # Tab. 5: VLM. Multiple choice: the gold option's letter (the fixture's correct option is B in row 0 unless said).
    "ai2d": Case(respond("B"), respond("C")),
    "babyvision": Case(respond("B"), respond("A")),
    "charxiv": Case(  # first row: the reasoning question of figure 0, answer type 4, gold "2"
        respond("2"), respond("5"), judge_yes='{"extracted_answer": "2", "score": 1}',
        judge_no='{"extracted_answer": "5", "score": 0}',
        prompt_has=("You must follow the scoring rules: (answer type 4 (number-in-general))\n### Your Turn ###\n"
                    "* Question: Which curve peaks first in plot 0?\n* Ground Truth: 2\n* Response: {response}\n",)),
    "dynamath": Case(respond("1"), respond("2")),  # gold 1.0 (float, tolerance 1e-3)
    "embspatial": Case(respond("B"), respond("D")),
    "infovqa": Case(respond("10 percen"), respond("about half"), right_score=0.9),  # ANLS: 1 - 1/10 vs "10 percent"
    "mathverse": Case(respond("B"), respond("A")),
    "mathvision": Case(respond("B"), respond("E")),
    "mathvista": Case(respond("B"), respond("C")),
    "mmmu_pro": Case(respond("B"), respond("J")),  # standard (10 options), row 0: gold index (10 + 1) % 10 = 1
    "mm_vet": Case(  # graded: the judge's correctness number is the score
        respond("x = -1 or x = -5"), respond("x = -1"), wrong_score=0.5, judge_yes="1.0", judge_no="0.5",
        prompt_has=("What is x in equation 0? | -1 <AND> -5 | {response} |",)),
    "ocrbench_v2_en": Case(respond("The word is WORD0"), respond("WORD1")),  # short gold: contained, any case
    "ocrbench_v2_zh": Case(respond("标题 0"), respond("表格")),  # Chinese gold: compared without spaces
    "visualpuzzles": Case(respond("B"), respond("C")),
    "vlms_are_blind": Case(respond("1"), respond("2")),
    "wemath": Case(respond("D"), respond("B")),  # row 0's gold is D
    # Tab. 6: LLM
    "aime25": Case(respond("1"), respond("2")),  # 0 squared plus len("I")
    "aime26": Case(respond("6"), respond("7")),  # divisors of 12
    "ceval": Case(respond("B"), respond("A")),
    "gpqa_diamond": Case(respond("B"), respond("A")),
    "hle": Case(respond("11"), respond("13"), judge_yes=HLE_YES, judge_no=HLE_NO,
                prompt_has=("[question]: What is the smallest prime above 10?\n\n[response]: {response}\n",
                            "[correct_answer]: 11\n")),
    "imo_answerbench": Case(respond("\\pm \\sqrt{4}"), respond("3"), fig9_wrong='{"verdict": "wrong"}'),
    "mmlu": Case(respond("B"), respond("D")),
    "mmlu_pro": Case(respond("B"), respond("J")),
    "mmlu_redux": Case(respond("B"), respond("C")),
    "multichallenge": Case(  # the YES/NO verifier; the row passes on YES
        respond("Un."), respond("One."), judge_yes="The response is in French. YES",
        judge_no="The response is in English. NO",
        prompt_has=("<MODEL_RESPONSE>\n{response}\n</MODEL_RESPONSE>",
                    "<CRITERIA>\nDoes the model answer in French?\n</CRITERIA>")),
    # Tab. 7: Video (frames)
    "mmvu": Case(  # multiple choice: the judge's options section, the raw question (no frames, no options block)
        respond("B"), respond("D"), judge_yes='{"verdict": "correct"}', judge_no='{"verdict": "wrong"}',
        prompt_has=("## Question\nWhich technique is shown in clip 0?\n## Options\n" + MMVU_OPTIONS
                    + "\n## Ground Truth Answer\nB\n## Model’s Full Response\n{response}\n",)),
    "mvbench": Case(respond("B"), respond("C")),
    "videomme": Case(respond("B"), respond("A")),
    "videomme_sub": Case(respond("B"), respond("A")),
    "videommmu": Case(respond("B"), respond("E")),
}


class Judge:
    """The fake judge server, replying what the test sets; records each prompt."""

    def __init__(self):
        self.reply = "unset"
        self.server = FakeOpenAIServer(respond=lambda body: (200, completion_body(self.reply)))

    @property
    def prompts(self) -> list[str]:
        return [body["messages"][-1]["content"] for body in self.server.bodies]

    def kwargs(self) -> dict:
        return {"judge_url": self.server.url, "judge_model": "judge-model", "judge_timeout_s": 5,
                "judge_max_retries": 0}


@pytest.fixture(scope="module")
def first_rows(tmp_path_factory):
    """The first converted row of every paper benchmark (fixtures of one row per part; two frames per clip)."""
    assert sandbox.pool().wait_ready(180)  # the math grader's workers
    root, out = tmp_path_factory.mktemp("src"), tmp_path_factory.mktemp("rows")
    names = suite("paper")
    build_fixtures(root, names, rows=1)
    done = convert_many(names, root, out, ConvertOptions(32 * 32, 64 * 64, frames=2), log=lambda line: None)
    assert set(done) == set(names)
    return {name: pq.read_table(str(out / f"{name}.parquet")).to_pylist()[0] for name in names}


@pytest.fixture
def judge():
    fake = Judge()
    yield fake
    fake.server.close()


def test_every_paper_benchmark_has_a_case():
    assert sorted(CASES) == sorted(suite("paper")) and len(CASES) == 31


@pytest.mark.parametrize("name", sorted(CASES))
def test_converted_row_scores_hand_computed_results(first_rows, judge, name):
    row, case = first_rows[name], CASES[name]
    info, gold = row["extra_info"], row["reward_model"]["ground_truth"]
    assert row["data_source"] == name and info["scoring"] == BENCHMARKS[name].scoring
    benchjudge = info["scoring"] == "benchjudge"
    assert benchjudge == (case.judge_yes is not None)
    for response, expected, reply in ((case.right, case.right_score, case.judge_yes),
                                      (case.wrong, case.wrong_score, case.judge_no)):
        fig9 = case.fig9_wrong is not None and response == case.wrong
        judge.reply = case.fig9_wrong if fig9 else reply or "no judge should be asked"
        before = len(judge.prompts)
        result = compute_score_with_ids(row["data_source"], response, gold, info, **judge.kwargs())
        assert result["score"] == pytest.approx(expected), (name, response, result)
        assert (result["data_source"], result["question_id"]) == (name, info["question_id"])
        assert result["truncated"] == 0.0
        if fig9:  # the shared judge (Fig. 9) with the row's question and gold, and the boxed answer
            assert len(judge.prompts) == before + 1 and (result["route"], result["judge_calls"]) == ("judge", 1.0)
            prompt = judge.prompts[-1]
            assert f"## Question\n{info['question']}\n" in prompt and f"## Ground Truth Answer\n{gold}\n" in prompt
            continue
        if not benchjudge:  # rules and Det. metrics resolve these answers: no judge
            assert len(judge.prompts) == before and result["judge_calls"] == 0.0, (name, result)
            continue
        assert len(judge.prompts) == before + 1 and result["judge_calls"] == 1.0
        assert result["route"] == "benchjudge" and result["reason"] == "judge", result
        prompt = judge.prompts[-1]
        for piece in case.prompt_has:
            assert piece.replace("{response}", response) in prompt, (name, piece, prompt)
        assert "<image>" not in prompt and "{{" not in prompt and "{%" not in prompt, prompt
