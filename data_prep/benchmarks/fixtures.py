"""Tiny local copies of every registered benchmark in its published layout (file names, configs, fields, image and
video storage, subtitles), made offline: images drawn with PIL, videos encoded with PyAV, frame folders as PNGs.

    python -m data_prep.benchmarks.fixtures --out ROOT [--rows 2]
    python -m data_prep.benchmarks --src ROOT --out DIR          # then convert them like real copies

Used by the tests, and to try the conversion and evaluation pipeline without downloading anything.
``build_fixtures`` returns, for every benchmark, the correct answer of each row in row order: the OPTION TEXT for
multiple choice (so a test can check the converter's gold letter), the answer itself otherwise.
"""

from __future__ import annotations

import argparse
import base64
import csv
import io
import json
import sys
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

FRAME_COUNT = 12  # frames of each fixture video (its colour changes with time, so sampled frames are ordered)
VIDEO_FPS = 4


def _png(index: int, size: tuple[int, int] = (48, 36)) -> bytes:
    from PIL import Image, ImageDraw

    image = Image.new("RGB", size, (40 + 50 * (index % 5), 200 - 30 * (index % 6), 90))
    ImageDraw.Draw(image).rectangle([2, 2, 2 + index % 20, 10], fill=(255, 255, 255))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _hf_image(index: int, size=(48, 36)) -> dict:
    return {"bytes": _png(index, size), "path": f"{index}.png"}


def _parquet(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), str(path))


