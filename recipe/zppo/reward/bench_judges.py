"""The benchmark-specific official judge prompts of App. B.2 (Figs 10-15) and how each reply is read.

App. B.2: "Five of our 31 benchmarks ship their own official judge prompt that we reproduce verbatim from the upstream
evaluators ...: MM-Vet, MultiChallenge, MMVU, HLE, and CharXiv (which uses two separate templates for its Reasoning
and Descriptive question types). Placeholders in {{ ... }} are filled in at judge call time." The strings below are the
figures' text, verbatim (typographic quotes kept); the figures lose their line breaks in print, so the breaks here are
ours. Annotations that belong to the figure, not to the prompt ("(MCQ only)", "(Open-ended branch only)"), select a
Jinja2 branch, as Fig. 9's "(rendered only when non-empty)" does in ``judge.py``.

Gaps the paper leaves (*ours*, named in docs/evaluation.md):

- MM-Vet (Fig. 10): the figure prints the first few-shot rows and elides the rest ("9 additional MM-Vet exemplars
  ... kept verbatim", "the full table is shipped with the codebase", which is not public); only the printed rows are
  here. The figure's table rule is printed with dashes as "— | — | — | —"; it is written as the Markdown rule
  ``--- | --- | --- | ---``.
- CharXiv (Figs 14-15): the rubric bodies (``{{ rules }}``: 4 reasoning answer types; ``{{ rubric }}``: the
  descriptive classes) are not in the paper; they live in CharXiv's own evaluator code, which is not reproduced here.
  The slot names the row's answer type / template instead (``extra_info["inst_category"]``: reasoning answer type 1-4,
  descriptive template id 1-19, ``charxiv_rubric_fallback``), and a warning says so once.

Row fields read (written by ``data_prep.benchmarks``, docs/evaluation.md "Row fields"): ``judge_question`` (the
question as the official judge shows it: no options block, frames or closer; CharXiv descriptive: the template's
overarching question), ``choices`` + ``question_type`` (MMVU's two modes), ``target_question`` + ``pass_criteria``
(MultiChallenge), ``inst_category`` (CharXiv); the gold is ``gold_answers`` (else the row's ground truth).

Replies are read strictly, as App. B.2 reads Fig. 9's: after a closed reasoning block, one JSON object with the
figure's keys (HLE: ``correct`` "yes"/"no"; CharXiv: ``score`` 0/1; MMVU: ``verdict``), MultiChallenge's last
"YES"/"NO" word (its prompt asks for prose then the verdict) compared with the row's pass criterion, MM-Vet's
correctness number in [0, 1] (a graded score: MM-Vet averages it). Anything else is malformed and scores 0.
"""

from __future__ import annotations

import json
import logging
import re
import threading

logger = logging.getLogger(__name__)

JUDGES = ("charxiv_reasoning", "charxiv_descriptive", "mm_vet", "hle", "multichallenge", "mmvu")

# Fig. 10: MM-Vet, from the official evaluator; the printed exemplar rows only (see the module docstring).
MM_VET_TEMPLATE = (
    "Compare the ground truth and prediction from AI models, to give a correctness score for the prediction. <AND> in "
    "the ground truth means it is totally right only when all elements in the ground truth are present in the "
    "prediction, and <OR> means it is totally right when any one element in the ground truth is present in the "
    "prediction. The correctness score is 0.0 (totally wrong), 0.1,0.2,...,0.9, or 1.0 (totally right). Just complete "
    "the last space of the correctness score.\n"
    "\n"
    "Question | Ground truth | Prediction | Correctness\n"
    "--- | --- | --- | ---\n"
    "What is x in the equation? | -1 <AND> -5 | x = 3 | 0.0\n"
    "What is x in the equation? | -1 <AND> -5 | x = -1 | 0.5\n"
    "What is x in the equation? | -1 <AND> -5 | x = -5 | 0.5\n"
    "What is x in the equation? | -1 <AND> -5 | x = -5 or 5 | 0.5\n"
    "What is x in the equation? | -1 <AND> -5 | x = -1 or x = -5 | 1.0\n"
    "{{ question }} | {{ ground_truth }} | {{ prediction }} |"
)

