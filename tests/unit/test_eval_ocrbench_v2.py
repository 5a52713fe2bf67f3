"""OCRBench v2's per-task scoring (recipe/zppo/eval/ocrbench_v2.py) against hand-computed results, one test per task
family of the official eval_scripts: VQA rules and their ``eval`` variants, counting, formulas, handwriting, the
full-page OCR average (BLEU, METEOR, F1, edit distance), grounding and VQA-with-position IoU, the spotting hmean,
KIE F1, TEDS for tables and charts, STEDS for documents; and that every official task type is dispatched."""

from __future__ import annotations

import json
import sys
from math import exp, log

import pytest

from data_prep.benchmarks.vlm import OCRBENCH_V2_CAPABILITIES
from recipe.zppo.eval import ocrbench_v2 as ob
from recipe.zppo.eval import scoring

score = ob.ocrbench_v2_score


def test_every_official_task_type_is_scored():
    official = {t.lower() for tasks in OCRBENCH_V2_CAPABILITIES.values() for ts in tasks.values() for t in ts}
    assert official == ob.TASK_TYPES and len(official) == 30
    for task in official:
        value, how = score(task, "zz", ["x"], variant="None", meta="{}", question="")
        assert value is not None and 0.0 <= value <= 1.0 and how.startswith("ocr_"), task  # scored, never "unknown"


def test_vqa_rules_and_variants():
    assert score("text recognition en", "The sign says OPEN", ["open"]) == (1.0, "ocr_vqa")
    assert score("text recognition en", "The sign says OPEN", ["open"], variant="case sensitive") == \
        (0.0, "ocr_vqa_case_sensitive")
    assert score("text recognition en", "The sign says OPEN", ["OPEN"], variant="case sensitive")[0] == 1.0
    # multiple choice: the answer's letters joined must equal the gold
    assert score("science QA en", "(B)", ["B"], variant="multiple choice") == (1.0, "ocr_multiple_choice")
    assert score("science QA en", "B. Paris", ["B"], variant="multiple choice")[0] == 0.0
    assert score("reasoning VQA cn", "（C）", ["C"], variant="multiple choice")[0] == 1.0
    # a 5-word gold: 1 - NL (>= 0.5); "jumps" -> "jumped" is 2 edits over 26 characters
    assert score("cognition VQA en", "the quick brown fox jumped", ["the quick brown fox jumps"])[0] == \
        pytest.approx(1 - 2 / 26)
    # Chinese: spaces removed; fewer than 4 comma parts -> containment, else 1 - NL
    assert score("cognition VQA cn", "答案 是 北 京", ["北京"]) == (1.0, "ocr_vqa")
    assert score("cognition VQA cn", "1,2,3,5", ["1, 2, 3, 4"])[0] == pytest.approx(1 - 1 / 7)
    assert score("cognition VQA cn", "9", ["1,2,3,4"])[0] == 0.0  # NL 6/7 > 0.5
    assert score("cognition VQA en", "A", ["A"], variant="spelling") == (None, "ocr_eval_unknown")


def test_counting_formula_and_handwriting():
    assert score("text counting en", "there are 12 words", ["12"], variant="exact match") == (1.0, "ocr_counting")
    assert score("text counting en", "11", ["12"], variant="exact match")[0] == 0.0
    # regression: the first integer n scores 1 - |n - g| / g when 0 < n < 2g and that is > 0.5
    assert score("text counting en", "about 8, maybe 10", ["10"], variant="regression")[0] == pytest.approx(0.8)
    assert score("text counting en", "4", ["10"], variant="regression")[0] == 0.0  # 0.4 is not > 0.5
    assert score("text counting en", "20", ["10"], variant="regression")[0] == 0.0  # n >= 2g
    assert score("formula recognition en", "x ^ 2 + 1", ["x^2+1"]) == (1.0, "ocr_formula")
    assert score("formula recognition en", "X^2+1", ["x^2+1"])[0] == 0.0  # case-sensitive
    assert score("formula recognition en", "面积=3", ["\\text{面积}=3"])[0] == 0.0
    assert score("formula recognition cn", "\\text{面积} = 3", ["\\text{面积}=3"])[0] == 1.0  # \text unwrapped
    assert score("handwritten answer extraction cn", "答案：A、B、D", ["ABD"], question="选择题") == \
        (1.0, "ocr_handwriting_choice")
    assert score("handwritten answer extraction cn", "A D", ["ABD"], question="选择题")[0] == 0.0
    assert score("handwritten answer extraction cn", "光合作用", ["光合作用"], question="简答题")[1] == "ocr_page"


