"""OCRBench v2's official per-task scoring (Fu et al. 2024, arXiv 2501.00321; the rules of the benchmark's
``OCRBench_v2/eval_scripts``), re-implemented as pure functions: the Det. metric of App. B.2 / Tab. 5 for OCREN/OCRZH.

One answer's score is picked by its task type (the row's ``ocr_task``, e.g. "text grounding en") and variant
(``ocr_eval``: "multiple choice", "case sensitive", "exact match", "regression"; "None" = none):

=================================== ===========================================================================
task types                          official metric (how the answer is parsed)
=================================== ===========================================================================
short-answer VQA (en): text         a gold of < 5 words must occur in the lower-cased prediction, a longer one
recognition, cognition/reasoning    scores 1 - NL when >= 0.5 (max over golds); "case sensitive": the same
VQA, diagram/science/math QA, APP   without lower-casing; "multiple choice": the prediction's letters
agent, ASCII art, doc. classif.     (``str.isalpha``) equal the gold
cognition/reasoning VQA cn          spaces removed; a gold of < 4 comma-separated parts by containment, else
                                    1 - NL when >= 0.5; the same variants
text counting en                    "exact match": the gold occurs in the prediction; "regression": the first
                                    integer n of the prediction scores 1 - |n - g| / g when that is > 0.5
formula recognition en / cn         whitespace removed, the gold occurs in the prediction (cn: ``\\text{..}``
                                    unwrapped first)
full-page OCR en/cn, fine-grained   mean of BLEU-4, METEOR, the F1 of the word sets and 1 - normalised
text recognition en, text           character edit distance (words: whitespace split; Chinese: jieba words)
translation cn, handwritten answer
extraction cn (questions with 简答)
handwritten answer extraction cn    the gold letters, joined by any of 10 separators, occur in the prediction
text grounding en                   IoU of the last [x1, y1, x2, y2] box (0..1000) of the prediction with the gold
VQA with position en                0.5 * VQA score of the parsed dict's "answer" + 0.5 * IoU of its "bbox"
text spotting en                    ICDAR end-to-end hmean: [x1, y1, x2, y2, text] boxes, a detection counts when
                                    IoU > 0.5 with a not-yet-matched gold box and its text equals the gold's
                                    (case-insensitive, one special character at either end of the gold allowed)
key information extraction en/cn,   mean over the union of keys of exact value match (lower-cased, spaces
key information mapping en          removed), the prediction parsed as a dict; max over the gold alternatives
table parsing en/cn, chart parsing  TEDS: 1 - tree edit distance / node count of the HTML tables (cells compared
en                                  by normalised token edit distance); markdown tables and chart dicts are
                                    converted to HTML tables first
document parsing en/cn              STEDS: 1 - tree edit distance / node count of the markdown heading trees
=================================== ===========================================================================

Libraries, as the official scripts use them: nltk's BLEU, METEOR and ``f_measure``, rapidfuzz's Levenshtein distance
(the official ``nltk.edit_distance`` / ``distance`` / ``editdistance``), APTED's tree edit distance.

Deviations (*ours*): METEOR without nltk's WordNet synonym stage (the WordNet corpus is fetched by ``nltk.download``,
not packaged on PyPI; the exact and Porter-stem stages run); Chinese text is cut into characters (CJK) and whitespace
words, not jieba words; STEDS uses APTED (the official zss gives the same optimum) and each tree keeps at most
``MAX_TREE_NODES`` nodes; the HTML is parsed by the standard library's ``html.parser`` (lxml's lenient repairs
approximated: implied ``</td>``/``</tr>``); strings are cut to ``MAX_EDIT_CHARS`` before an edit distance; "text
counting" without a variant counts as "exact match" (the official script scores it 0); an unknown variant scores None
(reason ``ocr_eval_unknown``).
"""

from __future__ import annotations

import ast
import json
import re
import warnings
from html.parser import HTMLParser
from itertools import product

from apted import APTED, Config
from nltk.metrics import f_measure
from nltk.translate.bleu_score import sentence_bleu
from nltk.translate.meteor_score import meteor_score
from rapidfuzz.distance import Levenshtein

# nltk warns for every BLEU order without a match (common for short OCR answers); the score it gives is the official one
warnings.filterwarnings("ignore", r"\s*The hypothesis contains 0 counts", UserWarning, r"nltk\.translate\.bleu_score")

MAX_EDIT_CHARS = 4_000  # *ours*: longer strings are cut before an edit distance (bounded time)
MAX_TREE_NODES = 1_000  # *ours*: a larger tree keeps its first nodes (preorder) before the tree edit distance
MAX_KIE_COMBINATIONS = 1_024  # *ours*: more gold alternatives: per-key best match (equal unless a value is None)
ANLS_MIN = 0.5
NO_VARIANT = {"", "none", "null", "nan"}

