"""What every benchmark converter shares: reading the published files, images, video frames, multiple-choice
formatting, and the trainer's row layout.

A converter is a small generator ``fn(source: Source) -> Iterable[Item]``: it reads the benchmark's own fields and
yields ``Item``s; ``rows_of`` turns them into trainer rows (see ``ROW_SCHEMA``):

- ``prompt``: the user message ``"<image>" * k + question + "\\n\\n" + ANSWER_CLOSER`` (the same closer as training,
  Fig. 8; task-specific answer-format instructions are stripped from the question, App. B.2), after the earlier
  turns of a multi-turn benchmark (MultiChallenge);
- ``images``: ``[{"bytes": PNG/JPEG}]``, each image resized (aspect ratio kept) into the processor's pixel range
  ``[min_pixels, max_pixels]`` (``data_prep.vision``), the range training uses;
- a video becomes frames sampled as the benchmark's protocol says (how many and where: ``Benchmark.frames`` /
  ``Benchmark.sampling``, or ``--frames``), given to the model as that many images (in order, after one line
  saying so): the CPU rollout has no video input, and frames keep the input identical on every rollout engine;
  subtitles (Video-MME with subtitles) are those shown at the sampled instants;
- ``data_source`` is the benchmark id, ``reward_model.ground_truth`` the gold answer (the option LETTER for
  multiple choice), ``extra_info`` carries ``question_id``, ``reward_type``, ``tolerance``, ``choices``, the family,
  and the scoring fields of App. B.2 (``scoring``, ``subset``, and for Det./BenchJudge benchmarks ``metric`` /
  ``judge`` and what the official metric or judge prompt needs; see ``EXTRA_FIELDS``), read by
  ``recipe.zppo.reward`` and ``recipe.zppo.eval``.

Every benchmark writes the same schema, so verl can concatenate any of them into one validation set.
"""

from __future__ import annotations

import ast
import base64
import csv
import io
import json
import re
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from data_prep.row_schema import extra_info_type, row_schema

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif")
VIDEO_SUFFIXES = (".mp4", ".mkv", ".webm", ".avi", ".mov", ".m4v")
DEFAULT_FRAMES = 8

# App. B.2's scoring protocols: the value written in rows and the registry, and the label of Tabs 5-7.
SCORINGS = {"exact_judge": "Exact+Judge", "rule_judge": "Rule+Judge", "det": "Det.", "benchjudge": "BenchJudge"}
METRICS = ("anls", "ocrbench_v2")  # Det. benchmarks' official metric (extra_info["metric"])
JUDGES = ("charxiv_reasoning", "charxiv_descriptive", "mm_vet", "hle", "multichallenge", "mmvu")  # BenchJudge