def test_page_ocr_average_by_hand():
    ref, hyp = "the cat sat on the mat", "the cat sat on a mat"
    # BLEU-4: clipped precisions 5/6, 3/5, 2/4, 1/3, equal lengths (no brevity penalty)
    bleu = exp((log(5 / 6) + log(3 / 5) + log(2 / 4) + log(1 / 3)) / 4)
    assert ob.bleu(ref.split(), hyp.split()) == pytest.approx(bleu)
    # METEOR (nltk's): 5 matches, hypothesis "the" aligns to the last free "the" -> 3 chunks; P = R = 5/6
    meteor = (1 - 0.5 * (3 / 5) ** 3) * (5 / 6)
    assert ob.meteor(ref.split(), hyp.split()) == pytest.approx(meteor)
    f1 = 2 * (5 / 6) * 1 / (5 / 6 + 1)  # word sets: 5 of 6 hypothesis words, all 5 reference words
    edit = 3 / 22  # "the" -> "a": 3 character edits over 22 characters
    expected = (bleu + meteor + f1 + 1 - edit) / 4
    assert score("full-page OCR en", hyp, [ref]) == (pytest.approx(expected), "ocr_page")
    assert score("fine-grained text recognition en", hyp, [ref])[0] == pytest.approx(expected)
    # no 4-gram: nltk's unsmoothed BLEU (the official ``nltk.translate.bleu``) takes sys.float_info.min for the 4-gram
    # precision, so the score is its 4th root (~1.2e-77), not 0
    assert ob.bleu(["a", "b", "c"], ["a", "b", "c"]) == pytest.approx(sys.float_info.min ** 0.25, rel=1e-9)
    # nltk's Porter-stem stage: "cats" matches "cat", one chunk of 3 (the exact stage alone found 2 matches, 2 chunks)
    assert ob.meteor("the cats sat".split(), "the cat sat".split()) == pytest.approx(1 - 0.5 * (1 / 3) ** 3)
    # Chinese text is compared by characters (*ours*: jieba words in the official script)
    assert ob._tokens("今天 good 天气", True) == ["今", "天", "good", "天", "气"]
    assert score("text translation cn", "今天天气好", ["今天天气好"])[0] == pytest.approx(
        (1 + (1 - 0.5 * (1 / 5) ** 3) + 1 + 1) / 4)
    assert score("full-page OCR cn", "", ["今天"])[0] == 0.0


def test_page_ocr_needs_no_download(monkeypatch):
    # nltk must never fetch data (the WordNet corpus): any connection or nltk.download fails this test
    import socket

    import nltk

    def refuse(*args, **kwargs):
        raise AssertionError("network access")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(nltk, "download", refuse)
    # synonyms do not match: the WordNet stage is left out (with nltk's WordNet, "large" would match "big")
    # one match: P = R = F-mean = 1/2; one chunk per match: penalty 0.5 * 1 ** 3
    assert ob.meteor(["big", "house"], ["large", "house"]) == pytest.approx((1 - 0.5) * 0.5)
    assert score("full-page OCR en", "a big house", ["a large house"])[0] > 0.0


