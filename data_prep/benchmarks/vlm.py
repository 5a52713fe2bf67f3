"""Converters of the image (VLM) benchmarks (App. B.2, Tab. 5; and the extra suite). Each reads the published
fields and yields ``Item``s (see common.py); the expected layout of each local copy is in docs/evaluation.md."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

from .charxiv_questions import OVERARCHING, descriptive_question
from .common import (
    Item,
    Source,
    SourceError,
    as_list,
    clean_option,
    field_of,
    image_mentions_as_text,
    letter_of,
    numeric_or_text,
    split_options,
    strip_format_instructions,
)


def _where(record: dict, qid) -> str:
    return f"{record.get('_file', '?')} question {qid}"


def _choice_item(qid, question: str, gold, images: list, category: str = "", where: str = "") -> Item:
    """A question whose options are written in its text: split them out when possible, gold as a letter."""
    stem, options = split_options(strip_format_instructions(question))
    if options:
        return Item(str(qid), stem, letter_of(gold, options, where), "multiple_choice", images, options,
                    category=category)
    return Item(str(qid), strip_format_instructions(question), str(gold).strip().strip("()"), "multiple_choice",
                images, category=category)


def _precision_tolerance(answer: str, precision) -> float | None:
    """Relative tolerance equal to half a unit of the answer's last decimal place (MathVista rounds predictions to
    ``precision`` decimals before comparing); absolute when the answer is 0."""
    try:
        value, places = float(answer), float(precision)
    except (TypeError, ValueError):
        return None
    if math.isnan(places):
        return None
    half_unit = 0.5 * 10 ** (-int(places))
    return half_unit if value == 0 else half_unit / abs(value)


def mathvista(source: Source) -> Iterator[Item]:
    """MathVista testmini: multi_choice (choices list, answer = option text) or free_form (integer/float/text/list)."""
    for record in source.records("**/testmini-*.parquet", "**/testmini*.parquet"):
        qid = field_of(record, "pid")
        image = field_of(record, "decoded_image", "image")
        question = str(field_of(record, "question"))
        if record.get("unit"):
            question += f" (Unit: {record['unit']})"
        category = str((record.get("metadata") or {}).get("category") or "")
        answer = str(field_of(record, "answer"))
        if record.get("question_type") == "multi_choice":
            choices = [str(c) for c in as_list(record.get("choices"))]
            yield Item(str(qid), question, letter_of(answer, choices, _where(record, qid), "text"),
                       "multiple_choice", [image], choices, category=category)
            continue
        answer_type = record.get("answer_type")
        if answer_type in ("integer", "float"):
            tolerance = _precision_tolerance(answer, record.get("precision")) if answer_type == "float" else None
            yield Item(str(qid), question, answer, "numeric", [image], tolerance=tolerance, category=category)
        elif answer_type == "list":
            yield Item(str(qid), question, answer, "number_list", [image], category=category)
        else:
            yield Item(str(qid), question, answer, "string_match", [image], category=category)


def mathverse(source: Source) -> Iterator[Item]:
    """MathVerse testmini (all five problem versions): multi-choice (options in the question text) or free-form."""
    for record in source.records("**/testmini.parquet", "**/testmini-*.parquet"):
        qid = field_of(record, "sample_index")
        question = str(field_of(record, "question", required=False, default=""))
        version = str(record.get("problem_version") or "")
        if not question.strip():  # vision-only version: the question is in the image
            question = "Answer the question shown in the image."
        image = field_of(record, "image")
        answer = str(field_of(record, "answer"))
        if record.get("question_type") == "multi-choice":
            yield _choice_item(qid, question, answer, [image], version, _where(record, qid))
        else:
            yield Item(str(qid), strip_format_instructions(question), answer, "math", [image], category=version)


def mathvision(source: Source) -> Iterator[Item]:
    """MATH-Vision test: options (A-E) when multiple choice, else an open (often symbolic) answer."""
    for record in source.records("**/test-*.parquet", "**/test.parquet"):
        qid = field_of(record, "id")
        question = image_mentions_as_text(str(field_of(record, "question")))
        image = field_of(record, "decoded_image", "image")
        options = [clean_option(o) for o in as_list(record.get("options"))]
        answer = str(field_of(record, "answer"))
        subject = str(record.get("subject") or "")
        if options:
            yield Item(str(qid), question, letter_of(answer, options, _where(record, qid)), "multiple_choice",
                       [image], options, category=subject)
        else:
            yield Item(str(qid), question, answer, "math", [image], category=subject)


def _mmmu_items(records: Iterable[dict], default_type: str = "multiple-choice") -> Iterator[Item]:
    """MMMU-style rows: image_1..image_7, options as the text of a list, answer letter (or open answer)."""
    for record in records:
        qid = field_of(record, "id")
        images = [record[f"image_{k}"] for k in range(1, 8) if record.get(f"image_{k}") is not None]
        question = image_mentions_as_text(str(field_of(record, "question")))
        options = [image_mentions_as_text(clean_option(o)) for o in as_list(record.get("options"))]
        category = str(record.get("subfield") or record.get("subject") or "")
        answer = field_of(record, "answer")
        if (record.get("question_type") or default_type) == "multiple-choice" and options:
            yield Item(str(qid), question, letter_of(answer, options, _where(record, qid)), "multiple_choice",
                       images, options, category=category)
        else:
            answers = [str(a) for a in as_list(answer)]
            reward_type = "list_string_match" if len(answers) > 1 else numeric_or_text(answers[0])
            yield Item(str(qid), question, answers, reward_type, images, category=category)


def mmmu(source: Source) -> Iterator[Item]:
    """MMMU validation (one folder per subject)."""
    yield from _mmmu_items(source.records("**/validation-*.parquet"))


MMMU_PRO_CONFIGS = {"standard (10 options)": "std10", "standard (4 options)": "std4", "vision": "vision"}


def mmmu_pro(source: Source) -> Iterator[Item]:
    """MMMU-Pro, all three configs of MMMU/MMMU_Pro (Tab. 5), each its ``subset``: "standard (10 options)",
    "standard (4 options)" (MMMU-style rows) and "vision" (question and options inside the screenshot)."""
    for config, short in MMMU_PRO_CONFIGS.items():
        items = (mmmu_pro_vision(source) if config == "vision"
                 else _mmmu_items(source.records(f"{config}/*.parquet", f"{config}/**/*.parquet")))
        for item in items:
            yield Item(**{**item.__dict__, "qid": f"{short}-{item.qid}", "subset": config})


def mmmu_pro_vision(source: Source) -> Iterator[Item]:
    """MMMU-Pro, "vision" config: question and options are inside the screenshot."""
    for record in source.records("vision/*.parquet", "vision/**/*.parquet"):
        qid = field_of(record, "id")
        options = [clean_option(o) for o in as_list(record.get("options"))]
        yield Item(str(qid), "Answer the multiple-choice question shown in the image.",
                   letter_of(field_of(record, "answer"), options, _where(record, qid)), "multiple_choice",
                   [field_of(record, "image")], category=str(record.get("subject") or ""))


def mmstar(source: Source) -> Iterator[Item]:
    """MMStar val (mmstar.parquet, or MMStar.tsv with base64 images): options written in the question."""
    for record in source.records("**/mmstar.parquet", "**/*.parquet", "**/MMStar.tsv"):
        qid = field_of(record, "index")
        yield _choice_item(qid, str(field_of(record, "question")), field_of(record, "answer"),
                           [field_of(record, "image")], str(record.get("category") or ""), _where(record, qid))


def ai2d(source: Source) -> Iterator[Item]:
    """AI2D test (lmms-lab release): options list, answer = option index."""
    for number, record in enumerate(source.records("**/test-*.parquet", "**/*.parquet")):
        options = [clean_option(o) for o in as_list(field_of(record, "options"))]
        yield Item(str(number), str(field_of(record, "question")),
                   letter_of(field_of(record, "answer"), options, _where(record, number), "index"),
                   "multiple_choice", [field_of(record, "image")], options)


def chartqa(source: Source) -> Iterator[Item]:
    """ChartQA test: numeric answers within 5% (the benchmark's relaxed accuracy), text answers exactly."""
    for number, record in enumerate(source.records("**/test-*.parquet", "**/*.parquet")):
        answer = str(field_of(record, "answer"))
        reward_type = numeric_or_text(answer)
        yield Item(str(number), str(field_of(record, "question")), answer, reward_type, [field_of(record, "image")],
                   tolerance=0.05 if reward_type == "numeric" else None, category=str(record.get("type") or ""))


def charxiv(source: Source) -> Iterator[Item]:
    """CharXiv validation (princeton-nlp/CharXiv ``val.parquet``, one row per figure): its reasoning question
    (reasoning_q / reasoning_a; ``inst_category`` = reasoning_a_type, the official grader's answer type 1-4), then
    the four descriptive questions of every figure (descriptive_q1..4 are template ids, see charxiv_questions;
    descriptive_a1..4). ``subset`` = "reasoning" | "descriptive"; both use CharXiv's official judge (Figs 14-15)."""
    patterns = ("**/val.parquet", "**/validation-*.parquet")
    for number, record in enumerate(source.records(*patterns)):
        figure = _figure_id(record, number)
        question, answer = str(field_of(record, "reasoning_q")), str(field_of(record, "reasoning_a"))
        yield Item(f"{figure}-reasoning", question, answer, numeric_or_text(answer), [field_of(record, "image")],
                   category=str(record.get("category") or ""), subset="reasoning",
                   fields={"judge": "charxiv_reasoning", "judge_question": question, "gold_answers": [answer],
                           "inst_category": str(field_of(record, "reasoning_a_type"))})
    for number, record in enumerate(source.records(*patterns)):
        figure = _figure_id(record, number)
        location = record.get("subplot_loc")
        if location is None or (not isinstance(location, str) and not as_list(location)):
            location = [record.get("subplot_row") or 0, record.get("subplot_col") or 0]
        elif not isinstance(location, str):
            location = as_list(location)
        for k in range(1, 5):
            template = int(field_of(record, f"descriptive_q{k}"))
            if template not in OVERARCHING:
                raise SourceError(f"{_where(record, figure)}: descriptive_q{k} = {template} is not a template 1-19")
            answer = str(field_of(record, f"descriptive_a{k}"))
            yield Item(f"{figure}-descriptive{k}", descriptive_question(template, location), answer,
                       numeric_or_text(answer), [field_of(record, "image")],
                       category=str(record.get("category") or ""), subset="descriptive",
                       fields={"judge": "charxiv_descriptive", "judge_question": OVERARCHING[template],
                               "gold_answers": [answer], "inst_category": str(template)})


def _figure_id(record: dict, number: int) -> str:
    return Path(str(record.get("figure_path") or record.get("id") or number)).stem


def ocrbench(source: Source) -> Iterator[Item]:
    """OCRBench test: a list of acceptable answers."""
    for number, record in enumerate(source.records("**/test-*.parquet", "**/*.parquet")):
        answers = [str(a) for a in as_list(field_of(record, "answer"))]
        yield Item(str(number), str(field_of(record, "question")), answers,
                   "list_string_match" if len(answers) > 1 else "string_match", [field_of(record, "image")],
                   category=str(record.get("question_type") or ""))


def realworldqa(source: Source) -> Iterator[Item]:
    """RealWorldQA test: multiple choice with the options in the question, or a short free answer."""
    for number, record in enumerate(source.records("**/test*.parquet", "**/*.parquet")):
        question, answer = str(field_of(record, "question")), str(field_of(record, "answer")).strip()
        image = field_of(record, "image")
        if re.fullmatch(r"\(?[A-Z]\)?\.?", answer):
            yield _choice_item(number, question, answer, [image], where=_where(record, number))
        else:
            yield Item(str(number), strip_format_instructions(question), answer, numeric_or_text(answer), [image])


def hallusionbench(source: Source) -> Iterator[Item]:
    """HallusionBench, questions with an image: yes/no (gt_answer 1/0); accuracy per question (aAcc)."""
    for record in source.records("**/image-*.parquet"):
        parts = [record.get(k) for k in ("category", "subcategory", "set_id", "figure_id", "question_id")]
        gold = {"1": "yes", "0": "no"}.get(str(field_of(record, "gt_answer")).strip())
        if gold is None:
            raise SourceError(f"{record.get('_file')}: gt_answer {record.get('gt_answer')!r} is neither 1 nor 0")
        yield Item("_".join(str(p) for p in parts), str(field_of(record, "question")), gold, "string_match",
                   [field_of(record, "image")], category=str(record.get("category") or ""))


def blink(source: Source) -> Iterator[Item]:
    """BLINK val (one folder per task): up to four images, choices, answer "(A)"."""
    for record in source.records("**/val-*.parquet"):
        qid = field_of(record, "idx")
        choices = [clean_option(c) for c in as_list(field_of(record, "choices"))]
        images = [record[f"image_{k}"] for k in range(1, 5) if record.get(f"image_{k}") is not None]
        yield Item(str(qid), str(field_of(record, "question")), letter_of(field_of(record, "answer"), choices,
                   _where(record, qid)), "multiple_choice", images, choices, category=str(record.get("sub_task") or ""))


def wemath(source: Source) -> Iterator[Item]:
    """We-Math testmini: options in the ``option`` field ("A. ...; B. ..."), answer letter."""
    for record in source.records("**/testmini*.parquet", "**/*.parquet", "**/testmini.json"):
        qid = field_of(record, "ID")
        stem, options = split_options("Options: " + str(field_of(record, "option")))
        question = str(field_of(record, "question"))
        image = field_of(record, "image_path", "image")
        if isinstance(image, list):
            image = image[0]
        category = str(record.get("knowledge concept") or "")
        if options:
            yield Item(str(qid), question, letter_of(field_of(record, "answer"), options, _where(record, qid)),
                       "multiple_choice", [image], options, category=category)
        else:
            yield _choice_item(qid, question + "\n" + str(record.get("option")), field_of(record, "answer"), [image],
                               category, _where(record, qid))


def logicvista(source: Source) -> Iterator[Item]:
    """LogicVista (dataset.json keyed by id: imagename, question with options, answer letter(s))."""
    for number, record in enumerate(source.records("**/dataset.json", "**/*.json", "**/*.parquet")):
        qid = record.get("_key") or Path(str(record.get("imagename") or number)).stem
        image = field_of(record, "image", "imagename")
        answer = str(field_of(record, "answer")).strip()
        letters = re.findall(r"[A-Z]", answer)
        category = str(record.get("skill") or "")
        if len(letters) == 1 and re.fullmatch(r"\(?[A-Z]\)?\.?", answer):
            yield _choice_item(qid, str(field_of(record, "question")), answer, [image], category, _where(record, qid))
        else:  # several correct letters: the set, written "A, C", compared as text
            yield Item(str(qid), strip_format_instructions(str(field_of(record, "question"))),
                       ", ".join(sorted(set(letters))) or answer, "string_match", [image], category=category)


def dynamath(source: Source) -> Iterator[Item]:
    """DynaMath sample (10 variants of 501 seed questions; the score is the average over all 5,010 rows)."""
    for record in source.records("**/sample*.parquet"):
        variant = Path(record["_file"]).stem.split("-")[0]
        qid = f"{variant}-{field_of(record, 'id')}"
        image = field_of(record, "decoded_image", "image")
        answer = str(field_of(record, "ground_truth"))
        answer_type = str(record.get("answer_type") or "")
        category = str(record.get("subject") or "")
        question = str(field_of(record, "question"))
        if answer_type == "multiple choice":
            yield _choice_item(qid, question, answer, [image], category, _where(record, qid))
        elif answer_type == "float":
            yield Item(qid, question, answer, "numeric", [image], tolerance=1e-3, category=category)
        else:
            yield Item(qid, question, answer, numeric_or_text(answer), [image], category=category)


def babyvision(source: Source) -> Iterator[Item]:
    """BabyVision (UnipatAI/BabyVision, train split, 388 rows): ansType "choice" (options, choiceAns index) or
    "blank" (blankAns); ``subset`` = type (the four categories), ``category`` = subtype."""
    for number, record in enumerate(source.records("**/train-*.parquet", "**/*.parquet")):
        qid = str(field_of(record, "taskId", "id", required=False, default=number))
        question = str(field_of(record, "question"))
        image = field_of(record, "image")
        kind, subtype = str(record.get("type") or ""), str(record.get("subtype") or "")
        if str(field_of(record, "ansType")) == "choice":
            options = [clean_option(o) for o in as_list(field_of(record, "options"))]
            yield Item(qid, question, letter_of(field_of(record, "choiceAns"), options, _where(record, qid), "index"),
                       "multiple_choice", [image], options, category=subtype, subset=kind)
        else:
            answer = str(field_of(record, "blankAns")).strip()
            yield Item(qid, question, answer, numeric_or_text(answer), [image], category=subtype, subset=kind)


def embspatial(source: Source) -> Iterator[Item]:
    """EmbSpatial-Bench (FlagEval/EmbSpatial-Bench test: question_id, image, question, answer_options, answer index,
    relation, data_source); ``subset`` = the spatial relation."""
    for record in source.records("**/test-*.parquet", "**/*.parquet"):
        qid = field_of(record, "question_id")
        options = [clean_option(o) for o in as_list(field_of(record, "answer_options"))]
        yield Item(str(qid), str(field_of(record, "question")).replace("<image>", "").strip(),
                   letter_of(field_of(record, "answer"), options, _where(record, qid), "index"), "multiple_choice",
                   [field_of(record, "image")], options, category=str(record.get("data_source") or ""),
                   subset=str(record.get("relation") or ""))


def infovqa(source: Source) -> Iterator[Item]:
    """InfographicVQA validation (lmms-lab/DocVQA, config InfographicVQA: questionId, question, answers, image);
    Det.: ANLS against every listed answer (``metric`` "anls", ``gold_answers``)."""
    for record in source.records("InfographicVQA/validation-*.parquet", "**/validation-*.parquet"):
        qid = field_of(record, "questionId")
        answers = [str(a) for a in as_list(field_of(record, "answers"))]
        yield Item(str(qid), str(field_of(record, "question")), answers,
                   "list_string_match" if len(answers) > 1 else "string_match", [field_of(record, "image")],
                   fields={"metric": "anls", "gold_answers": answers})


def mm_vet(source: Source) -> Iterator[Item]:
    """MM-Vet (lmms-lab/MMVet test: question_id, image, question, answer with <AND>/<OR> tags, capability);
    BenchJudge: the official MM-Vet grader (Fig. 10) reads the question and the tagged gold answer."""
    for record in source.records("**/test-*.parquet", "**/*.parquet"):
        qid = field_of(record, "question_id")
        question, answer = str(field_of(record, "question")), str(field_of(record, "answer"))
        capability = record.get("capability")
        capability = ",".join(as_list(capability)) if not isinstance(capability, str) else capability
        yield Item(str(qid), question, answer, "string_match", [field_of(record, "image")],
                   category=capability or "",
                   fields={"judge": "mm_vet", "judge_question": question, "gold_answers": [answer]})


# OCRBench v2's official score (eval_scripts/get_score.py) averages the task types within each capability, then the
# capabilities (8 English, 5 Chinese): ``subset`` = the capability, ``ocr_task`` = the task type.
OCRBENCH_V2_CAPABILITIES = {
    "en": {
        "text recognition": ("text recognition en", "fine-grained text recognition en", "full-page OCR en"),
        "text detection": ("text grounding en", "VQA with position en"),
        "text spotting": ("text spotting en",),
        "relationship extraction": ("key information extraction en", "key information mapping en"),
        "element parsing": ("document parsing en", "chart parsing en", "table parsing en", "formula recognition en"),
        "mathematical calculation": ("math QA en", "text counting en"),
        "visual text understanding": ("document classification en", "cognition VQA en", "diagram QA en"),
        "knowledge reasoning": ("reasoning VQA en", "science QA en", "APP agent en", "ASCII art classification en"),
    },
    "cn": {
        "text recognition": ("full-page OCR cn",),
        "relationship extraction": ("key information extraction cn", "handwritten answer extraction cn"),
        "element parsing": ("document parsing cn", "table parsing cn", "formula recognition cn"),
        "visual text understanding": ("cognition VQA cn",),
        "knowledge reasoning": ("reasoning VQA cn", "text translation cn"),
    },
}


def _ocrbench_v2(source: Source, language: str) -> Iterator[Item]:
    """OCRBench v2 (ling99/OCRBench_v2 test: id, dataset_name, question, type, answers, image, eval, bbox,
    bbox_list, content), the rows of one language (type ending " en" / " cn"); Det.: the official metric."""
    capability_of = {task: cap for cap, tasks in OCRBENCH_V2_CAPABILITIES[language].items() for task in tasks}
    for record in source.records("**/test-*.parquet", "**/*.parquet"):
        task = str(field_of(record, "type")).strip()
        if not task.endswith(f" {language}"):
            continue
        qid = field_of(record, "id")
        if task not in capability_of:
            raise SourceError(f"{_where(record, qid)}: unknown OCRBench v2 task type {task!r}")
        answers = [str(a) for a in as_list(field_of(record, "answers"))]
        meta = {key: _plain(record.get(key)) for key in ("bbox", "bbox_list", "content", "dataset_name")}
        yield Item(str(qid), str(field_of(record, "question")), answers,
                   "list_string_match" if len(answers) > 1 else "string_match", [field_of(record, "image")],
                   category=str(record.get("dataset_name") or ""), subset=capability_of[task],
                   fields={"metric": "ocrbench_v2", "ocr_task": task, "ocr_eval": str(record.get("eval") or ""),
                           "ocr_meta": json.dumps(meta, ensure_ascii=False), "gold_answers": answers})


def _plain(value):
    """A parquet cell as plain JSON data (numpy arrays and nested lists to lists)."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if hasattr(value, "tolist"):
        value = value.tolist()
    return [_plain(v) for v in value] if isinstance(value, (list, tuple)) else str(value)


def ocrbench_v2_en(source: Source) -> Iterator[Item]:
    """OCRBench v2, English subset (task types ending " en")."""
    yield from _ocrbench_v2(source, "en")


def ocrbench_v2_zh(source: Source) -> Iterator[Item]:
    """OCRBench v2, Chinese subset (task types ending " cn")."""
    yield from _ocrbench_v2(source, "cn")


def visualpuzzles(source: Source) -> Iterator[Item]:
    """VisualPuzzles (neulab/VisualPuzzles train: id, category, image, question, options (four texts, or null when
    the options are drawn in the image), answer letter); ``subset`` = the reasoning category."""
    for number, record in enumerate(source.records("**/train-*.parquet", "**/*.parquet")):
        qid = str(field_of(record, "id", required=False, default=number))
        options = [clean_option(o) for o in as_list(record.get("options"))]
        question = str(field_of(record, "question")).strip()
        category = str(record.get("category") or "")
        answer = str(field_of(record, "answer")).strip()
        if options:
            yield Item(qid, question, letter_of(answer, options, _where(record, qid), "letter"), "multiple_choice",
                       [field_of(record, "image")], options, category=category, subset=category)
        else:  # the options are in the image: the benchmark's own wording says so
            yield Item(qid, question + "\nOptions: Choose from (A) (B) (C) (D) in the image.",
                       letter_of(answer, ["A", "B", "C", "D"], _where(record, qid), "letter"), "multiple_choice",
                       [field_of(record, "image")], category=category, subset=category)


def vlms_are_blind(source: Source) -> Iterator[Item]:
    """VLMs are Blind (XAI/vlmsareblind, split valid: image, prompt, groundtruth, task); the prompt's answer-format
    sentence ("Answer with a number in curly brackets, e.g., {3}.") is replaced by the closer; ``subset`` = task."""
    for number, record in enumerate(source.records("**/valid-*.parquet", "**/*.parquet")):
        answer = str(field_of(record, "groundtruth")).strip().strip("{}")
        task = str(record.get("task") or "")
        yield Item(str(number), strip_format_instructions(str(field_of(record, "prompt"))), answer,
                   numeric_or_text(answer), [field_of(record, "image")], category=task, subset=task)