# extra_info keys of a benchmark row beyond the common ones (data_prep.row_schema). Empty string / None when a
# benchmark has no such thing. What each means (the scorer's contract, docs/evaluation.md "Row fields"; read by
# recipe/zppo/eval/scoring.py and recipe/zppo/reward/bench_judges.py unless marked "carried"):
EXTRA_FIELDS = (
    ("tolerance", pa.float64()),  # relative tolerance of a numeric gold
    ("choices", pa.list_(pa.string())),  # option texts (A, B, ... in order) of a multiple-choice row
    ("benchmark", pa.string()),  # the benchmark id (= data_source)
    ("family", pa.string()),  # llm | vlm | video
    ("category", pa.string()),  # the benchmark's own finer label (subject, source, duration, ...)
    ("scoring", pa.string()),  # exact_judge | rule_judge | det | benchjudge (Tabs 5-7)
    ("subset", pa.string()),  # the part a score aggregates over (Benchmark.aggregate); "" if none
    ("metric", pa.string()),  # Det.: anls | ocrbench_v2
    ("ocr_task", pa.string()),  # OCRBench v2: the official task type ("text recognition en", ...)
    ("ocr_eval", pa.string()),  # OCRBench v2: the row's ``eval`` variant ("multiple choice", ...; "None" if none)
    ("ocr_meta", pa.string()),  # OCRBench v2: JSON of bbox, bbox_list, content, dataset_name (VQA with position's box,
    # text spotting's polygons and texts), read by recipe/zppo/eval/ocrbench_v2.py
    ("judge", pa.string()),  # BenchJudge: which official judge prompt (JUDGES)
    ("judge_question", pa.string()),  # the question as a judge sees it (no closer, frames or image markers, no
    # options block): the official judge prompts' question (BenchJudge) and Fig. 9's (every other row)
    ("gold_answers", pa.list_(pa.string())),  # every acceptable gold answer (ANLS, OCR, MM-Vet's tagged gold)
    ("inst_category", pa.string()),  # CharXiv: reasoning answer type 1-4 / descriptive template id 1-19 (fills the
    # rubric slot of Figs 14-15, whose rubric bodies are not in the paper)
    ("question_type", pa.string()),  # MMVU: multiple-choice | open-ended; HLE: exactMatch | multipleChoice (carried)
    ("axis", pa.string()),  # MultiChallenge: the axis (instruction retention, ...); carried
    ("target_question", pa.string()),  # MultiChallenge: the criterion the judge checks (hidden from the student)
    ("pass_criteria", pa.string()),  # MultiChallenge: the verdict that passes (YES | NO)
)
_EXTRA_T = extra_info_type(*EXTRA_FIELDS)
ROW_SCHEMA = row_schema(_EXTRA_T, images=True)
JUDGE_FIELD_NAMES = tuple(name for name, _ in EXTRA_FIELDS[7:])  # set by converters (Item.fields)

class SourceError(Exception):
    """A benchmark's local copy is missing or does not have the published layout (one line, naming file/row/key)."""


@dataclass
class Clip:
    """A video (file) or a folder of frames, optionally cut to [start, end] seconds (``frame_fps``: of the folder)."""

    path: Path
    start: float | None = None
    end: float | None = None
    frame_fps: float | None = None
    subtitles: list[tuple[float, float, str]] | None = None  # (start s, end s, text); [] = none published
    last_frame: bool = False  # also give the clip's last frame as the question's image (Video-MMMU adaptation)


@dataclass
class Item:
    """One benchmark question as a converter reads it, before it becomes a trainer row.

    question: the question text without answer-format instructions; ``<image>`` marks where an image goes (images
        without a marker are put before the question, in order).
    answer: the gold answer (str, or a list of acceptable answers). For multiple choice (``choices`` given, or the
        options written in the question with ``reward_type="multiple_choice"``) it is the option letter.
    """

    qid: str
    question: str
    answer: Any
    reward_type: str
    images: list = field(default_factory=list)
    choices: list[str] | None = None
    tolerance: float | None = None
    category: str = ""
    clip: Clip | None = None
    subset: str = ""
    fields: dict = field(default_factory=dict)  # scoring fields of EXTRA_FIELDS (judge, metric, gold_answers, ...)
    history: list[dict] | None = None  # earlier turns of a multi-turn conversation (MultiChallenge)
    after_options: str = ""  # a line the benchmark's prompt puts after the options (Video-MMMU)


@dataclass
class ConvertOptions:
    min_pixels: int
    max_pixels: int
    frames: int | None = None  # frames per video; None: each benchmark's protocol (Benchmark.frames)
    limit: int | None = None  # rows per benchmark (smoke runs); None: all


def default_pixel_range() -> tuple[int, int]:
    """The processor's pixel range, the same in training and evaluation (``data_prep.vision``)."""
    from data_prep.vision import MAX_PIXELS, MIN_PIXELS

    return int(MIN_PIXELS), int(MAX_PIXELS)


# ------------------------------------------------------------------------------------------------ source files