def _json(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


def _jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def frame_colour(t: int) -> tuple[int, int, int]:
    """Colour of frame ``t`` of a fixture video: red grows with time."""
    return (min(255, 10 + 20 * t), 60, 120)


def _video(path: Path, frames: int = FRAME_COUNT, size=(64, 48)) -> None:
    import av
    import numpy as np

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=VIDEO_FPS)
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        for t in range(frames):
            array = np.zeros((size[1], size[0], 3), dtype=np.uint8)
            array[:, :] = frame_colour(t)
            for packet in stream.encode(av.VideoFrame.from_ndarray(array, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def _frame_folder(path: Path, frames: int = FRAME_COUNT, size=(64, 48)) -> None:
    from PIL import Image

    path.mkdir(parents=True, exist_ok=True)
    for t in range(frames):
        Image.new("RGB", size, frame_colour(t)).save(path / f"{t + 1:05d}.png")


def _options(i: int, count: int = 4) -> tuple[list[str], int]:
    """Option texts and the index of the correct one (it moves with the row)."""
    return [f"option {chr(65 + k)} of row {i}" for k in range(count)], (i + 1) % count


# ------------------------------------------------------------------------------------------------ writers
# Each writes ``rows`` rows under ``root`` (the benchmark's folder) and returns the correct answers.


def _aime(root: Path, rows: int) -> list[str]:
    _parquet(root / "data/train-00000-of-00001.parquet",
             [{"id": 60 + i, "problem": f"Find the remainder of {100 + i} divided by 7.", "solution": "...",
               "answer": str((100 + i) % 7), "url": "", "year": "2024"} for i in range(rows)])
    return [str((100 + i) % 7) for i in range(rows)]


def _aime25(root: Path, rows: int) -> list[str]:
    """opencompass/AIME2025: one jsonl per exam (AIME2025-I, AIME2025-II), question and answer, no id."""
    expected = []
    for part in ("I", "II"):
        records = [{"question": f"Compute {i} squared plus {len(part)}.", "answer": str(i * i + len(part))}
                   for i in range(rows)]
        _jsonl(root / f"aime2025-{part}.jsonl", records)
        expected += [r["answer"] for r in records]
    return expected


def _aime26(root: Path, rows: int) -> list[str]:
    """MathArena/aime_2026: data/train-*.parquet with problem_idx, problem, answer."""
    records = [{"problem_idx": i + 1, "problem": f"Find the number of divisors of {12 * (i + 1)}.",
                "answer": str(len([d for d in range(1, 12 * (i + 1) + 1) if 12 * (i + 1) % d == 0])),
                "problem_type": ["Number Theory"]} for i in range(rows)]
    _parquet(root / "data/train-00000-of-00001.parquet", records)
    return [r["answer"] for r in records]


def _math500(root: Path, rows: int) -> list[str]:
    answers = [f"\\frac{{{i + 1}}}{{{i + 2}}}" for i in range(rows)]
    _jsonl(root / "test.jsonl", [{"problem": f"Simplify {2 * (i + 1)}/{2 * (i + 2)}.", "solution": "...",
                                  "answer": answers[i], "subject": "Algebra", "level": 1,
                                  "unique_id": f"test/algebra/{i}.json"} for i in range(rows)])
    return answers


def _gpqa(root: Path, rows: int) -> list[str]:
    root.mkdir(parents=True, exist_ok=True)
    with open(root / "gpqa_diamond.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["Question", "Correct Answer", "Incorrect Answer 1", "Incorrect Answer 2",
                                               "Incorrect Answer 3", "Record ID", "High-level domain"])
        writer.writeheader()
        for i in range(rows):
            writer.writerow({"Question": f"Which particle is number {i}?", "Correct Answer": f"muon {i}",
                             "Incorrect Answer 1": f"pion {i}", "Incorrect Answer 2": f"kaon {i}",
                             "Incorrect Answer 3": f"tau {i}", "Record ID": f"rec{i:04d}",
                             "High-level domain": "Physics"})
    return [f"muon {i}" for i in range(rows)]


def _mmlu_pro(root: Path, rows: int) -> list[str]:
    records, expected = [], []
    for i in range(rows):
        options, gold = _options(i, 10)
        records.append({"question_id": 70 + i, "question": f"Question {i}?", "options": options,
                        "answer": chr(65 + gold), "answer_index": gold, "cot_content": "", "category": "law",
                        "src": "ori_mmlu"})
        expected.append(options[gold])
    _parquet(root / "data/test-00000-of-00001.parquet", records)
    return expected


def _mathvista(root: Path, rows: int) -> list[str]:
    records, expected = [], []
    for i in range(rows):
        meta = {"category": "math-targeted-vqa", "context": "", "grade": "", "img_height": 36, "img_width": 48,
                "language": "english", "skills": [], "source": "", "split": "testmini", "task": ""}
        if i % 2 == 0:  # numbers as options: the answer is the option's TEXT, not an index
            options, gold = [str(i + 1 + k) for k in range(4)], 1
            records.append({"pid": str(i + 1), "question": f"Which option fits image {i}?", "image": f"images/{i}.jpg",
                            "decoded_image": _hf_image(i), "choices": options, "unit": None, "precision": None,
                            "answer": options[gold], "question_type": "multi_choice", "answer_type": "text",
                            "metadata": meta, "query": "Hint: ..."})
            expected.append(options[gold])
        else:
            records.append({"pid": str(i + 1), "question": f"How long is side {i}?", "image": f"images/{i}.jpg",
                            "decoded_image": _hf_image(i), "choices": None, "unit": "cm", "precision": 1.0,
                            "answer": f"{i}.5", "question_type": "free_form", "answer_type": "float",
                            "metadata": meta, "query": "Hint: ..."})
            expected.append(f"{i}.5")
    _parquet(root / "data/testmini-00000-of-00001.parquet", records)
    return expected


def _mathverse(root: Path, rows: int) -> list[str]:
    records, expected = [], []
    for i in range(rows):
        meta = {"split": "testmini", "source": "GeoQA", "subject": "Plane Geometry", "subfield": "Angle"}
        if i % 2 == 0:
            records.append({"sample_index": str(i + 1), "problem_index": str(i), "problem_version": "Text Dominant",
                            "question": f"Find angle {i}.\nChoices:\nA:{i + 30}°\nB:{i + 40}°\nC:{i + 50}°"
                                        f"\nD:{i + 60}°",
                            "image": _hf_image(i), "answer": "B", "question_type": "multi-choice", "metadata": meta,
                            "query_wo": "", "query_cot": ""})
            expected.append(f"{i + 40}°")
        else:
            records.append({"sample_index": str(i + 1), "problem_index": str(i), "problem_version": "Vision Only",
                            "question": "", "image": _hf_image(i), "answer": str(i + 3), "question_type": "free-form",
                            "metadata": meta, "query_wo": "", "query_cot": ""})
            expected.append(str(i + 3))
    _parquet(root / "testmini.parquet", records)
    return expected


def _mathvision(root: Path, rows: int) -> list[str]:
    records, expected = [], []
    for i in range(rows):
        options, gold = _options(i, 5) if i % 2 == 0 else ([], 0)
        answer = chr(65 + gold) if options else str(2 * i + 1)
        records.append({"id": str(i + 1), "question": f"<image1>What is shown in figure {i}?", "options": options,
                        "image": f"images/{i + 1}.jpg", "decoded_image": _hf_image(i), "answer": answer,
                        "solution": None, "level": 2, "subject": "metric geometry - area"})
        expected.append(options[gold] if options else answer)
    _parquet(root / "data/test-00000-of-00001.parquet", records)
    return expected


def _mmmu_record(i: int, with_type: bool) -> tuple[dict, str]:
    options, gold = _options(i)
    record = {"id": f"validation_Art_{i + 1}", "question": f"<image 1> and <image 2>: which is row {i}?",
              "options": str(options), "explanation": "", "image_1": _hf_image(i), "image_2": _hf_image(i + 50),
              **{f"image_{k}": None for k in range(3, 8)}, "img_type": "['Paintings']", "answer": chr(65 + gold),
              "topic_difficulty": "Easy"}
    record.update({"question_type": "multiple-choice", "subfield": "Fine Arts"} if with_type else {"subject": "Art"})
    return record, options[gold]


def _mmmu(root: Path, rows: int) -> list[str]:
    pairs = [_mmmu_record(i, True) for i in range(rows)]
    if rows > 1:  # one open question (answer stored as the text of a list of acceptable answers)
        record, _ = pairs[-1]
        record.update(question_type="open", options="[]", answer="['12', '12.0']")
        pairs[-1] = (record, "12")
    _parquet(root / "Art/validation-00000-of-00001.parquet", [p[0] for p in pairs])
    return [p[1] for p in pairs]


def _mmmu_pro(root: Path, rows: int) -> list[str]:
    """MMMU/MMMU_Pro, its three configs: "standard (10 options)", "standard (4 options)" (MMMU rows, options as the
    text of a list) and "vision" (id, image, options, answer, subject)."""
    expected = []
    for config, count in (("standard (10 options)", 10), ("standard (4 options)", 4)):
        records = []
        for i in range(rows):
            record, _ = _mmmu_record(i, False)
            options, gold = _options(i + count, count)
            record.update(id=f"test_Art_{i + 1}", options=str(options), answer=chr(65 + gold))
            records.append(record)
            expected.append(options[gold])
        _parquet(root / f"{config}/test-00000-of-00001.parquet", records)
    records = []
    for i in range(rows):
        options, gold = _options(i)
        records.append({"id": f"test_Art_{i + 1}", "image": _hf_image(i, (300, 200)), "options": str(options),
                        "answer": chr(65 + gold), "subject": "Art"})
        expected.append(f"option {chr(65 + gold)} of row {i}")  # the options are in the screenshot
    _parquet(root / "vision/test-00000-of-00001.parquet", records)
    return expected


def _mmstar(root: Path, rows: int) -> list[str]:
    colours = ["red", "blue", "green", "black"]
    records, expected = [], []
    for i in range(rows):
        gold = i % 4
        question = f"What colour is the square in picture {i}?\nOptions: " + ", ".join(
            f"{chr(65 + k)}: {c}" for k, c in enumerate(colours))
        records.append({"index": i, "question": question, "image": _hf_image(i), "answer": chr(65 + gold),
                        "category": "coarse perception", "l2_category": "image scene",
                        "meta_info": {"source": "seedbench", "split": "val", "image_path": f"{i}.jpg"}})
        expected.append(colours[gold])
    _parquet(root / "mmstar.parquet", records)
    return expected


def _ai2d(root: Path, rows: int) -> list[str]:
    records, expected = [], []
    for i in range(rows):
        options, gold = _options(i)
        records.append({"question": f"Which label marks part {i}?", "options": options, "answer": str(gold),
                        "image": _hf_image(i)})
        expected.append(options[gold])
    _parquet(root / "data/test-00000-of-00001.parquet", records)
    return expected


def _chartqa(root: Path, rows: int) -> list[str]:
    answers = [str(10 * i + 7) if i % 2 == 0 else f"Country {i}" for i in range(rows)]
    _parquet(root / "data/test-00000-of-00001.parquet",
             [{"type": "human_test", "question": f"What is bar {i}?", "answer": answers[i], "image": _hf_image(i)}
              for i in range(rows)])
    return answers


def _charxiv(root: Path, rows: int) -> list[str]:
    """princeton-nlp/CharXiv val.parquet: one row per figure, its reasoning question and four descriptive
    questions (template ids and answers); rows come out reasoning first, then descriptive."""
    records, reasoning, descriptive = [], [], []
    for i in range(rows):
        answers = [f"Title {i}", "Not Applicable", str(i + 3), "2 by 2"]
        records.append({"image": _hf_image(i), "category": "cs", "year": 2023, "figure_path": f"images/{i}.jpg",
                        "num_subplots": 4 if i % 2 else 1, "subplots": [], "subplot_row": 2 if i % 2 else 0,
                        "subplot_col": 1 if i % 2 else 0, "subplot_loc": [2, 1] if i % 2 else [0, 0],
                        "descriptive_q1": 1, "descriptive_q2": 11, "descriptive_q3": 19 - i % 2 * 9,
                        "descriptive_q4": 18, **{f"descriptive_a{k + 1}": a for k, a in enumerate(answers)},
                        "reasoning_q": f"Which curve peaks first in plot {i}?",
                        "reasoning_a": str(i + 2) if i % 2 == 0 else f"panel {i}", "reasoning_a_type": 4 - i % 2 * 3,
                        "reasoning_q_source": 2})
        reasoning.append(records[-1]["reasoning_a"])
        descriptive += answers
    _parquet(root / "val.parquet", records)
    return reasoning + descriptive


def _ocrbench(root: Path, rows: int) -> list[str]:
    _parquet(root / "data/test-00000-of-00001.parquet",
             [{"dataset": "IIIT5K", "question": "what is written in the image?",
               "question_type": "Regular Text Recognition",
               "answer": [f"WORD{i}", f"word{i}!"], "image": _hf_image(i)} for i in range(rows)])
    return [f"WORD{i}" for i in range(rows)]


def _realworldqa(root: Path, rows: int) -> list[str]:
    records, expected = [], []
    for i in range(rows):
        if i % 2 == 0:
            records.append({"image": _hf_image(i), "question": f"Which way does road {i} turn?\nA. left\nB. right\n"
                            "C. straight\nPlease answer directly with only the letter of the correct option and "
                            "nothing else.", "answer": "C"})
            expected.append("straight")
        else:
            records.append({"image": _hf_image(i), "question": f"How many cars are in picture {i}? Please answer "
                            "directly with a single word or number.", "answer": str(i + 1)})
            expected.append(str(i + 1))
    _parquet(root / "data/test-00000-of-00001.parquet", records)
    return expected


def _hallusionbench(root: Path, rows: int) -> list[str]:
    _parquet(root / "data/image-00000-of-00001.parquet",
             [{"category": "VD", "subcategory": "illusion", "visual_input": "1", "set_id": str(i), "figure_id": "0",
               "sample_note": "", "question_id": str(i % 2), "question": f"Is line {i} longer than the other?",
               "gt_answer_details": "", "gt_answer": str(i % 2), "filename": f"{i}.png", "image": _hf_image(i)}
              for i in range(rows)])
    return ["yes" if i % 2 else "no" for i in range(rows)]


def _blink(root: Path, rows: int) -> list[str]:
    records, expected = [], []
    for i in range(rows):
        options, gold = _options(i, 2)
        records.append({"idx": f"val_Counting_{i + 1}", "question": f"Which image shows more dots ({i})?",
                        "sub_task": "Counting", "image_1": _hf_image(i), "image_2": _hf_image(i + 7),
                        "image_3": None, "image_4": None, "choices": options, "answer": f"({chr(65 + gold)})",
                        "prompt": "", "explanation": ""})
        expected.append(options[gold])
    _parquet(root / "Counting/val-00000-of-00001.parquet", records)
    return expected


def _wemath(root: Path, rows: int) -> list[str]:
    records, expected = [], []
    for i in range(rows):
        options = [f"{i + k} cm" for k in range(1, 5)]
        records.append({"ID": f"{i + 1}-1", "split": "testmini", "knowledge concept": "Perimeter",
                        "question": f"What is the perimeter of shape {i}?",
                        "option": "; ".join(f"{chr(65 + k)}. {o}" for k, o in enumerate(options)),
                        "answer": "D", "image_path": _hf_image(i), "key": "1", "question number": i,
                        "knowledge concept description": ""})
        expected.append(options[3])
    _parquet(root / "testmini.parquet", records)
    return expected


def _logicvista(root: Path, rows: int) -> list[str]:
    data, expected = {}, []
    for i in range(rows):
        (root / "data/images").mkdir(parents=True, exist_ok=True)
        (root / f"data/images/{i}.png").write_bytes(_png(i))
        data[str(i)] = {"imagename": f"{i}.png", "question": f"Which shape comes next in sequence {i}?\n"
                        "A. circle\nB. square\nC. star\nD. cross", "answer": "C", "reasoning": "", "skill": ["pattern"]}
        expected.append("star")
    _json(root / "data/dataset.json", data)
    return expected


def _dynamath(root: Path, rows: int) -> list[str]:
    expected = []
    for variant in (1, 2):
        records = []
        for i in range(rows):
            records.append({"id": str(i + 1), "question": f"What is the slope of line {i} (variant {variant})?",
                            "image": f"images/{i}.png", "decoded_image": _hf_image(i + variant),
                            "ground_truth": f"{variant}.{i}", "answer_type": "float", "subject": "algebra",
                            "knowledge_level": "high school"})
            expected.append(f"{variant}.{i}")
        _parquet(root / f"data/sample_variant{variant}-00000-of-00001.parquet", records)
    return expected


def _videomme(root: Path, rows: int) -> list[str]:
    records, expected = [], []
    for i in range(rows):
        options, gold = _options(i)
        records.append({"video_id": f"{i + 1:03d}", "duration": "short", "domain": "Knowledge",
                        "sub_category": "Humanity & History", "url": "", "videoID": f"vid{i}",
                        "question_id": f"{i + 1:03d}-1", "task_type": "Counting Problem",
                        "question": f"What happens in clip {i}?", "options": [f"{chr(65 + k)}. {o}" for k, o in
                                                                               enumerate(options)],
                        "answer": chr(65 + gold)})
        expected.append(options[gold])
        _video(root / f"data/vid{i}.mp4")
    _parquet(root / "videomme/test-00000-of-00001.parquet", records)
    return expected


# Subtitle cues of the fixture's first video (3 s long): only those shown at a sampled frame make the prompt.
SUBTITLE_CUES = [(0.3, 0.5, "a cue between frames"), (0.0, 1.5, "first line"), (1.5, 3.0, "second line"),
                 (5.0, 6.0, "after the end")]


def _srt_time(t: float) -> str:
    return f"00:00:{int(t):02d},{int(round(t * 1000)) % 1000:03d}"


def _videomme_sub(root: Path, rows: int) -> list[str]:
    """The same release plus subtitle/<videoID>.srt (Video-MME's <font> cues); the second video has none."""
    expected = _videomme(root, rows)
    cues = sorted(SUBTITLE_CUES)
    (root / "subtitle").mkdir(parents=True, exist_ok=True)
    (root / "subtitle/vid0.srt").write_text("".join(
        f'{n}\n{_srt_time(a)} --> {_srt_time(b)}\n<font color="white" size=".72c">{text}</font>\n\n'
        for n, (a, b, text) in enumerate(cues, 1)))
    return expected


def _mvbench(root: Path, rows: int) -> list[str]:
    sequence, episodic, expected = [], [], []
    for i in range(rows):
        options, gold = _options(i, 3)
        sequence.append({"video": f"clip{i}.mp4", "question": f"What did the person do first in clip {i}?",
                         "candidates": options, "answer": options[gold], "start": 0.5, "end": 2.5})
        _video(root / f"video/star/Charades_v1_480/clip{i}.mp4")
        expected.append(options[gold])
    for i in range(rows):
        options, gold = _options(i + 10, 3)
        episodic.append({"video": f"episode{i}", "question": f"Why did they leave in episode {i}?",
                         "candidates": options, "answer": options[gold], "start": 1.0, "end": 3.0})
        _frame_folder(root / f"video/tvqa/frames_fps3_hq/episode{i}")
        expected.append(options[gold])
    _json(root / "json/action_sequence.json", sequence)
    _json(root / "json/episodic_reasoning.json", episodic)
    return expected


def _longvideobench(root: Path, rows: int) -> list[str]:
    records, expected = [], []
    for i in range(rows):
        options, gold = _options(i, 5)
        records.append({"video_id": f"lv{i}", "id": f"lv{i}_0", "video_path": f"lv{i}.mp4",
                        "subtitle_path": f"lv{i}_en.json", "question": f"What is shown at the end of video {i}?",
                        "candidates": options, "correct_choice": gold, "duration_group": 15, "duration": 3.0,
                        "question_category": "S2E", "topic_category": "NP-News-Programs"})
        expected.append(options[gold])
        _video(root / f"videos/lv{i}.mp4")
    _json(root / "lvb_val.json", records)
    return expected


def _mlvu(root: Path, rows: int) -> list[str]:
    records, expected = [], []
    for i in range(rows):
        options, gold = _options(i)
        records.append({"video": f"movie{i}.mp4", "duration": 3.0, "question": f"What is the plot of movie {i}?",
                        "candidates": options, "answer": options[gold], "question_type": "plotQA"})
        expected.append(options[gold])
        _video(root / f"video/1_plotQA/movie{i}.mp4")
    _json(root / "json/1_plotQA.json", records)
    _json(root / "json/9_summary.json", [{"video": "movie0.mp4", "duration": 3.0, "question": "Summarise.",
                                          "answer": "A summary.", "question_type": "summary"}])
    return expected


def _videommmu(root: Path, rows: int) -> list[str]:
    """lmms-lab/VideoMMMU: Perception, Comprehension and Adaptation config folders; adaptation row 0 has its question
    image in ``image``, row 1 none (the video's last frame is the image) and is open-ended."""
    expected = []
    for track in ("Perception", "Comprehension", "Adaptation"):
        records = []
        for i in range(rows):
            options, gold = _options(i, 5)
            qid = f"{track[:5]}_Art_{i}"
            record = {"id": qid, "question": f"What does the lecturer draw in lecture {i}?", "options": options,
                      "answer": chr(65 + gold), "question_type": "multiple-choice", "link_selected": ""}
            if track == "Adaptation":
                record["image"] = _hf_image(i) if i == 0 else None
                if i == 1:
                    record.update(question="What is the area of the shape?", options=[], answer="12.5",
                                  question_type="open")
            records.append(record)
            expected.append(options[gold] if record["options"] else record["answer"])
            _video(root / f"videos/{qid}.mp4")
        _parquet(root / f"{track}/test-00000-of-00001.parquet", records)
    return expected


def _mmvu(root: Path, rows: int) -> list[str]:
    """yale-nlp/MMVU validation.json (video as a hub URL, choices as a letter -> text map) + videos/<subject>/."""
    records, expected = [], []
    for i in range(rows):
        video = f"videos/Art/{i}.mp4"
        _video(root / video)
        record = {"id": f"val_{i}", "video": f"https://huggingface.co/datasets/yale-nlp/MMVU/resolve/main/{video}",
                  "youtube_url": None, "question": f"Which technique is shown in clip {i}?",
                  "metadata": {"subject": "Art", "textbook": "", "rationale": "", "knowledge": ""}}
        if i % 2 == 0:
            options, gold = _options(i, 5)
            record.update(choices={chr(65 + k): o for k, o in enumerate(options)}, answer=chr(65 + gold),
                          question_type="multiple-choice")
            expected.append(options[gold])
        else:
            record.update(choices={}, answer=f"impasto {i}", question_type="open-ended")
            expected.append(f"impasto {i}")
        records.append(record)
    _json(root / "validation.json", records)
    return expected


# ------------------------------------------------------------------------------------------------ paper suite (new)


def _babyvision(root: Path, rows: int) -> list[str]:
    records, expected = [], []
    for i in range(rows):
        if i % 2 == 0:
            options, gold = _options(i)
            records.append({"taskId": 100 + i, "type": "Fine-grained Discrimination", "subtype": "Find the same",
                            "image": _hf_image(i), "question": f"Which piece matches shape {i}?", "ansType": "choice",
                            "options": options, "choiceAns": gold, "blankAns": None})
            expected.append(options[gold])
        else:
            records.append({"taskId": 100 + i, "type": "Visual Tracking", "subtype": "Maze", "image": _hf_image(i),
                            "question": f"Give the exit cell of maze {i}.", "ansType": "blank", "options": None,
                            "choiceAns": None, "blankAns": f"({i},7)"})
            expected.append(f"({i},7)")
    _parquet(root / "data/train-00000-of-00001.parquet", records)
    return expected


def _embspatial(root: Path, rows: int) -> list[str]:
    records, expected = [], []
    for i in range(rows):
        options, gold = _options(i)
        records.append({"question_id": f"mp3d_{i}", "image": _hf_image(i), "question": f"Where is the chair {i}?",
                        "answer_options": options, "answer": gold, "relation": "left", "data_source": "mp3d",
                        "objects": []})
        expected.append(options[gold])
    _parquet(root / "data/test-00000-of-00001.parquet", records)
    return expected


def _infovqa(root: Path, rows: int) -> list[str]:
    records = [{"questionId": 65000 + i, "question": f"What percentage is shown in panel {i}?",
                "answers": [f"{10 + i}%", f"{10 + i} percent"], "answer_type": ["single span"], "image": _hf_image(i),
                "docId": i, "ocr": "", "data_split": "val"} for i in range(rows)]
    _parquet(root / "InfographicVQA/validation-00000-of-00001.parquet", records)
    return [r["answers"][0] for r in records]


def _mm_vet(root: Path, rows: int) -> list[str]:
    records = [{"question_id": f"v1_{i}", "image": _hf_image(i), "question": f"What is x in equation {i}?",
                "answer": f"-{i + 1} <AND> -5", "capability": "ocr,math", "image_source": ""} for i in range(rows)]
    _parquet(root / "data/test-00000-of-00001.parquet", records)
    return [r["answer"] for r in records]


def _ocrbench_v2_records(rows: int) -> list[dict]:
    """Rows of both languages, as ling99/OCRBench_v2 stores them (one file)."""
    records = []
    for i in range(rows):
        records.append({"id": 2 * i, "dataset_name": "IIIT5K", "question": f"What is written in image {i}?",
                        "type": "text recognition en", "answers": [f"WORD{i}"], "image": _hf_image(i),
                        "eval": "None", "bbox": None, "bbox_list": None, "content": None})
        records.append({"id": 2 * i + 1, "dataset_name": "ChineseTable", "question": f"图{i}中的标题是什么？",
                        "type": "cognition VQA cn", "answers": [f"标题{i}", f"标题 {i}"], "image": _hf_image(i + 30),
                        "eval": "None", "bbox": [1, 2, 30, 40], "bbox_list": None, "content": None})
    return records


def _ocrbench_v2_en(root: Path, rows: int) -> list[str]:
    _parquet(root / "data/test-00000-of-00001.parquet", _ocrbench_v2_records(rows))
    return [f"WORD{i}" for i in range(rows)]


def _ocrbench_v2_zh(root: Path, rows: int) -> list[str]:
    _parquet(root / "data/test-00000-of-00001.parquet", _ocrbench_v2_records(rows))
    return [f"标题{i}" for i in range(rows)]


def _visualpuzzles(root: Path, rows: int) -> list[str]:
    records, expected = [], []
    for i in range(rows):
        options, gold = _options(i)
        if i % 2 == 0:
            records.append({"id": i, "category": "Algorithmic", "image": _hf_image(i),
                            "question": f"Which figure completes pattern {i}?", "options": options,
                            "answer": chr(65 + gold)})
            expected.append(options[gold])
        else:
            records.append({"id": i, "category": "Spatial", "image": _hf_image(i),
                            "question": f"Which cube unfolds into net {i}?", "options": None,
                            "answer": chr(65 + gold)})
            expected.append(f"option {chr(65 + gold)} of row {i}")
    _parquet(root / "data/train-00000-of-00001.parquet", records)
    return expected


def _vlms_are_blind(root: Path, rows: int) -> list[str]:
    records = [{"image": _hf_image(i), "prompt": f"How many circles touch in image {i}? Answer with a number in "
                "curly brackets, e.g., {3}.", "groundtruth": str(i + 1), "task": "Touching Circles",
                "metadata": ""} for i in range(rows)]
    _parquet(root / "data/valid-00000-of-00001.parquet", records)
    return [str(i + 1) for i in range(rows)]


def _ceval(root: Path, rows: int) -> list[str]:
    """ceval/ceval-exam as its release zip unpacks: val/<subject>_val.csv (and dev/, test/, not evaluated)."""
    expected = []
    fields = ["id", "question", "A", "B", "C", "D", "answer", "explanation"]
    for subject in ("accountant", "physician"):
        records = []
        for i in range(rows):
            options, gold = _options(i)
            letters = {chr(65 + k): o for k, o in enumerate(options)}
            records.append({"id": i, "question": f"{subject} 问题 {i}？", **letters, "answer": chr(65 + gold),
                            "explanation": ""})
            expected.append(options[gold])
        for split, part in (("val", records), ("dev", records[:1])):  # dev is not the evaluated split
            (root / split).mkdir(parents=True, exist_ok=True)
            with open(root / f"{split}/{subject}_{split}.csv", "w", newline="", encoding="utf-8") as f:
                writer = csv.DictWriter(f, fieldnames=fields)
                writer.writeheader()
                writer.writerows(part)
    return expected


def _hle(root: Path, rows: int) -> list[str]:
    records, expected = [], []
    for i in range(rows):
        if i % 2 == 0:
            records.append({"id": f"hle{i}", "question": f"What is the smallest prime above {10 * i + 10}?",
                            "image": "", "answer": str({0: 11, 2: 31}.get(i, 11)), "answer_type": "exactMatch",
                            "rationale": "", "raw_subject": "Mathematics", "category": "Math", "canary": ""})
            expected.append(records[-1]["answer"])
        else:
            encoded = base64.b64encode(_png(i)).decode()
            records.append({"id": f"hle{i}", "question": "Which panel is odd?\nAnswer Choices:\nA. one\nB. two",
                            "image": f"data:image/png;base64,{encoded}", "answer": "B",
                            "answer_type": "multipleChoice", "rationale": "", "raw_subject": "Physics",
                            "category": "Physics", "canary": ""})
            expected.append(f"option B of row {i}")
    _parquet(root / "data/test-00000-of-00001.parquet", records)
    return expected


def _imo_answerbench(root: Path, rows: int) -> list[str]:
    records = [{"Problem ID": f"imo-bench-algebra-{i:03d}", "Problem": f"Find all real x with x^2 = {i + 4}.",
                "Short Answer": f"\\pm \\sqrt{{{i + 4}}}", "Category": "Algebra", "Subcategory": "Equation",
                "Source": "fixture"} for i in range(rows)]
    root.mkdir(parents=True, exist_ok=True)
    with open(root / "answerbench.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(records[0]))
        writer.writeheader()
        writer.writerows(records)
    return [r["Short Answer"] for r in records]


def _mmlu(root: Path, rows: int) -> list[str]:
    records, expected = [], []
    for i in range(rows):
        options, gold = _options(i)
        records.append({"question": f"Anatomy question {i}?", "subject": "anatomy" if i % 2 == 0 else "virology",
                        "choices": options, "answer": gold})
        expected.append(options[gold])
    _parquet(root / "all/test-00000-of-00001.parquet", records)
    _parquet(root / "anatomy/test-00000-of-00001.parquet", records[:1])  # per-subject copies: not read twice
    return expected


def _arrow_stream(path: Path, rows: list[dict]) -> None:
    """A ``datasets.save_to_disk`` shard: an Arrow IPC stream."""
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pylist(rows)
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)


def _mmlu_redux(root: Path, rows: int) -> list[str]:
    """edinburgh-dawg/mmlu-redux-2.0 as saved with ``datasets``: <subject>/data-00000-of-00001.arrow (+ its json
    metadata); in each subject one extra row re-annotated as wrong (error_type != ok) that is left out."""
    expected = []
    for subject in ("anatomy", "virology"):
        records = []
        for i in range(rows):
            options, gold = _options(i)
            records.append({"question": f"{subject} question {i}?", "choices": options, "answer": gold,
                            "error_type": "ok", "source": "", "correct_answer": None, "potential_reason": ""})
            expected.append(options[gold])
        records.insert(1, {"question": "A flawed question?", "choices": ["a", "b", "c", "d"], "answer": 0,
                           "error_type": "wrong_groundtruth", "source": "", "correct_answer": "1",
                           "potential_reason": ""})
        _arrow_stream(root / f"{subject}/data-00000-of-00001.arrow", records)
        _json(root / f"{subject}/state.json", {"_data_files": [{"filename": "data-00000-of-00001.arrow"}],
                                              "_split": "test"})
    return expected


def _multichallenge(root: Path, rows: int) -> list[str]:
    records = [{"QUESTION_ID": f"mc{i}", "AXIS": "INSTRUCTION_RETENTION",
                "CONVERSATION": [{"role": "user", "content": f"Always answer in French. Hello {i}."},
                                 {"role": "assistant", "content": "Bonjour."},
                                 {"role": "user", "content": f"What is {i} plus one?"}],
                "TARGET_QUESTION": "Does the model answer in French?", "PASS_CRITERIA": "YES"} for i in range(rows)]
    _jsonl(root / "data/benchmark_questions.jsonl", records)
    return ["YES" for _ in range(rows)]


WRITERS: dict[str, Callable[[Path, int], list[str]]] = {
    # the paper's suite (Tabs 5-7)
    "ai2d": _ai2d, "babyvision": _babyvision, "charxiv": _charxiv, "dynamath": _dynamath, "embspatial": _embspatial,
    "infovqa": _infovqa, "mathverse": _mathverse, "mathvision": _mathvision, "mathvista": _mathvista,
    "mmmu_pro": _mmmu_pro, "mm_vet": _mm_vet, "ocrbench_v2_en": _ocrbench_v2_en, "ocrbench_v2_zh": _ocrbench_v2_zh,
    "visualpuzzles": _visualpuzzles, "vlms_are_blind": _vlms_are_blind, "wemath": _wemath,
    "aime25": _aime25, "aime26": _aime26, "ceval": _ceval, "gpqa_diamond": _gpqa, "hle": _hle,
    "imo_answerbench": _imo_answerbench, "mmlu": _mmlu, "mmlu_pro": _mmlu_pro, "mmlu_redux": _mmlu_redux,
    "multichallenge": _multichallenge,
    "mmvu": _mmvu, "mvbench": _mvbench, "videomme": _videomme, "videomme_sub": _videomme_sub,
    "videommmu": _videommmu,
    # the extra suite
    "aime24": _aime, "math500": _math500, "mmmu": _mmmu, "mmstar": _mmstar, "chartqa": _chartqa,
    "ocrbench": _ocrbench, "realworldqa": _realworldqa, "hallusionbench": _hallusionbench, "blink": _blink,
    "logicvista": _logicvista, "longvideobench": _longvideobench, "mlvu": _mlvu,
}


def build_fixtures(root: Path, names=None, rows: int = 2) -> dict[str, list[str]]:
    """Write tiny copies of ``names`` (default: all) under ``root/<name>/``; returns the correct answers per row."""
    root = Path(root)
    return {name: WRITERS[name](root / name, rows) for name in (names or WRITERS)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m data_prep.benchmarks.fixtures",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--rows", type=int, default=2)
    args = parser.parse_args(argv)
    answers = build_fixtures(args.out, rows=args.rows)
    print(f"fixtures: {len(answers)} benchmarks under {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