VQA_EN = {"app agent en", "ascii art classification en", "math qa en", "reasoning vqa en", "science qa en",
          "text recognition en", "document classification en", "cognition vqa en", "diagram qa en"}
VQA_CN = {"cognition vqa cn", "reasoning vqa cn"}
PAGE_OCR = {"full-page ocr en", "full-page ocr cn", "fine-grained text recognition en", "text translation cn"}
KIE = {"key information extraction en", "key information mapping en", "key information extraction cn"}
TABLES = {"table parsing en", "table parsing cn"}
DOC_PARSING = {"document parsing en", "document parsing cn"}
TASK_TYPES = VQA_EN | VQA_CN | PAGE_OCR | KIE | TABLES | DOC_PARSING | {
    "handwritten answer extraction cn", "formula recognition en", "formula recognition cn", "text counting en",
    "chart parsing en", "text grounding en", "vqa with position en", "text spotting en"}


# ------------------------------------------------------------------------------------------------ edit distance


def similarity(a, b) -> float:
    """1 - Levenshtein distance over the longer length (1 for two empty sequences) of two sequences (strings, or
    lists of hashable tokens: TEDS cells), each cut to ``MAX_EDIT_CHARS`` first."""
    return Levenshtein.normalized_similarity(a[:MAX_EDIT_CHARS], b[:MAX_EDIT_CHARS])


# ------------------------------------------------------------------------------------------------ short answers


def _containment_or_similarity(prediction: str, golds: list[str], norm, is_short) -> float:
    """The best gold: a short one (``is_short``) must occur in the prediction; a longer one scores the ANLS-like
    1 - NL when that is >= 0.5 (both after ``norm``)."""
    pred, best = norm(prediction), 0.0
    for gold in golds:
        answer = norm(gold)
        if is_short(answer):
            best = max(best, float(answer in pred))
        else:
            score = similarity(pred, answer)
            if score >= ANLS_MIN:
                best = max(best, score)
    return best


def vqa_score(prediction: str, golds: list[str], case_sensitive: bool = False) -> float:
    """OCRBench v2's English VQA rule: a gold of fewer than 5 words must occur in the prediction; a longer one scores
    the ANLS-like 1 - NL when that is >= 0.5. Both stripped, newlines as spaces, lower-cased unless case sensitive."""
    def norm(text) -> str:
        text = str(text).strip().replace("\n", " ")
        return text if case_sensitive else text.lower()

    return _containment_or_similarity(prediction, golds, norm, lambda answer: len(answer.split()) < 5)


def cn_vqa_score(prediction: str, golds: list[str]) -> float:
    """The Chinese VQA rule: lower-cased, spaces removed; a gold of fewer than 4 comma-separated parts must occur in
    the prediction, a longer one scores 1 - NL when that is >= 0.5."""
    def norm(text) -> str:
        return str(text).lower().strip().replace("\n", " ").replace(" ", "")

    return _containment_or_similarity(prediction, golds, norm, lambda answer: len(answer.split(",")) < 4)


def multiple_choice_score(prediction: str, golds: list[str]) -> float:
    """"multiple choice": the prediction's alphabetic characters, joined, equal the (single) gold exactly."""
    letters = "".join(ch for ch in prediction if ch.isalpha())
    return float(bool(golds) and letters == str(golds[0]))


def counting_score(prediction: str, golds: list[str], variant: str) -> float:
    """Text counting: "exact match" = the gold occurs in the prediction; "regression" = the first integer n of the
    prediction scores 1 - |n - g| / g when 0 < n < 2g and that is > 0.5. Max over golds."""
    pred, best = prediction.lower().strip().replace("\n", " "), 0.0
    first = re.search(r"\d+", pred)
    for gold in golds:
        answer = str(gold).lower().strip().replace("\n", " ")
        if variant == "regression":
            try:
                target, number = int(answer), int(first.group()) if first else 0
            except ValueError:
                continue
            if number <= 0 or target <= 0 or number >= 2 * target:
                continue
            closeness = 1.0 - abs(number - target) / target
            best = max(best, closeness if closeness > 0.5 else 0.0)
        else:
            best = max(best, float(answer in prediction))
    return best