class Source:
    """The local copy of one benchmark (a folder) and helpers to find and read its published files."""

    def __init__(self, name: str, root: Path):
        self.name = name
        self.root = Path(root)
        self._index: dict[str, list[Path]] | None = None

    def files(self, *patterns: str) -> list[Path]:
        """Files matching the first of ``patterns`` (globs below the root) that matches anything."""
        if not self.root.is_dir():
            raise SourceError(f"{self.name}: source folder {self.root} does not exist")
        for pattern in patterns:
            found = sorted(p for p in self.root.glob(pattern) if p.is_file())
            if found:
                return found
        raise SourceError(f"{self.name}: no file matching {' or '.join(patterns)} under {self.root}")

    def records(self, *patterns: str) -> Iterator[dict]:
        """Rows of every file matching the first matching pattern; each row gets ``_file`` (its path)."""
        for path in self.files(*patterns):
            for record in read_records(path):
                record["_file"] = path
                yield record

    def find(self, name: str, suffixes: Sequence[str] = ()) -> Path:
        """A file or folder below the root named by a relative path or, failing that, by its base name or stem."""
        if not name:
            raise SourceError(f"{self.name}: empty file reference")
        direct = self.root / name
        if direct.exists():
            return direct
        if self._index is None:
            self._index = {}
            for path in self.root.rglob("*"):
                for key in {path.name, path.stem}:
                    self._index.setdefault(key, []).append(path)
        base = Path(name).name
        candidates = self._index.get(base) or self._index.get(Path(base).stem) or []
        if suffixes:
            candidates = [c for c in candidates if c.is_dir() or c.suffix.lower() in suffixes] or candidates
        # a reference with folders ("clevrer/video_validation/x.mp4") prefers the candidate whose path ends with it
        tail = Path(name).as_posix()
        candidates = sorted(candidates, key=lambda c: (not c.as_posix().endswith(tail), len(c.parts)))
        if not candidates:
            raise SourceError(f"{self.name}: {name} not found under {self.root}")
        return candidates[0]


def read_records(path: Path) -> Iterator[dict]:
    """Rows of a .parquet / .arrow (``datasets.save_to_disk``'s Arrow stream) / .json / .jsonl / .csv / .tsv file as
    dicts (parquet and arrow read in small batches)."""
    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            parquet = pq.ParquetFile(str(path))
            for batch in parquet.iter_batches(batch_size=64):
                yield from batch.to_pylist()
        elif suffix == ".arrow":
            with pa.memory_map(str(path)) as stream:
                try:
                    reader = pa.ipc.open_stream(stream)
                except pa.ArrowInvalid:  # the random-access file format
                    stream.seek(0)
                    reader = pa.ipc.open_file(stream)
                    for i in range(reader.num_record_batches):
                        yield from reader.get_batch(i).to_pylist()
                    return
                for batch in reader:
                    yield from batch.to_pylist()
        elif suffix == ".jsonl":
            with open(path, encoding="utf-8") as f:
                for line_no, line in enumerate(f, 1):
                    if line.strip():
                        try:
                            yield json.loads(line)
                        except json.JSONDecodeError as error:
                            raise SourceError(f"{path}: line {line_no} is not JSON ({error.msg})") from None
        elif suffix == ".json":
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
            if isinstance(data, dict):
                lists = [v for v in data.values() if isinstance(v, list)]
                if len(data) == 1 and lists:  # {"data": [...]}
                    data = lists[0]
                else:  # {"id": {...}, ...}
                    data = [{"_key": key, **value} for key, value in data.items() if isinstance(value, dict)]
            for record in data:
                if not isinstance(record, dict):
                    raise SourceError(f"{path}: expected a list of objects, found {type(record).__name__}")
                yield record
        elif suffix in (".csv", ".tsv"):
            csv.field_size_limit(sys.maxsize)  # TSV releases embed base64 images in a cell
            with open(path, encoding="utf-8", newline="") as f:
                yield from csv.DictReader(f, delimiter="\t" if suffix == ".tsv" else ",")
        else:
            raise SourceError(f"{path}: unsupported file type {suffix}")
    except (OSError, pa.ArrowException, json.JSONDecodeError, UnicodeDecodeError) as error:
        raise SourceError(f"{path}: cannot read ({type(error).__name__}: {error})") from None


def field_of(record: dict, *keys: str, required: bool = True, default=None):
    """The first present, non-empty value among ``keys``; a missing required field is a SourceError naming it."""
    for key in keys:
        value = record.get(key)
        if value is not None and not (isinstance(value, str) and not value.strip()):
            return value
    if required:
        where = record.get("_file", "?")
        raise SourceError(f"{where}: row without {' / '.join(keys)} (keys: {', '.join(sorted(map(str, record)))})")
    return default


