"""Converters of the video benchmarks (App. B.2, Tab. 7; and the extra suite). Each yields ``Item``s with a ``Clip``
(a video file or a frame folder found below the benchmark's folder); ``rows_of`` samples the frames as the
benchmark's protocol says (``Benchmark.frames`` / ``sampling``). Expected layouts: docs/evaluation.md."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from .common import (
    LETTERS,
    VIDEO_SUFFIXES,
    Clip,
    Item,
    Source,
    SourceError,
    as_list,
    clean_option,
    field_of,
    letter_of,
    numeric_or_text,
    read_srt,
)


def _clip(source: Source, name: str, **bounds) -> Clip:
    path = source.find(name, VIDEO_SUFFIXES)
    return Clip(path, **bounds)


def _video_name(name: str) -> str:
    """A video reference with an extension (ids are often given without one)."""
    return name if Path(name).suffix else name + ".mp4"


def _videomme(source: Source, subtitles: bool) -> Iterator[Item]:
    for record in source.records("videomme/test-*.parquet", "**/test-*.parquet"):
        qid = field_of(record, "question_id")
        video_id = str(field_of(record, "videoID"))
        options = [clean_option(o) for o in as_list(field_of(record, "options"))]
        clip = _clip(source, _video_name(video_id))
        if subtitles:  # subtitle/<videoID>.srt; a video without one gets "No subtitles available" (official)
            try:
                clip.subtitles = read_srt(source.find(f"subtitle/{video_id}.srt", (".srt",)))
            except SourceError:
                clip.subtitles = []
        duration = str(record.get("duration") or "")
        yield Item(str(qid), str(field_of(record, "question")),
                   letter_of(field_of(record, "answer"), options, f"{record['_file']} question {qid}"),
                   "multiple_choice", choices=options, category=str(record.get("task_type") or ""),
                   subset=duration, clip=clip)


def videomme(source: Source) -> Iterator[Item]:
    """Video-MME test without subtitles (lmms-lab/Video-MME: videomme/test-*.parquet + data/<videoID>.mp4);
    ``subset`` = duration (short / medium / long)."""
    yield from _videomme(source, subtitles=False)


def videomme_sub(source: Source) -> Iterator[Item]:
    """Video-MME test with subtitles (``subtitle/<videoID>.srt`` of the same release): the subtitles shown at the
    sampled frames' instants, in Video-MME's official wording ("This video's subtitles are listed below: ...")."""
    yield from _videomme(source, subtitles=True)


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


VIDEOMMMU_TRACKS = ("Perception", "Comprehension", "Adaptation")
# Video-MMMU's official prompt (lmms-eval's videommmu task, the benchmark authors' evaluation): the adaptation
# question's image is shown at the end of the video; the other tracks are told to ignore the quiz in the last frame.
VIDEOMMMU_ADAPTATION = ("You should watch and learn the video content. Then apply what you learned to answer the "
                        "following {kind} question. The image for this question is at the end of the video.")
VIDEOMMMU_IGNORE_QUIZ = "Please ignore the Quiz question in last frame of the video."


def videommmu(source: Source) -> Iterator[Item]:
    """Video-MMMU (lmms-lab/VideoMMMU: Perception / Comprehension / Adaptation config folders of test-*.parquet +
    <id>.mp4 videos); ``subset`` = the track. An adaptation question's image is its ``image`` field when the release
    has one, else the video's last frame (where the benchmark puts it): either way it is given after the frames."""
    for track in VIDEOMMMU_TRACKS:
        for record in source.records(f"{track}/test-*.parquet", f"**/{track}/test-*.parquet"):
            yield _videommmu_item(source, record, track)


def _videommmu_item(source: Source, record: dict, track: str) -> Item:
    qid = str(field_of(record, "id"))
    options = [clean_option(o) for o in as_list(record.get("options"))]
    multiple_choice = bool(options) and str(record.get("question_type") or "multiple-choice") == "multiple-choice"
    question = str(field_of(record, "question"))
    images, note = [], ""
    if track == "Adaptation":
        kind = "multi-choice" if multiple_choice else "open-ended"
        question = VIDEOMMMU_ADAPTATION.format(kind=kind) + "\n" + question
        images = [record["image"]] if record.get("image") is not None else []
    else:  # after the options, as the benchmark's prompt has it
        note = VIDEOMMMU_IGNORE_QUIZ
    clip = _clip(source, _video_name(qid))
    clip.last_frame = track == "Adaptation" and not images
    answer = field_of(record, "answer")
    if multiple_choice:
        return Item(qid, question, letter_of(answer, options, f"{track} {qid}"), "multiple_choice", images, options,
                    category=track, subset=track, clip=clip, after_options=note)
    return Item(qid, question, str(answer), numeric_or_text(answer), images, category=track, subset=track, clip=clip,
                after_options=note)


def mmvu(source: Source) -> Iterator[Item]:
    """MMVU validation (yale-nlp/MMVU: validation.json, or its parquet: id, video (a URL ending in
    videos/<subject>/<n>.mp4) or video_path, question, choices (letter -> text), answer, question_type,
    metadata.subject). BenchJudge: the official two-mode judge (Fig. 12) reads question, options and gold."""
    for record in source.records("**/validation.json", "**/validation-*.parquet", "**/validation.parquet"):
        qid = str(field_of(record, "id"))
        video = str(field_of(record, "video_path", "video"))
        if "/resolve/" in video:  # a hub URL: the file's path in the repository
            video = video.split("/resolve/", 1)[1].split("/", 1)[1]
        question = str(field_of(record, "question"))
        question_type = str(field_of(record, "question_type"))
        metadata = record.get("metadata") or {}
        subject = str(metadata.get("subject") or Path(video).parent.name)
        fields = {"judge": "mmvu", "judge_question": question, "question_type": question_type}
        answer = str(field_of(record, "answer")).strip()
        clip = _clip(source, video)
        if question_type == "multiple-choice":
            choices = record.get("choices") or {}
            if isinstance(choices, str):
                choices = json.loads(choices)
            letters = [letter for letter in LETTERS if str(choices.get(letter) or "").strip()]
            options = [str(choices[letter]).strip() for letter in letters]
            if letters != list(LETTERS[: len(letters)]):
                raise SourceError(f"{record['_file']} question {qid}: choices {sorted(choices)} are not A, B, C, ...")
            gold = letter_of(answer, options, f"{record['_file']} question {qid}", "letter")
            yield Item(qid, question, gold, "multiple_choice", choices=options, category=subject, subset=subject,
                       clip=clip, fields={**fields, "gold_answers": [gold]})
        else:
            yield Item(qid, question, answer, "string_match", category=subject, subset=subject, clip=clip,
                       fields={**fields, "gold_answers": [answer]})