def formula_score(prediction: str, golds: list[str], chinese: bool) -> float:
    """Formula recognition: whitespace removed, the gold occurs in the prediction (case-sensitive); the Chinese
    variant first unwraps ``\\text{...}``."""
    def norm(text: str) -> str:
        if chinese:
            text = re.sub(r"\\text\{([^{}]*)\}", r"\1", text)
        return text.strip().replace("\n", " ").replace(" ", "")

    pred = norm(prediction)
    return float(any(norm(str(g)) in pred for g in (golds[:1] if chinese else golds)))


HANDWRITING_SEPARATORS = ("", ".", ". ", ",", ", ", "、", ";", "; ", " ", "和")


def handwriting_choice_score(prediction: str, golds: list[str]) -> float:
    """Handwritten answer extraction (choice questions): the gold's characters, joined by any of the official
    separators, occur in the prediction."""
    answer = str(golds[0]) if golds else ""
    if not answer:
        return 0.0
    joined = [sep.join(answer) for sep in HANDWRITING_SEPARATORS] if len(answer) > 1 else [answer]
    return float(any(candidate in prediction for candidate in joined))


# ------------------------------------------------------------------------------------------------ page OCR


_HAN = re.compile(r"[\u4e00-\u9fa5]")
_TOKEN = re.compile(r"[\u4e00-\u9fa5]|[^\s\u4e00-\u9fa5]+")


def _tokens(text: str, chinese: bool) -> list[str]:
    """Whitespace words; with Chinese text, each Han character and each non-Han run (*ours*: jieba's words)."""
    return _TOKEN.findall(text) if chinese else text.split()


def bleu(reference: list[str], hypothesis: list[str]) -> float:
    """Sentence BLEU-4 with one reference as the official ``nltk.translate.bleu([reference], hypothesis)``: uniform
    weights, no smoothing, so an order without a match gives nltk's ~1e-77 (``sys.float_info.min`` ** 0.25)."""
    return sentence_bleu([reference], hypothesis)


class _NoWordNet:
    """A WordNet stand-in without synsets for nltk's METEOR: the WordNet corpus is not on PyPI (``nltk.download``
    fetches it), so the synonym stage matches nothing."""

    @staticmethod
    def synsets(word: str) -> list:
        return []


def meteor(reference: list[str], hypothesis: list[str]) -> float:
    """nltk's METEOR (``meteor_score([reference], hypothesis)``, as the official: lower-cased words, alpha 0.9, beta 3,
    gamma 0.5) with its exact and Porter-stem stages; *ours*: no WordNet synonym stage (see ``_NoWordNet``)."""
    return meteor_score([reference], hypothesis, wordnet=_NoWordNet())


def set_f1(reference: list[str], hypothesis: list[str]) -> float:
    """F1 of the word sets (nltk's ``f_measure``, as the official; 0 where it gives None: an empty set)."""
    return f_measure(set(reference), set(hypothesis)) or 0.0


def page_ocr_score(prediction: str, gold: str) -> float:
    """Full-page OCR / translation / long handwriting: mean of BLEU, METEOR, word-set F1 and 1 - the character edit
    distance over the longer length (of the raw strings)."""
    if not prediction or not gold:
        return 0.0
    chinese = bool(_HAN.search(gold) or _HAN.search(prediction))
    reference, hypothesis = _tokens(gold, chinese), _tokens(prediction, chinese)
    return (bleu(reference, hypothesis) + meteor(reference, hypothesis) + set_f1(reference, hypothesis)
            + similarity(prediction, gold)) / 4


# ------------------------------------------------------------------------------------------------ boxes