def as_list(value) -> list:
    """A list field that may be stored as a list, a numpy array, or the text of a Python/JSON list."""
    if value is None:
        return []
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return []
        if text[0] == "[":
            for parse in (json.loads, ast.literal_eval):
                try:
                    parsed = parse(text)
                    return list(parsed) if isinstance(parsed, (list, tuple)) else [parsed]
                except (ValueError, SyntaxError):
                    continue
        return [text]
    if hasattr(value, "tolist"):
        value = value.tolist()
    return list(value)


# ------------------------------------------------------------------------------------------------ text helpers


_OPTION_PREFIX_RE = re.compile(r"^\s*\(?([A-Za-z])[\.\):：]\s+")
_INSTRUCTION_RES = [
    re.compile(p, re.IGNORECASE)
    for p in (
        r"\s*(?:Please\s+)?answer\s+(?:directly\s+)?with\s+(?:only\s+)?the\s+(?:option'?s?\s+)?letter[^\n]*",
        r"\s*Please\s+answer\s+directly\s+with\s+(?:only\s+the\s+letter|a\s+single\s+(?:word|phrase|number))[^\n]*",
        r"\s*Answer\s+the\s+question\s+(?:using|with)\s+a\s+single\s+(?:word|phrase|number)[^\n]*",
        r"\s*Please\s+(?:directly\s+)?answer\s+the\s+question\s+and\s+provide\s+the\s+(?:correct\s+option\s+letter|final\s+answer)[^\n]*",
        r"\s*Please\s+select\s+the\s+correct\s+answer\s+from\s+the\s+options\s+above\.?",
        r"\s*Only\s+(?:give|return|output)\s+the\s+(?:best\s+)?option\.?",
        r"\s*Best\s+option:\s*\(?\s*$",
        r"\s*Answer\s+with\s+[^\n]*?\bin\s+curly\s+brackets[^\n]*",  # VLMs-are-Blind: "... curly brackets, e.g., {3}."
    )
]


def strip_format_instructions(text: str) -> str:
    """Remove benchmark-specific answer-format instructions (the closer replaces them)."""
    for pattern in _INSTRUCTION_RES:
        text = pattern.sub("", text)
    return text.strip()


def clean_option(text) -> str:
    """An option's text without a leading label it may carry ("A. dog", "(B) cat")."""
    return _OPTION_PREFIX_RE.sub("", str(text).strip(), count=1).strip()


def options_block(choices: Sequence[str]) -> str:
    return "\n".join(f"{LETTERS[i]}. {choice}" for i, choice in enumerate(choices))


def letter_of(gold, choices: Sequence[str], where: str, answer_is: str = "auto") -> str:
    """The option letter of a gold answer.

    ``answer_is``: "letter" ("B", "(B)"), "index" (0-based), "text" (the option's text), or "auto": a letter, else
    the option text, else an index. Benchmarks whose options are numbers must say "text" or "index".
    """
    text = str(gold).strip()
    cleaned = [clean_option(c).lower() for c in choices]

    def as_letter():
        match = re.fullmatch(r"\(?([A-Za-z])\)?\.?", text)
        if match and LETTERS.index(match.group(1).upper()) < len(choices):
            return match.group(1).upper()
        return None

    def as_text():
        key = clean_option(text).lower()
        return LETTERS[cleaned.index(key)] if key in cleaned else None

    def as_index():
        return LETTERS[int(text)] if re.fullmatch(r"\d+", text) and int(text) < len(choices) else None

    readers = {"letter": [as_letter], "text": [as_text], "index": [as_index], "auto": [as_letter, as_text, as_index]}
    for read in readers[answer_is]:
        letter = read()
        if letter is not None:
            return letter
    raise SourceError(f"{where}: answer {text!r} is none of the {len(choices)} options ({answer_is})")


_OPTIONS_HEADER_RE = re.compile(r"(?:^|\n|\s)(?:Options|Choices|Answer choices)\s*:\s*", re.IGNORECASE)