# Fig. 11: MultiChallenge's YES/NO verifier (Scale AI).
MULTICHALLENGE_TEMPLATE = (
    "You are tasked with evaluating a model response to see if it meets a specific criteria. The criteria will always "
    "be YES/NO evaluation.\n"
    "\n"
    "The model response is as follows:\n"
    "<MODEL_RESPONSE>\n"
    "{{ response }}\n"
    "</MODEL_RESPONSE>\n"
    "\n"
    "The criteria that the model response must meet is as follows. Be VERY STRICT!:\n"
    "<CRITERIA>\n"
    "{{ target_question }}\n"
    "</CRITERIA>\n"
    "\n"
    "Print your reasoning followed by your verdict, either “YES” or “NO”."
)

# Fig. 12: MMVU's two-mode template (Yale-NLP): the options section for multiple choice, the paragraph for open-ended.
MMVU_TEMPLATE = (
    "Evaluate whether the model’s final answer is correct by comparing it to the ground-truth answer provided for the "
    "given question. You should first extract the final answer from the model’s response, and then compare the "
    "extracted answer with the ground-truth answer to determine its accuracy.\n"
    "{% if open_ended %}The final answer generated by the model does not need to match the ground-truth answer "
    "word-for-word. However, it should ONLY be considered correct if it demonstrates the exact same technique or "
    "concept explicitly and unambiguously equivalent to the ground-truth answer.\n"
    "{% endif %}## Question\n"
    "{{ question }}\n"
    "{% if not open_ended %}## Options\n"
    "{{ options }}\n"
    "{% endif %}## Ground Truth Answer\n"
    "{{ ground_truth }}\n"
    "## Model’s Full Response\n"
    "{{ model_response }}\n"
    "Output ONLY a valid JSON object with exactly this format (no prose, no code fences, no trailing commentary): "
    "{\"verdict\": \"correct\" or \"wrong\"}"
)

# Fig. 13: HLE's official judge (CAIS); it sees the full response, <think> included.
HLE_TEMPLATE = (
    "Judge whether the following [response] to [question] is correct or not based on the precise and unambiguous "
    "[correct_answer] below.\n"
    "\n"
    "[question]: {{ question }}\n"
    "\n"
    "[response]: {{ response }}\n"
    "\n"
    "Your judgement must be in the format and criteria specified below:\n"
    "\n"
    "extracted_final_answer: The final exact answer extracted from the [response]. Put the extracted answer as ‘None’ "
    "if there is no exact, final answer to extract from the response.\n"
    "\n"
    "[correct_answer]: {{ correct_answer }}\n"
    "\n"
    "reasoning: Explain why the extracted answer is correct or incorrect based on [correct_answer], focusing only on "
    "whether there are meaningful differences. Do not solve the problem, do not argue for any answer different than "
    "[correct_answer], focus only on whether the answers match.\n"
    "\n"
    "correct: Answer ‘yes’ if extracted_final_answer matches [correct_answer] (or is within a small margin of error "
    "for numerical problems), ‘no’ otherwise.\n"
    "\n"
    "confidence: Confidence score ∈ [0%,100%] extracted from [response] (default 100). Respond with ONLY a single "
    "JSON object using exactly these keys: extracted_final_answer, reasoning, correct (\"yes\"/\"no\"), confidence "
    "(integer 0–100)."
)

# Fig. 14: CharXiv Reasoning (the rules: one of 4 rubric categories).
CHARXIV_REASONING_TEMPLATE = (
    "You will be given a question, a ground truth answer and a model response. You need to extract the final answer "
    "from the model response, compare it with the ground truth answer, and then assign a binary score. Avoid "
    "providing explanations in your response. If there is no provided model response, please leave the extracted "
    "answer empty and give a score of 0. Your response must follow JSON format with keys [extracted_answer, score] "
    "where score∈ {0,1}. You must follow the scoring rules: {{ rules }}\n"
    "### Your Turn ###\n"
    "* Question: {{ question }}\n"
    "* Ground Truth: {{ ground_truth }}\n"
    "* Response: {{ response }}\n"
    "Respond with ONLY a single JSON object using exactly these keys: extracted_answer (string), score (integer 0 or "
    "1)."
)