def box_iou(box1, box2) -> float:
    """IoU of two [x1, y1, x2, y2] boxes (integer coordinates, as the official); 0 when unreadable."""
    try:
        a = [int(float(c)) for c in box1][:4]
        b = [int(float(c)) for c in box2][:4]
        if len(a) < 4 or len(b) < 4:
            return 0.0
    except (TypeError, ValueError):
        return 0.0
    inter = max(0, min(a[2], b[2]) - max(a[0], b[0])) * max(0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union else 0.0


_BOX = re.compile(r"[(\[]\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*[)\]]")


def last_box(text: str) -> list[int] | None:
    """The last (x1, y1, x2, y2) or [x1, y1, x2, y2] of the text whose four integers are within 0..1000."""
    boxes = [[int(g) for g in m.groups()] for m in _BOX.finditer(text)]
    boxes = [b for b in boxes if all(0 <= v <= 1000 for v in b)]
    return boxes[-1] if boxes else None


def grounding_score(prediction: str, golds: list[str]) -> float:
    """Text grounding: IoU of the prediction's last box with the gold box (the answer list is its 4 coordinates)."""
    box = last_box(prediction)
    gold = golds
    if len(golds) == 1:  # *ours*: a gold given as one "[x1, y1, x2, y2]" string
        gold = _literal(golds[0]) or []
    return box_iou(box, gold) if box else 0.0


def _literal(text):
    try:
        return ast.literal_eval(str(text).strip())
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return None


def answer_dict(prediction: str) -> dict:
    """The official prediction-to-dict parse (KIE, VQA with position): the first ```python/json fenced block (else
    the text); JSON, else a Python literal dict, else ``key: value`` / ``key = value`` pairs (key of word characters
    and spaces, optionally quoted; value up to a newline, comma, quote or brace); keys and values stripped strings."""
    fence = re.search(r"```(?:python|json)?\n(.*?)\n```", prediction, re.DOTALL | re.IGNORECASE)
    content = fence.group(1) if fence else prediction.strip()
    data = None
    try:
        data = json.loads(content)
    except (json.JSONDecodeError, RecursionError):
        parsed = _literal(content)
        if isinstance(parsed, dict):
            data = parsed
    if data is None:
        data = {}
        for key, value in re.findall(r"[\"']?([\w\s]+)[\"']?\s*[:=]\s*[\"']?([^\n,\"'{}]+)[\"']?", content):
            data[key.strip()] = value.strip()
    if not isinstance(data, dict) or not data:
        return {}
    return {str(k).strip(): str(v).strip() for k, v in data.items()}


def vqa_with_position_score(prediction: str, golds: list[str], gold_box) -> float:
    """VQA with position: 0.5 * the VQA score of the dict's "answer" + 0.5 * the IoU of its "bbox" with the gold box."""
    parsed = answer_dict(prediction)
    content = vqa_score(parsed["answer"], golds) if "answer" in parsed else 0.0
    box = _literal(parsed["bbox"]) if "bbox" in parsed else None
    iou = box_iou(box, gold_box) if isinstance(box, (list, tuple)) and gold_box else 0.0
    return 0.5 * content + 0.5 * iou


# ------------------------------------------------------------------------------------------------ text spotting

SPOTTING_SPECIALS = "!?.:,*\"()·[]/'"


def spotting_boxes(prediction: str) -> list[tuple[int, int, int, int, str]]:
    """The prediction's [x1, y1, x2, y2, text] items: a Python list literal, else every bracketed group split at its
    first four commas; integer coordinates within 0..1000, text without newlines and outer quotes, duplicates once."""
    data = _literal(prediction)
    if data is not None:
        items = [item[:5] for item in data if isinstance(item, (list, tuple)) and len(item) >= 5] \
            if isinstance(data, (list, tuple)) else []
    else:
        items = [group.split(",", 4) for group in re.findall(r"[\[(]\s*([^\[\]()]*?)\s*[\])]", prediction)]
        items = [parts for parts in items if len(parts) == 5]
    boxes, seen = [], set()
    for *coords, text in items:
        try:
            x1, y1, x2, y2 = (int(str(c).strip()) for c in coords)
        except ValueError:
            continue
        text = str(text).replace("\n", "").strip().strip('"').strip("'")
        key = (x1, y1, x2, y2, text)
        if all(0 <= v <= 1000 for v in key[:4]) and key not in seen:
            seen.add(key)
            boxes.append(key)
    return boxes


def _rect_area(r) -> int:
    return (r[2] - r[0]) * (r[3] - r[1])


def _rect_intersection(a, b) -> int:
    return max(0, min(a[2], b[2]) - max(a[0], b[0])) * max(0, min(a[3], b[3]) - max(a[1], b[1]))


def _transcription_match(gold: str, det: str) -> bool:
    """ICDAR rule: equal, or equal once one special character is dropped from the gold's start, end or both."""
    if gold == det:
        return True
    if not gold:
        return False
    first, last = gold[0] in SPOTTING_SPECIALS, gold[-1] in SPOTTING_SPECIALS
    return (first and gold[1:] == det) or (last and gold[:-1] == det) or (first and last and gold[1:-1] == det)


def spotting_score(prediction: str, gold_polygons, gold_texts, iou_threshold: float = 0.5,
                   dont_care_overlap: float = 0.5) -> float:
    """Text spotting (ICDAR 2015 end-to-end, one image): gold polygons become their bounding rectangles; a gold "###"
    is don't-care, as is a detection covered > 50% by one; gold and detection pair greedily (gold order, then
    detection order) when IoU > 0.5 and neither is paired yet; a pair is correct when the upper-cased texts match.
    Score: the hmean of precision (correct / cared detections) and recall (correct / cared golds)."""
    dets = [b for b in spotting_boxes(prediction) if b[0] < b[2] and b[1] < b[3]]
    golds = []
    for polygon, text in zip(gold_polygons or [], gold_texts or []):
        try:
            xs, ys = [int(v) for v in polygon[0::2]], [int(v) for v in polygon[1::2]]
        except (TypeError, ValueError):
            continue
        if xs and ys:
            text = str(text).strip()
            if len(text) >= 2 and text[0] == text[-1] == '"':
                text = text[1:-1].replace('\\\\', '\\').replace('\\"', '"')
            golds.append(((min(xs), min(ys), max(xs), max(ys)), text))
    if not dets or not golds:
        return 0.0
    gold_care = [text != "###" for _, text in golds]
    det_care = []
    for det in dets:
        area = _rect_area(det)
        covered = any(not care and area and _rect_intersection(rect, det) / area > dont_care_overlap
                      for (rect, _), care in zip(golds, gold_care))
        det_care.append(not covered)
    gold_used, det_used, correct = [False] * len(golds), [False] * len(dets), 0
    for g, (rect, text) in enumerate(golds):
        for d, det in enumerate(dets):
            if gold_used[g] or det_used[d] or not gold_care[g] or not det_care[d]:
                continue
            inter = _rect_intersection(rect, det)
            union = _rect_area(rect) + _rect_area(det) - inter
            if union and inter / union > iou_threshold:
                gold_used[g] = det_used[d] = True
                correct += _transcription_match(text.upper(), det[4].upper())
    n_gold, n_det = sum(gold_care), sum(det_care)
    recall = correct / n_gold if n_gold else 0.0
    precision = correct / n_det if n_det else 0.0
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


# ------------------------------------------------------------------------------------------------ KIE


def _gold_dict(text):
    """A gold KIE/chart answer as a dict: JSON (outer quotes stripped), else a Python literal; a parse that gives a
    string is parsed once more."""
    value = text
    for _ in range(2):
        if isinstance(value, dict):
            return value
        raw = str(value).strip().strip('"') if value is text else str(value)
        try:
            value = json.loads(raw)
        except (json.JSONDecodeError, RecursionError):
            value = _literal(raw)
        if not isinstance(value, str):
            break
    return value if isinstance(value, dict) else None


def _kie_norm(value):
    return str(value).lower().strip().replace("\n", " ").replace(" ", "") if value else value


def _kie_f1(pred: dict, gold: dict) -> float:
    scores = []
    for key in set(pred) | set(gold):
        p, g = _kie_norm(pred.get(key)), _kie_norm(gold.get(key))
        if p is None and g is None:
            continue
        scores.append(float(p is not None and g is not None and p == g))
    return sum(scores) / len(scores) if scores else 0.0


def kie_score(prediction: str, golds: list[str]) -> float:
    """Key information extraction: the prediction parsed as a dict; per key of either dict 1 when the values match
    (lower-cased, spaces removed), averaged; a gold value listed as a list gives alternatives (max over them)."""
    gold = _gold_dict(golds[0]) if golds else None
    if not gold:
        return 0.0
    pred = answer_dict(prediction)
    keys = list(gold)
    options = [v if isinstance(v, list) else [v] for v in gold.values()]
    count = 1
    for values in options:
        count *= max(1, len(values))
    if count <= MAX_KIE_COMBINATIONS:
        return max((_kie_f1(pred, dict(zip(keys, combo))) for combo in product(*options)), default=0.0)
    best = {k: max(options[i], key=lambda v: _kie_norm(pred.get(k)) == _kie_norm(v)) if options[i] else None
            for i, k in enumerate(keys)}
    return _kie_f1(pred, best)


# ------------------------------------------------------------------------------------------------ tree edit distance


class Node:
    """A tree node: ``label`` (STEDS) or ``tag``/``colspan``/``rowspan``/``cell`` tokens (TEDS), and children."""

    __slots__ = ("label", "tag", "colspan", "rowspan", "cell", "children")

    def __init__(self, label="", tag="", colspan=None, rowspan=None, cell=None):
        self.label, self.tag, self.colspan, self.rowspan, self.cell = label, tag, colspan, rowspan, cell
        self.children: list[Node] = []


class _Costs(Config):
    """APTED's cost model: unit insert and delete, ``rename(a, b)`` given, remembered per node pair (APTED asks for a
    pair several times; a TEDS cell pair costs an edit distance); a node's children are those among the kept nodes."""

    def __init__(self, rename, keep: set[int]):
        self._rename, self._keep, self._renames = rename, keep, {}

    def rename(self, node1: Node, node2: Node) -> float:
        key = (id(node1), id(node2))
        cost = self._renames.get(key)
        if cost is None:
            cost = self._renames[key] = self._rename(node1, node2)
        return cost

    def children(self, node: Node) -> list[Node]:
        return [child for child in node.children if id(child) in self._keep]


def _first_nodes(root: Node, limit: int) -> set[int]:
    """The ids of the tree's first ``limit`` nodes in preorder (with every ancestor of each)."""
    keep, stack = set(), [root]
    while stack and len(keep) < limit:
        node = stack.pop()
        keep.add(id(node))
        stack.extend(reversed(node.children))
    return keep


def tree_edit_distance(t1: Node, t2: Node, rename, limit: int = MAX_TREE_NODES) -> tuple[float, int, int]:
    """APTED's ordered tree edit distance (Pawlik & Augsten 2016; the official TEDS's, the optimum zss gives for
    STEDS too) with unit insert/delete costs and ``rename(a, b)``; returns it with the node counts of both trees.
    *Ours*: a tree over ``limit`` nodes keeps its first ``limit`` nodes in preorder, which bounds the time (APTED's
    grows with the cube of the node count) of a runaway prediction."""
    keep1, keep2 = _first_nodes(t1, limit), _first_nodes(t2, limit)
    distance = APTED(t1, t2, _Costs(rename, keep1 | keep2)).compute_edit_distance()
    return float(distance), len(keep1), len(keep2)


# ------------------------------------------------------------------------------------------------ TEDS


class _Element:
    __slots__ = ("tag", "attrs", "text", "tail", "children")

    def __init__(self, tag: str, attrs: dict):
        self.tag, self.attrs, self.text, self.tail, self.children = tag, attrs, "", "", []


_VOID = {"br", "img", "hr", "input", "meta", "link", "col", "area", "base", "wbr", "source"}
_SECTION = {"td", "th", "tr", "thead", "tbody", "tfoot"}
_CLOSES = {"td": {"td", "th"}, "th": {"td", "th"}, "tr": {"td", "th", "tr"}, "thead": _SECTION, "tbody": _SECTION,
           "tfoot": _SECTION}
_SCOPES = {"table", "html", "body"}


class _TreeBuilder(HTMLParser):
    """A lenient HTML element tree (lxml-like): implied ends of cells/rows/sections, void tags, stray ends ignored."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.root = _Element("#document", {})
        self.stack = [self.root]

    def handle_starttag(self, tag, attrs):
        if tag in ("html", "body") and any(e.tag == tag for e in self.stack):
            return
        closes = _CLOSES.get(tag, set())
        while closes and len(self.stack) > 1 and self.stack[-1].tag in closes:
            self.stack.pop()
        element = _Element(tag, dict(attrs))
        self.stack[-1].children.append(element)
        if tag not in _VOID:
            self.stack.append(element)

    def handle_startendtag(self, tag, attrs):
        self.stack[-1].children.append(_Element(tag, dict(attrs)))

    def handle_endtag(self, tag):
        for depth in range(len(self.stack) - 1, 0, -1):
            if self.stack[depth].tag == tag:
                del self.stack[depth:]
                return
            if self.stack[depth].tag in _SCOPES and tag not in _SCOPES:
                return

    def handle_data(self, data):
        parent = self.stack[-1]
        if parent.children:
            parent.children[-1].tail += data
        else:
            parent.text += data


def _find_table(html: str) -> _Element | None:
    """The first ``<table>`` directly inside ``<body>`` (the official ``body/table``)."""
    builder = _TreeBuilder()
    builder.feed(html)
    builder.close()
    for html_el in (e for e in builder.root.children if e.tag == "html"):
        for body in (e for e in html_el.children if e.tag == "body"):
            for table in (e for e in body.children if e.tag == "table"):
                return table
    return None


def _cell_tokens(element: _Element) -> list[str]:
    tokens = [f"<{element.tag}>", *element.text]
    for child in element.children:
        tokens += _cell_tokens(child)
    if element.tag != "unk":
        tokens.append(f"</{element.tag}>")
    if element.tag != "td":
        tokens += list(element.tail)
    return tokens


def _span(element: _Element, name: str) -> int:
    try:
        return int(element.attrs.get(name) or 1)
    except ValueError:
        return 1


def _table_tree(element: _Element) -> tuple[Node, int]:
    """The TEDS tree of a table (cells keep their tokens, their inner elements are not nodes) and the number of the
    table's descendant elements."""
    if element.tag == "td":
        node = Node(tag="td", colspan=_span(element, "colspan"), rowspan=_span(element, "rowspan"),
                    cell=_cell_tokens(element)[1:-1])
    else:
        node = Node(tag=element.tag)
    count = 0
    for child in element.children:
        count += 1 + _descendants(child)
        if element.tag != "td":
            node.children.append(_table_tree(child)[0])
    return node, count


def _descendants(element: _Element) -> int:
    return sum(1 + _descendants(c) for c in element.children)


def _teds_rename(a: Node, b: Node) -> float:
    if a.tag != b.tag or a.colspan != b.colspan or a.rowspan != b.rowspan:
        return 1.0
    if a.tag == "td" and (a.cell or b.cell):
        return 1.0 - similarity(a.cell, b.cell)
    return 0.0


def teds(pred_html: str, gold_html: str) -> float:
    """TEDS (Zhong et al. 2020): 1 - tree edit distance / the larger number of descendant elements of the two
    ``body/table`` elements; rename costs 1 across tags or spans, else the cells' normalised token edit distance."""
    if not pred_html or not gold_html:
        return 0.0
    pred, gold = _find_table(pred_html), _find_table(gold_html)
    if pred is None or gold is None:
        return 0.0
    (tree_pred, n_pred), (tree_gold, n_gold) = _table_tree(pred), _table_tree(gold)
    n_nodes = max(n_pred, n_gold)
    if not n_nodes:
        return 0.0
    distance, _, _ = tree_edit_distance(tree_pred, tree_gold, _teds_rename)
    return 1.0 - distance / n_nodes


def wrap_table(html: str) -> str:
    """Complete a table snippet to ``<html><body><table>...</table></body></html>`` (newlines removed)."""
    html = html.replace("\n", "")
    if "<table" in html and "</table>" not in html:
        html += "</table>"
    elif "<table" not in html and "</table>" in html:
        html = "<table>" + html
    elif "<table" not in html:
        html = "<table>" + html + "</table>"
    if "<body>" not in html:
        html = "<body>" + html + "</body>"
    if "<html>" not in html:
        html = "<html>" + html + "</html>"
    return html


def markdown_table_html(markdown: str) -> str:
    """A markdown table as an HTML table: the header row and the rows after the separator line, cells between the
    outer pipes stripped (a blank cell stays one space); outer code-fence characters stripped as the official does."""
    rows = markdown.strip("`markdown").strip("`").strip().split("\n")
    html = "<html><body><table>"
    for row in rows[:1] + rows[2:]:
        cells = [" " if cell and set(cell) == {" "} else cell.strip() for cell in row.strip().split("|")[1:-1]]
        html += "<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>"
    return html + "</table></body></html>"


def dict_table_html(data: dict) -> str:
    """A chart's dict as a two-column HTML table: the key, then the value's characters joined by spaces."""
    rows = "".join(f"<tr><td>{k}</td><td>{' '.join(v if isinstance(v, str) else str(v))}</td></tr>"
                   for k, v in data.items())
    return f"<html><body><table>{rows}</table></body></html>"


def chart_dict(prediction: str) -> dict:
    """The official chart-parse read: the longest ```python/json fenced block (else the text), a leading
    ``name =`` and ``#`` comments removed, cut after the last ``}``, a Python literal dict, else {}."""
    fences = re.findall(r"```(?:python|json)?\n(.*?)\n```", prediction, re.DOTALL | re.IGNORECASE)
    content = max(fences, key=len) if fences else prediction.strip()
    content = re.sub(r"^\s*\w+\s*=\s*", "", content.strip(), count=1)
    content = re.sub(r"#.*", "", content)
    if "}" in content:
        content = content[:content.rfind("}") + 1]
    data = _literal(content)
    return data if isinstance(data, dict) else {}


def table_score(prediction: str, gold: str, question: str, task: str) -> float:
    """Table parsing: TEDS of the HTML table (from the first ``<body`` or ``<table`` of the prediction), or, when the
    English question asks for markdown, of the markdown tables converted to HTML."""
    if task == "table parsing en" and "html" not in question.lower() and "markdown" in question.lower():
        return teds(markdown_table_html(prediction), markdown_table_html(gold))
    flat = prediction.replace("\n", "")
    start = next((flat.find(tag) for tag in ("<body", "<table") if tag in flat), -1)
    if start < 0:
        return 0.0
    return teds(wrap_table(flat[start:]), wrap_table(gold))


# ------------------------------------------------------------------------------------------------ STEDS


_DOC_CLEAN = ((r"<bos>|<eos>|<pad>|<unk>", ""), (r"\s##(\S)", r"\1"), (r"\\\s", r"\\"), (r"\s\*\s\*\s", "**"),
              (r"{\s", "{"), (r"\s}", "}"), (r"\\begin\s", r"\\begin"), (r"\\end\s", r"\\end"),
              (r"\\end{table}", r"\\end{table} \n\n"))


def _clean_line(line: str) -> str:
    for pattern, repl in _DOC_CLEAN:
        line = re.sub(pattern, repl, line)
    return line.replace("\n", " ").replace("*", " ").replace("_", " ")


def _find(root: Node, label: str) -> Node | None:
    stack = [root]
    while stack:
        node = stack.pop()
        if node.label == label:
            return node
        stack.extend(reversed(node.children))
    return None


def document_tree(text: str) -> Node:
    """The markdown heading tree: ROOT with a TITLE child; a ``#`` line (``#`` removed) becomes a child of ROOT and
    the current heading; any other line a child of the current heading (the first node with its text), else of
    TITLE."""
    root, title = Node("ROOT"), Node("TITLE")
    root.children.append(title)
    current = ""
    for line in (_clean_line(line) for line in text.split("\n")):
        if line.startswith("#"):
            current = line.replace("#", "")
            root.children.append(Node(current))
        else:
            parent = title if current == "" else (_find(root, current) or title)
            parent.children.append(Node(line))
    return root


def _has_words(label: str) -> bool:
    return bool(label.split())


def steds(prediction: str, gold: str) -> float:
    """Document parsing (STEDS): 1 - tree edit distance / the larger node count of the two heading trees; inserting
    or deleting a node costs 1, relabelling 0 between two lines with words, else 1."""
    distance, n_pred, n_gold = tree_edit_distance(
        document_tree(prediction), document_tree(gold),
        rename=lambda a, b: 0.0 if _has_words(a.label) and _has_words(b.label) else 1.0)
    return 1.0 - distance / max(n_pred, n_gold)


# ------------------------------------------------------------------------------------------------ dispatch


def _meta(meta) -> dict:
    if isinstance(meta, dict):
        return meta
    try:
        data = json.loads(meta) if meta else {}
    except (TypeError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def ocrbench_v2_score(task, prediction: str, golds: list[str], variant: str = "", meta=None,
                      question: str = "") -> tuple[float | None, str]:
    """(score, how) of one OCRBench v2 answer by its task type (the official ``type``, any case), its ``eval``
    variant, the row's ``bbox``/``bbox_list``/``content`` (``meta``, a dict or its JSON) and question; score None when
    the task type or variant is unknown."""
    name = " ".join(str(task or "").strip().lower().split())
    variant = str(variant or "").strip().lower()
    variant = "" if variant in NO_VARIANT else variant
    meta = _meta(meta)
    if name in VQA_EN or name in VQA_CN:
        if variant == "multiple choice":
            return multiple_choice_score(prediction, golds), "ocr_multiple_choice"
        if variant == "case sensitive":
            return vqa_score(prediction, golds, case_sensitive=True), "ocr_vqa_case_sensitive"
        if variant:
            return None, "ocr_eval_unknown"
        return (vqa_score(prediction, golds) if name in VQA_EN else cn_vqa_score(prediction, golds)), "ocr_vqa"
    if name == "text counting en":
        if variant not in ("", "exact match", "regression"):
            return None, "ocr_eval_unknown"
        return counting_score(prediction, golds, variant or "exact match"), "ocr_counting"
    if name in ("formula recognition en", "formula recognition cn"):
        return formula_score(prediction, golds, chinese=name.endswith(" cn")), "ocr_formula"
    if name == "handwritten answer extraction cn":
        if "简答" in question:
            return page_ocr_score(prediction, golds[0]), "ocr_page"
        return handwriting_choice_score(prediction, golds), "ocr_handwriting_choice"
    if name in PAGE_OCR:
        return page_ocr_score(prediction, golds[0]), "ocr_page"
    if name == "text grounding en":
        return grounding_score(prediction, golds), "ocr_grounding_iou"
    if name == "vqa with position en":
        return vqa_with_position_score(prediction, golds, meta.get("bbox")), "ocr_vqa_position"
    if name == "text spotting en":
        polygons = meta.get("bbox_list") or meta.get("bbox")
        return spotting_score(prediction, polygons, meta.get("content")), "ocr_spotting"
    if name in KIE:
        return kie_score(prediction, golds), "ocr_kie_f1"
    if name in TABLES:
        return table_score(prediction, golds[0], question, name), "ocr_teds"
    if name == "chart parsing en":
        pred, gold = chart_dict(prediction), _gold_dict(golds[0])
        if not pred or not gold:
            return 0.0, "ocr_teds"
        return teds(dict_table_html(pred), dict_table_html(gold)), "ocr_teds"
    if name in DOC_PARSING:
        return steds(prediction, golds[0]), "ocr_steds"
    return None, "ocr_task_unknown"