def split_options(text: str) -> tuple[str, list[str] | None]:
    """(stem, options) of a question that writes its options inline ("Options: A: x, B: y" or lines "(A) x").

    Options are recognised as consecutive letter markers A, B, C, ... (at least two); the stem is what precedes
    the options (and their "Options:"/"Choices:" header). Returns (text, None) when no such run is found.
    """
    headers = list(_OPTIONS_HEADER_RE.finditer(text))
    header = headers[-1] if headers else None  # the last header
    body_start = header.end() if header else 0
    body = text[body_start:]
    starts, ends = [], []
    position = 0
    for letter in LETTERS:
        marker = re.compile(rf"(?:(?<=^)|(?<=[\s,;(\[]))\(?{letter}\s*[\.:\)：]\s*")
        match = marker.search(body, position)
        if match is None:
            break
        if letter == "A" and header is None and match.start() > 0 and body[match.start() - 1] not in "\n":
            break  # without a header, option A must start a line (a stray "A:" inside a sentence is not one)
        starts.append(match.start())
        ends.append(match.end())
        position = match.end()
    if len(starts) < 2:
        return text.strip(), None
    options = []
    for i, end in enumerate(ends):
        stop = starts[i + 1] if i + 1 < len(starts) else len(body)
        options.append(body[end:stop].strip().rstrip(",;").strip())
    stem = text[: header.start()] if header else text[: body_start + starts[0]]
    return stem.strip(), options


def numeric_or_text(answer) -> str:
    """``numeric`` when the gold answer is a plain number, else ``string_match``."""
    return "numeric" if re.fullmatch(r"\s*[-+]?\d[\d,]*(\.\d+)?\s*%?\s*", str(answer)) else "string_match"


_IMAGE_REF_RE = re.compile(r"<\s*image\s*_?(\d+)\s*>", re.IGNORECASE)


def image_mentions_as_text(text: str) -> str:
    """``<image 1>`` / ``<image1>`` references inside a question become "Image 1" (the images go first)."""
    return _IMAGE_REF_RE.sub(lambda m: f"Image {m.group(1)}", text)


# ------------------------------------------------------------------------------------------------ images