def test_grounding_and_vqa_with_position():
    # the last in-range box: [10, 10, 50, 50] vs gold [10, 10, 30, 50]: 800 / 1600
    answer = "first (0, 0, 5, 5), then [10, 10, 50, 50] and [0, 0, 1200, 5]"
    assert score("text grounding en", answer, ["10", "10", "30", "50"]) == (0.5, "ocr_grounding_iou")
    assert score("text grounding en", "no box", ["10", "10", "30", "50"])[0] == 0.0
    meta = json.dumps({"bbox": [0, 0, 10, 20], "bbox_list": None, "content": None, "dataset_name": "x"})
    # content: "stop" contained (1); box: 100 / 200
    answer = '```json\n{"answer": "STOP", "bbox": [0, 0, 10, 10]}\n```'
    assert score("VQA with position en", answer, ["stop"], meta=meta) == (0.75, "ocr_vqa_position")
    assert score("VQA with position en", "answer: stop", ["stop"], meta=meta)[0] == 0.5  # key: value read, no box


def test_spotting_hmean():
    meta = {"bbox_list": [[10, 10, 50, 10, 50, 50, 10, 50], [100, 100, 200, 100, 200, 150, 100, 150],
                          [300, 300, 400, 300, 400, 400, 300, 400]],
            "content": ["Hello!", "world", "###"], "bbox": None}
    # det 1 matches gold 1 (IoU 1; "HELLO" = "HELLO!" less its final special character); det 2 overlaps gold 2 with
    # IoU 0.5 (not > 0.5): unmatched; det 3 lies inside the don't-care gold: not counted; det 4 is no box (x1 >= x2)
    answer = "[[10, 10, 50, 50, 'hello'], [100, 100, 150, 150, 'world'], [310, 310, 390, 390, 'x'], [5, 5, 5, 9, 'y']]"
    precision, recall = 1 / 2, 1 / 2
    assert score("text spotting en", answer, ["x"], meta=meta) == (
        pytest.approx(2 * precision * recall / (precision + recall)), "ocr_spotting")
    # regex path (not a literal): both golds found with the right texts
    loose = "Found (10, 10, 50, 50, Hello!) and (100, 100, 200, 150, \"World\")"
    assert score("text spotting en", loose, ["x"], meta=meta)[0] == 1.0
    assert ob._transcription_match("(A)", "A") and not ob._transcription_match("A", "(A)")


def test_kie_f1():
    gold = [json.dumps({"name": "John Smith", "total": ["$5", "5.00"]})]
    # keys name (match, case and spaces ignored), total (one alternative matches), extra (not in gold): 2 / 3
    assert score("key information extraction en", '{"name": "JOHNSMITH", "total": "5.00", "extra": "x"}', gold) == \
        (pytest.approx(2 / 3), "ocr_kie_f1")
    assert score("key information mapping en", "name: John Smith\ntotal: $5", gold)[0] == 1.0  # key: value lines
    assert score("key information extraction cn", "{'名称': '发票'}", ["{'名称': '发票', '金额': '5'}"])[0] == 0.5
    assert score("key information extraction en", "nothing here", gold)[0] == 0.0


def test_tree_edit_distance_zhang_shasha_example():
    def tree(label, *children):
        node = ob.Node(label)
        node.children = list(children)
        return node

    # Zhang & Shasha (1989)'s example: f(d(a, c(b)), e) -> f(c(d(a, b)), e) takes 2 unit edits
    t1 = tree("f", tree("d", tree("a"), tree("c", tree("b"))), tree("e"))
    t2 = tree("f", tree("c", tree("d", tree("a"), tree("b"))), tree("e"))
    distance, n1, n2 = ob.tree_edit_distance(t1, t2, rename=lambda a, b: float(a.label != b.label))
    assert (distance, n1, n2) == (2.0, 6, 6)
    # the node limit keeps the first nodes in preorder: f(d(a)) vs f(c(d)), d kept with a deleted and c inserted
    assert ob.tree_edit_distance(t1, t2, rename=lambda a, b: float(a.label != b.label), limit=3) == (2.0, 3, 3)
    assert ob.tree_edit_distance(t1, t2, rename=lambda a, b: float(a.label != b.label), limit=2) == (1.0, 2, 2)


