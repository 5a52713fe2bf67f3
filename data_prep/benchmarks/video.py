"""Converters of the video benchmarks. Each yields ``Item``s with a ``Clip`` (a video file or a frame folder found
below the benchmark's folder); ``rows_of`` samples the frames. Expected layouts: docs/evaluation.md."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from .common import (
    VIDEO_SUFFIXES,
    Clip,
    Item,
    Source,
    as_list,
    clean_option,
    field_of,
    letter_of,
    numeric_or_text,
)


def _clip(source: Source, name: str, **bounds) -> Clip:
    path = source.find(name, VIDEO_SUFFIXES)
    return Clip(path, **bounds)


def _video_name(name: str) -> str:
    """A video reference with an extension (ids are often given without one)."""
    return name if Path(name).suffix else name + ".mp4"


def videomme(source: Source) -> Iterator[Item]:
    """Video-MME test (videomme/test-*.parquet + <videoID>.mp4 files), without subtitles."""
    for record in source.records("videomme/test-*.parquet", "**/test-*.parquet"):
        qid = field_of(record, "question_id")
        options = [clean_option(o) for o in as_list(field_of(record, "options"))]
        yield Item(str(qid), str(field_of(record, "question")),
                   letter_of(field_of(record, "answer"), options, f"{record['_file']} question {qid}"),
                   "multiple_choice", choices=options, category=str(record.get("duration") or ""),
                   clip=_clip(source, _video_name(str(field_of(record, "videoID")))))


# Where MVBench keeps each task's videos (folder below video/, and the frame rate of frame folders). The task json
# names only the file; this table is the benchmark's published layout.
MVBENCH_TASKS = {
    "action_sequence": ("star/Charades_v1_480", None),
    "action_prediction": ("star/Charades_v1_480", None),
    "action_antonym": ("ssv2_video", None),
    "fine_grained_action": ("Moments_in_Time_Raw/videos", None),
    "unexpected_action": ("FunQA_test/test", None),
    "object_existence": ("clevrer/video_validation", None),
    "object_interaction": ("star/Charades_v1_480", None),
    "object_shuffle": ("perception/videos", None),
    "moving_direction": ("clevrer/video_validation", None),
    "action_localization": ("sta/sta_video", None),
    "scene_transition": ("scene_qa/video", None),
    "action_count": ("perception/videos", None),
    "moving_count": ("clevrer/video_validation", None),
    "moving_attribute": ("clevrer/video_validation", None),
    "state_change": ("perception/videos", None),
    "fine_grained_pose": ("nturgbd", None),
    "character_order": ("perception/videos", None),
    "egocentric_navigation": ("vlnqa", None),
    "episodic_reasoning": ("tvqa/frames_fps3_hq", 3.0),
    "counterfactual_inference": ("clevrer/video_validation", None),
}


def mvbench(source: Source) -> Iterator[Item]:
    """MVBench (json/<task>.json: video, question, candidates, answer text, optional start/end seconds)."""
    counts: dict[str, int] = {}
    for record in source.records("json/*.json", "**/json/*.json"):
        task = Path(record["_file"]).stem
        number = counts[task] = counts.get(task, -1) + 1
        folder, frame_fps = MVBENCH_TASKS.get(task, ("", None))
        candidates = [str(c) for c in as_list(field_of(record, "candidates"))]
        video = str(field_of(record, "video"))
        start, end = record.get("start"), record.get("end")
        clip = _clip(source, f"video/{folder}/{video}" if folder else video,
                     start=float(start) if start is not None else None, end=float(end) if end is not None else None,
                     frame_fps=frame_fps)
        qid = f"{task}-{number}"
        yield Item(qid, str(field_of(record, "question")),
                   letter_of(field_of(record, "answer"), candidates, qid, "text"),
                   "multiple_choice", choices=candidates, category=task, clip=clip)


def longvideobench(source: Source) -> Iterator[Item]:
    """LongVideoBench validation (lvb_val.json: candidates, correct_choice index; or the parquet with option0..4)."""
    for record in source.records("**/lvb_val.json", "**/validation-*.parquet"):
        qid = field_of(record, "id")
        candidates = [str(c) for c in as_list(record.get("candidates"))] or [
            str(record[f"option{i}"]) for i in range(5) if record.get(f"option{i}") not in (None, "", "N/A")
        ]
        answer = letter_of(field_of(record, "correct_choice"), candidates, f"{record['_file']} question {qid}", "index")
        yield Item(str(qid), str(field_of(record, "question")), answer, "multiple_choice", choices=candidates,
                   category=str(record.get("duration_group") or ""),
                   clip=_clip(source, str(field_of(record, "video_path"))))


def mlvu(source: Source) -> Iterator[Item]:
    """MLVU dev, multiple-choice tasks (json/<n>_<task>.json with candidates; generation tasks are skipped)."""
    counts: dict[str, int] = {}
    for record in source.records("json/*.json", "**/json/*.json"):
        task = Path(record["_file"]).stem
        number = counts[task] = counts.get(task, -1) + 1
        if not record.get("candidates"):
            continue
        candidates = [str(c) for c in as_list(record["candidates"])]
        video = str(field_of(record, "video"))
        qid = f"{task}-{number}"
        yield Item(qid, str(field_of(record, "question")),
                   letter_of(field_of(record, "answer"), candidates, qid, "text"),
                   "multiple_choice", choices=candidates, category=str(record.get("question_type") or task),
                   clip=_clip(source, f"video/{task}/{video}"))


def videommmu(source: Source) -> Iterator[Item]:
    """Video-MMMU (Perception / Comprehension / Adaptation parquet folders + <id>.mp4 videos)."""
    for record in source.records("*/test-*.parquet", "**/test-*.parquet", "**/*.parquet"):
        qid = str(field_of(record, "id"))
        track = Path(record["_file"]).parent.name
        options = [clean_option(o) for o in as_list(record.get("options"))]
        images = [record["image"]] if record.get("image") is not None else []
        clip = _clip(source, _video_name(qid))
        answer = field_of(record, "answer")
        if options and str(record.get("question_type") or "multiple-choice") == "multiple-choice":
            yield Item(qid, str(field_of(record, "question")), letter_of(answer, options, f"{track} {qid}"),
                       "multiple_choice", images, options, category=track, clip=clip)
        else:
            yield Item(qid, str(field_of(record, "question")), str(answer), numeric_or_text(answer), images,
                       category=track, clip=clip)