def _encode(image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    if fmt == "JPEG":
        image.save(buffer, format="JPEG", quality=95)
    else:
        image.save(buffer, format="PNG")
    return buffer.getvalue()


_BASE64_RE = re.compile(r"[A-Za-z0-9+/=\s]+")


def image_bytes(value, source: Source, options: ConvertOptions, where: str) -> bytes:
    """PNG/JPEG bytes of an image given as bytes, an HF image dict, a path, a base64 string or a PIL image, resized
    into the pixel range (original bytes kept when already inside it)."""
    from PIL import Image, UnidentifiedImageError

    raw = None
    if isinstance(value, dict):
        raw = value.get("bytes")
        if raw is None and value.get("path"):
            value = value["path"]
    if isinstance(value, (bytes, bytearray)):
        raw = bytes(value)
    if raw is None and isinstance(value, str):
        text = value.strip()
        if text.startswith("data:image") and "base64," in text:
            raw = base64.b64decode(text.split("base64,", 1)[1])
        elif len(text) > 256 and _BASE64_RE.fullmatch(text[:4096]):  # a base64 cell (TSV releases)
            raw = base64.b64decode(text)
        else:
            raw = source.find(text, IMAGE_SUFFIXES).read_bytes()
    if raw is None and hasattr(value, "save"):  # a PIL image
        image = value.convert("RGB")
    else:
        if raw is None:
            raise SourceError(f"{where}: unsupported image value of type {type(value).__name__}")
        try:
            image = Image.open(io.BytesIO(raw))
            image.load()
        except (UnidentifiedImageError, OSError) as error:
            raise SourceError(f"{where}: unreadable image ({error})") from None
    from data_prep.vision import resized_hw

    height, width = resized_hw(image.height, image.width, options.min_pixels, options.max_pixels)
    size = (width, height)
    if raw is not None and size == (image.width, image.height) and image.format in ("PNG", "JPEG"):
        return raw
    fmt = "JPEG" if getattr(image, "format", None) == "JPEG" else "PNG"
    image = image.convert("RGB")
    if size != (image.width, image.height):
        image = image.resize(size, Image.BICUBIC)
    return _encode(image, fmt)


# ------------------------------------------------------------------------------------------------ video frames

SAMPLINGS = ("segments", "linspace")


def frame_times(start: float, end: float, count: int, sampling: str = "segments") -> list[float]:
    """``count`` instants over [start, end]: ``segments``, the middle of each of ``count`` equal segments (MVBench's
    official ``get_index``); ``linspace``, evenly spaced from the first to the last instant, both included (Video-MME's
    official sampling, ``np.linspace(0, total_frames - 1, n)``)."""
    span = max(end - start, 0.0)
    if sampling == "linspace":
        if count == 1:
            return [start + span / 2]
        return [start + span * i / (count - 1) for i in range(count)]
    if sampling != "segments":
        raise ValueError(f"unknown frame sampling {sampling!r} (one of {', '.join(SAMPLINGS)})")
    return [start + span * (i + 0.5) / count for i in range(count)]


@dataclass
class Frames:
    """Frames sampled from a clip: PIL images, their instants (seconds from the clip's file start), and the clip's
    last frame when asked for (``Clip.last_frame``)."""

    images: list
    times: list[float]
    last: Any = None


def frames_for(count: int, per_second: float | None, duration: float) -> int:
    """How many frames to take: ``count``, or with ``per_second`` that many per whole second of the clip, at most
    ``count`` and at least 1 (MMVU's official ``fps * int(duration)``, capped)."""
    if per_second is None:
        return count
    return max(1, min(count, int(per_second * int(duration))))


def sample_frames(clip: Clip, count: int, where: str, sampling: str = "segments",
                  per_second: float | None = None) -> Frames:
    """``count`` PIL frames sampled from a video file or a folder of frames (within start/end if set); with
    ``per_second``, that many per second of the clip, at most ``count`` (``frames_for``)."""
    from PIL import Image

    if clip.path.is_dir():
        frames = sorted(p for p in clip.path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not frames:
            raise SourceError(f"{where}: frame folder {clip.path} holds no images")
        count = frames_for(count, per_second, len(frames) / (clip.frame_fps or 1.0))
        lo, hi = 0, len(frames)
        if clip.frame_fps and clip.start is not None and clip.end is not None:
            lo = min(max(int(clip.start * clip.frame_fps), 0), len(frames) - 1)
            hi = max(min(int(clip.end * clip.frame_fps) + 1, len(frames)), lo + 1)
        if sampling == "linspace":
            picks = [lo + min(round(t), hi - lo - 1) for t in frame_times(0, hi - lo - 1, count, sampling)]
        else:
            picks = [lo + min(int(t), hi - lo - 1) for t in frame_times(0, hi - lo, count, sampling)]
        fps = clip.frame_fps or 1.0
        last = Image.open(frames[-1]).convert("RGB") if clip.last_frame else None
        return Frames([Image.open(frames[i]).convert("RGB") for i in picks], [i / fps for i in picks], last)
    try:
        import av
    except ImportError:  # pragma: no cover - PyAV comes with qwen-vl-utils
        raise SourceError(f"{where}: decoding {clip.path} needs PyAV (pip install av)") from None
    try:
        with av.open(str(clip.path)) as container:
            stream = container.streams.video[0]
            duration = _duration_s(container, stream)
            start = clip.start if clip.start is not None else 0.0
            end = clip.end if clip.end is not None and clip.end > start else duration
            end = min(end, duration) if duration else end
            count = frames_for(count, per_second, end - start)
            if sampling == "linspace" and stream.average_rate:  # the last frame starts one frame before the end
                end = max(start, end - 1.0 / float(stream.average_rate))
            images, times = [], []
            for t in frame_times(start, end, count, sampling):
                frame = _frame_at(container, stream, t)
                images.append(frame.to_image())
                times.append(float(frame.time) if frame.time is not None else t)
            last = _frame_at(container, stream, duration + 1.0).to_image() if clip.last_frame else None
            return Frames(images, times, last)
    except (av.error.FFmpegError, OSError, IndexError, StopIteration) as error:
        raise SourceError(f"{where}: cannot decode {clip.path} ({type(error).__name__}: {error})") from None


def _duration_s(container, stream) -> float:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / 1_000_000
    if stream.frames and stream.average_rate:
        return stream.frames / float(stream.average_rate)
    return 0.0


def _frame_at(container, stream, t: float):
    """The frame shown at ``t`` seconds: the last one starting at or before ``t`` (the first frame if ``t`` precedes
    it, the last one if ``t`` is past the end), i.e. the frame index ``floor(t * fps)`` as the official samplers take
    it."""
    if stream.time_base is not None:
        container.seek(max(int(t / stream.time_base), 0), stream=stream, backward=True, any_frame=False)
    shown = None
    for frame in container.decode(stream):
        if shown is not None and frame.time is not None and frame.time > t + 1e-6:
            break
        shown = frame
    if shown is None:
        raise StopIteration(f"no frame at {t:.2f} s")
    return shown


_SRT_TIME_RE = re.compile(r"(\d+):(\d+):(\d+)[,.](\d+)\s*-->\s*(\d+):(\d+):(\d+)[,.](\d+)")
_FONT_RE = re.compile(r"<font[^>]*>(.*?)</font>", re.IGNORECASE | re.DOTALL)


def read_srt(path: Path) -> list[tuple[float, float, str]]:
    """(start s, end s, text) of each cue of an .srt file; ``<font ...>`` wrappers (Video-MME's) are removed."""
    cues = []
    text = path.read_text(encoding="utf-8-sig", errors="replace").replace("\r\n", "\n")
    for block in re.split(r"\n\s*\n", text):
        match = _SRT_TIME_RE.search(block)
        if not match:
            continue
        g = [int(x) for x in match.groups()]
        start = g[0] * 3600 + g[1] * 60 + g[2] + g[3] / 1000
        end = g[4] * 3600 + g[5] * 60 + g[6] + g[7] / 1000
        body = block[match.end():].strip()
        fonts = _FONT_RE.findall(body)
        line = " ".join(f.strip() for f in fonts) if fonts else re.sub(r"<[^>]+>", "", body).strip()
        if line:
            cues.append((start, end, " ".join(line.split())))
    return cues


def subtitles_at(cues: list[tuple[float, float, str]], times: Sequence[float]) -> list[str]:
    """The cues shown at any of ``times`` (start <= t < end), each once, in time order: Video-MME's protocol (the
    subtitles of the sampled frames)."""
    return [text for start, end, text in cues if any(start <= t < end for t in times)]


# ------------------------------------------------------------------------------------------------ rows


def _question_with_options(item: Item) -> str:
    question = item.question.strip()
    if item.choices:
        question = f"{question}\n{options_block(item.choices)}"
    if item.after_options:
        question = f"{question}\n{item.after_options}"
    return question


def to_row(benchmark: str, family: str, split: str, item: Item, index: int, images: list[bytes],
           scoring: str = "") -> dict:
    """The trainer row of one item (images already encoded, in order)."""
    from recipe.zppo.algo.answer_format import ANSWER_CLOSER

    question = _question_with_options(item)
    marked = question.count("<image>")
    if marked not in (0, len(images)):
        raise SourceError(f"{benchmark}: question {item.qid} has {marked} <image> markers for {len(images)} images")
    if marked == 0 and images:
        question = "<image>" * len(images) + question
    answer = item.answer
    if isinstance(answer, (list, tuple)):
        answer = json.dumps([str(a) for a in answer], ensure_ascii=False) if len(answer) > 1 else str(answer[0])
    unknown = set(item.fields) - set(JUDGE_FIELD_NAMES)
    if unknown:
        raise SourceError(f"{benchmark}: question {item.qid}: unknown scoring fields {sorted(unknown)}")
    fields = {name: item.fields.get(name, "") for name in JUDGE_FIELD_NAMES}
    gold_answers = item.fields.get("gold_answers")
    fields["gold_answers"] = [str(a) for a in gold_answers] if gold_answers else None
    history = [{"role": str(m["role"]), "content": str(m["content"])} for m in (item.history or [])]
    return {
        "data_source": benchmark,
        "prompt": history + [{"role": "user", "content": question + "\n\n" + ANSWER_CLOSER}],
        "ability": family,
        "reward_model": {"style": "rule", "ground_truth": str(answer)},
        "extra_info": {
            "index": index,
            "split": split,
            "question_id": f"{benchmark}-{item.qid}",
            "question": question,
            "answer": str(answer),
            "reward_type": item.reward_type,
            "tolerance": item.tolerance,
            "choices": [str(c) for c in item.choices] if item.choices else None,
            "benchmark": benchmark,
            "family": family,
            "category": item.category or "",
            "scoring": scoring,
            "subset": item.subset or "",
            **fields,
        },
        "images": [{"bytes": b} for b in images],
    }


def video_intro(count: int) -> str:
    return f"The video is shown as {count} frames sampled uniformly over its length, in order."


def subtitles_block(lines: list[str]) -> str:
    """Video-MME's subtitle preamble (its official prompt's wording)."""
    return "This video's subtitles are listed below:\n" + ("\n".join(lines) if lines else "No subtitles available")


def rows_of(items: Iterable[Item], benchmark: str, family: str, split: str, source: Source,
            options: ConvertOptions, scoring: str = "", frames: int = DEFAULT_FRAMES,
            sampling: str = "segments", per_second: float | None = None) -> Iterator[dict]:
    """Trainer rows of a converter's items: images and frames loaded and resized, ids made unique.

    ``frames`` / ``sampling`` / ``per_second``: the benchmark's frame protocol (``options.frames``, when set, is the
    count of every clip).
    """
    count = options.frames or frames
    per_second = None if options.frames else per_second
    seen: dict[str, int] = {}
    for index, item in enumerate(items):
        if options.limit is not None and index >= options.limit:
            return
        where = f"{benchmark} question {item.qid}"
        if not item.fields.get("judge_question"):  # the judge sees the question itself: no image/frame markers
            bare = re.sub(r"<image>\s*", "", item.question).strip()
            item = Item(**{**item.__dict__, "fields": {**item.fields, "judge_question": bare}})
        images = [image_bytes(value, source, options, where) for value in item.images]
        if item.clip is not None:
            sampled = sample_frames(item.clip, count, where, sampling, per_second)
            frame_bytes = [image_bytes(frame, source, options, where) for frame in sampled.images]
            if not frame_bytes:
                raise SourceError(f"{where}: no frame could be sampled from {item.clip.path}")
            if sampled.last is not None and not images:  # the question's image is the clip's last frame
                images = [image_bytes(sampled.last, source, options, where)]
            question = item.question
            if images and "<image>" not in question:  # the question's own images follow the frames
                question = "<image>" * len(images) + question
            if item.clip.subtitles is not None:
                question = subtitles_block(subtitles_at(item.clip.subtitles, sampled.times)) + "\n" + question
            question = video_intro(len(frame_bytes)) + "\n" + "<image>" * len(frame_bytes) + "\n" + question
            item = Item(**{**item.__dict__, "question": question, "clip": None})
            images = frame_bytes + images
        qid = str(item.qid)
        if qid in seen:  # ids must be unique per benchmark (some releases repeat them across variants)
            seen[qid] += 1
            item = Item(**{**item.__dict__, "qid": f"{qid}#{seen[qid]}"})
        else:
            seen[qid] = 0
        yield to_row(benchmark, family, split, item, index, images, scoring)


def write_rows(rows: Iterable[dict], path: Path, chunk: int = 256) -> int:
    """Write rows to a parquet file in chunks (memory bounded); returns the row count."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".parquet.tmp")
    count = 0
    writer = pq.ParquetWriter(str(tmp), ROW_SCHEMA, compression="snappy")
    try:
        buffer = []
        for row in rows:
            buffer.append(row)
            if len(buffer) >= chunk:
                writer.write_table(pa.Table.from_pylist(buffer, schema=ROW_SCHEMA))
                count += len(buffer)
                buffer = []
        if buffer:
            writer.write_table(pa.Table.from_pylist(buffer, schema=ROW_SCHEMA))
            count += len(buffer)
    finally:
        writer.close()
    tmp.replace(path)
    return count