def test_teds_tables_and_charts():
    gold = "<table><tr><td>a</td><td>b</td></tr><tr><td colspan=\"2\">c</td></tr></table>"
    pred = "Here it is: <table>\n<tr><td>a</td><td>b</td></tr><tr><td>c</td></tr></table>"
    # 5 descendant elements each; the colspan differs: one rename of cost 1
    assert score("table parsing en", pred, [gold], question="Parse the table in HTML") == (0.8, "ocr_teds")
    full = "<table><tr><td>a</td><td>b</td></tr></table>"
    assert score("table parsing cn", "<table><tr><td>a<td>b</table>", [full]) == (1.0, "ocr_teds")  # implied ends
    # one cell "ab" vs "ac": token distance 1/2 over 2 elements (tr, td)
    assert score("table parsing cn", "<table><tr><td>ab</td></tr></table>", ["<table><tr><td>ac</td></tr></table>"]
                 )[0] == pytest.approx(0.75)
    assert score("table parsing cn", "no table", ["<table><tr><td>a</td></tr></table>"])[0] == 0.0
    markdown_gold = "| a | b |\n|---|---|\n| 1 | 2 |"
    assert score("table parsing en", "```markdown\n| a | b |\n|---|---|\n| 1 | 3 |\n```", [markdown_gold],
                 question="Convert it to markdown")[0] == pytest.approx(1 - 1 / 6)
    # chart: the dict as a 2-column table; "3" vs "4" differ in one of 6 elements
    chart = "```python\nchart = {'a': 12, 'b': 3}  # values\n```"
    assert score("chart parsing en", chart, [json.dumps({"a": 12, "b": 4})]) == (pytest.approx(1 - 1 / 6), "ocr_teds")
    assert score("chart parsing en", "not a dict", [json.dumps({"a": 1})])[0] == 0.0


def test_steds_documents():
    gold = "# Title\nline one\nline two\n## Part\ntext"
    assert score("document parsing en", gold, [gold]) == (1.0, "ocr_steds")
    # gold: ROOT, TITLE, 2 headings (children of ROOT), 3 lines = 7 nodes; pred misses "line two": one deletion
    assert score("document parsing cn", "# Title\nline one\n## Part\ntext", [gold])[0] == pytest.approx(1 - 1 / 7)
    # relabelling costs nothing between lines with words (the structure is scored), 1 when a line is blank
    assert ob.steds("# T\nother words\n## P\nx", gold) == pytest.approx(1 - 1 / 7)
    assert ob.steds("# T\nother words\n## P\n***", gold) == pytest.approx(1 - 2 / 7)  # "***" cleans to blank


def test_score_answer_reads_the_row_fields():
    info = {"scoring": "det", "metric": "ocrbench_v2", "ocr_task": "table parsing en", "ocr_eval": "None",
            "ocr_meta": json.dumps({"bbox": None, "bbox_list": None, "content": None, "dataset_name": "x"}),
            "judge_question": "Convert the table to markdown", "gold_answers": ["| a |\n|---|\n| 1 |"]}
    result = scoring.score_answer("ocrbench_v2_en", "<think>x</think>\n| a |\n|---|\n| 1 |", "", info)
    assert (result["score"], result["route"], result["reason"]) == (1.0, "det", "ocr_teds")
    spot = {"scoring": "det", "metric": "ocrbench_v2", "ocr_task": "text spotting en", "ocr_eval": "None",
            "ocr_meta": json.dumps({"bbox": None, "bbox_list": [[0, 0, 10, 0, 10, 10, 0, 10]], "content": ["ok"]}),
            "gold_answers": ["ok"]}
    result = scoring.score_answer("ocrbench_v2_en", "<think>x</think>\\boxed{[[0, 0, 10, 10, 'OK']]}", "ok", spot)
    assert (result["score"], result["reason"]) == (1.0, "ocr_spotting")