# Fig. 15: CharXiv Descriptive (the rubric: one of 7 classes).
CHARXIV_DESCRIPTIVE_TEMPLATE = (
    "You will be given a pair of ground truth answer and model response under an overarching question. You need to "
    "extract the final answer from the model response, compare it with the ground truth answer, and then assign a "
    "binary score. Avoid providing explanations in your response. If there is no provided model response, please "
    "leave the extracted answer empty and give a score of 0. Your response must follow JSON format with keys "
    "[extracted_answer, score] where score∈ {0,1}. Overarching Question: {{ overarching_question }}\n"
    "{{ rubric }}\n"
    "### Your Turn ###\n"
    "Response: {{ response }}\n"
    "Ground Truth: {{ ground_truth }}\n"
    "Respond with ONLY a single JSON object using exactly these keys: extracted_answer (string), score (integer 0 or "
    "1)."
)

TEMPLATES = {
    "charxiv_reasoning": CHARXIV_REASONING_TEMPLATE,
    "charxiv_descriptive": CHARXIV_DESCRIPTIVE_TEMPLATE,
    "mm_vet": MM_VET_TEMPLATE,
    "hle": HLE_TEMPLATE,
    "multichallenge": MULTICHALLENGE_TEMPLATE,
    "mmvu": MMVU_TEMPLATE,
}
# Which extra_info fields each judge needs besides the response (the gold is reward_model.ground_truth).
REQUIRED_FIELDS = {
    "charxiv_reasoning": ("judge_question", "inst_category"),
    "charxiv_descriptive": ("judge_question", "inst_category"),
    "mm_vet": ("judge_question",),
    "hle": ("judge_question",),
    "multichallenge": ("target_question", "pass_criteria"),
    "mmvu": ("judge_question",),
}
# CharXiv's reasoning answer types (its release's ``reasoning_a_type``, the official grader's ``inst_category``).
CHARXIV_ANSWER_TYPES = {"1": "text-in-chart", "2": "text-in-general", "3": "number-in-chart", "4": "number-in-general"}

_compiled: dict[str, object] = {}
_lock = threading.Lock()
_warned: set[str] = set()


def _warn_once(message: str) -> None:
    if message not in _warned and len(_warned) < 100:
        _warned.add(message)
        logger.warning(message)


def _template(name: str):
    with _lock:
        if name not in _compiled:
            import jinja2

            environment = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False,
                                             keep_trailing_newline=True)
            _compiled[name] = environment.from_string(TEMPLATES[name])
        return _compiled[name]


def _text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, tuple)) or hasattr(value, "tolist"):
        items = value.tolist() if hasattr(value, "tolist") else list(value)
        return "\n".join(str(v) for v in items)
    return str(value)


def render(judge: str, extra_info: dict, response: str, gold: str, options: str = "") -> str:
    """The official prompt of ``judge`` for one answer (``extra_info``: the row's fields, see ``REQUIRED_FIELDS``).
    Raises KeyError for an unknown judge, ValueError naming a missing field."""
    if judge not in TEMPLATES:
        raise KeyError(f"unknown benchmark judge {judge!r} (known: {', '.join(JUDGES)})")
    info = extra_info or {}
    for key in REQUIRED_FIELDS[judge]:
        if not str(info.get(key) or "").strip():
            raise ValueError(f"benchmark judge {judge}: extra_info[{key!r}] is missing")
    question = _text(info.get("judge_question"))
    if judge == "mm_vet":
        return _template(judge).render(question=question, ground_truth=gold, prediction=response)
    if judge == "multichallenge":
        return _template(judge).render(response=response, target_question=_text(info["target_question"]))
    if judge == "mmvu":
        kind = str(info.get("question_type") or "").lower()
        open_ended = ("open" in kind) if kind else not options
        return _template(judge).render(question=question, options=options, ground_truth=gold,
                                       model_response=response, open_ended=open_ended)
    if judge == "hle":
        return _template(judge).render(question=question, response=response, correct_answer=gold)
    rubric = charxiv_rubric_fallback(judge, info)
    if judge == "charxiv_reasoning":
        return _template(judge).render(rules=rubric, question=question, ground_truth=gold, response=response)
    return _template(judge).render(overarching_question=question, rubric=rubric, response=response,
                                   ground_truth=gold)


def charxiv_rubric_fallback(judge: str, extra_info: dict) -> str:
    """What fills CharXiv's rubric slot: the official rubric bodies are not in the paper (module docstring), so the
    slot names the row's reasoning answer type ("answer type 4 (number-in-general)") or descriptive template
    ("descriptive template 19"), from ``extra_info["inst_category"]`` (*ours*); a warning says so once."""
    category = str(extra_info.get("inst_category") or "").strip()
    _warn_once(f"benchmark judge {judge}: CharXiv's official rubric bodies are not in the paper; the prompt names the "
               "row's answer type / template (extra_info['inst_category']) instead")
    if judge == "charxiv_reasoning":
        name = CHARXIV_ANSWER_TYPES.get(category)
        return f"(answer type {category}{f' ({name})' if name else ''})"
    return f"(descriptive template {category})"


# ------------------------------------------------------------------------------------------------ replies


def _after_reasoning(text) -> str | None:
    """The reply after a closed reasoning block; None when a block opens and never closes (or no text)."""
    if not isinstance(text, str):
        return None
    if "</think>" in text:
        return text.rsplit("</think>", 1)[1]
    if "<think>" in text:
        return None
    return text


def _json_object(text) -> dict | None:
    body = _after_reasoning(text)
    if body is None:
        return None
    try:
        reply = json.loads(body.strip())
    except ValueError:
        return None
    return reply if isinstance(reply, dict) else None


def parse_hle(text) -> bool | None:
    """Fig. 13: a JSON object whose ``correct`` is "yes" or "no"."""
    reply = _json_object(text)
    value = reply.get("correct") if reply else None
    if not isinstance(value, str):
        return None
    return {"yes": True, "no": False}.get(value.strip().lower())


def parse_charxiv(text) -> bool | None:
    """Figs 14-15: a JSON object whose ``score`` is 0 or 1 (number or digit string)."""
    reply = _json_object(text)
    if not reply or "score" not in reply or isinstance(reply["score"], bool):
        return None
    score = reply["score"]
    if isinstance(score, str) and score.strip() in ("0", "1"):
        score = int(score.strip())
    if isinstance(score, (int, float)) and score in (0, 1):
        return bool(score)
    return None


def parse_mmvu(text) -> bool | None:
    """Fig. 12: exactly ``{"verdict": "correct" | "wrong"}`` (the same strict reading as Fig. 9's)."""
    from recipe.zppo.reward.judge import parse_verdict

    return parse_verdict(text)


_YES_NO = re.compile(r"\b(YES|NO)\b")


def parse_multichallenge(text) -> str | None:
    """Fig. 11: the verdict is the last "YES" or "NO" word of the reply (reasoning comes first)."""
    body = _after_reasoning(text)
    found = _YES_NO.findall(body or "")
    return found[-1] if found else None


_NUMBER = re.compile(r"^\s*(?:Correctness\s*[:|]?\s*)?([01](?:\.\d+)?|\.\d+)\s*\|?\s*$")


def parse_mm_vet(text) -> float | None:
    """Fig. 10: the reply completes the table's last cell: a correctness number in [0, 1], nothing else."""
    body = _after_reasoning(text)
    match = _NUMBER.match(body or "")
    if not match:
        return None
    value = float(match.group(1))
    return value if 0.0 <= value <= 1.0 else None


def parser_for(judge: str, extra_info: dict | None = None):
    """``text -> float | bool | None`` for ``judge``: the score of one answer (1/0, MM-Vet's number) or None."""
    if judge == "hle":
        return parse_hle
    if judge in ("charxiv_reasoning", "charxiv_descriptive"):
        return parse_charxiv
    if judge == "mmvu":
        return parse_mmvu
    if judge == "mm_vet":
        return parse_mm_vet
    if judge == "multichallenge":
        wanted = str((extra_info or {}).get("pass_criteria") or "").strip().upper()

        def parse(text):
            verdict = parse_multichallenge(text)
            return None if verdict is None else verdict == wanted

        return parse
    raise KeyError(f"unknown benchmark judge {judge!r} (known: {', '.join(JUDGES)})")
