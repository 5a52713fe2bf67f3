"""Tiny local copies of every registered benchmark in its published layout (file names, fields, image and video
storage), made offline: images drawn with PIL, videos encoded with PyAV, frame folders written as PNGs.

    python -m data_prep.benchmarks.fixtures --out ROOT [--rows 2]
    python -m data_prep.benchmarks --src ROOT --out DIR          # then convert them like real copies

Used by the tests, and to try the conversion and evaluation pipeline without downloading anything.
``build_fixtures`` returns, for every benchmark, the correct answer of each row in row order: the OPTION TEXT for
multiple choice (so a test can check the converter's gold letter), the answer itself otherwise.
"""

from __future__ import annotations

import argparse
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
    _jsonl(root / "test.jsonl", [{"problem": f"Compute {i} squared.", "answer": str(i * i), "id": str(i)}
                                 for i in range(rows)])
    return [str(i * i) for i in range(rows)]


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
    pairs = [_mmmu_record(i, False) for i in range(rows)]
    _parquet(root / "standard (10 options)/test-00000-of-00001.parquet", [p[0] for p in pairs])
    return [p[1] for p in pairs]


def _mmmu_pro_vision(root: Path, rows: int) -> list[str]:
    records, expected = [], []
    for i in range(rows):
        options, gold = _options(i)
        records.append({"id": f"test_Art_{i}", "image": _hf_image(i, (300, 200)), "options": str(options),
                        "answer": chr(65 + gold), "subject": "Art"})
        expected.append(options[gold])
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
    answers = [str(i + 2) if i % 2 == 0 else f"panel {i}" for i in range(rows)]
    _parquet(root / "val.parquet",
             [{"image": _hf_image(i), "figure_path": f"images/{i}.jpg", "category": "cs", "reasoning_q":
               f"Which curve peaks first in plot {i}?", "reasoning_a": answers[i], "reasoning_a_type": 1,
               "reasoning_q_source": 1} for i in range(rows)])
    return answers


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
    records, expected = [], []
    for i in range(rows):
        options, gold = _options(i, 5)
        records.append({"id": f"Perception_Art_{i}", "question": f"What does the lecturer draw in lecture {i}?",
                        "options": options, "answer": chr(65 + gold), "question_type": "multiple-choice",
                        "link_selected": ""})
        expected.append(options[gold])
        _video(root / f"videos/Perception_Art_{i}.mp4")
    _parquet(root / "Perception/test-00000-of-00001.parquet", records)
    return expected


WRITERS: dict[str, Callable[[Path, int], list[str]]] = {
    "aime24": _aime, "aime25": _aime25, "math500": _math500, "gpqa_diamond": _gpqa, "mmlu_pro": _mmlu_pro,
    "mathvista": _mathvista, "mathverse": _mathverse, "mathvision": _mathvision, "mmmu": _mmmu,
    "mmmu_pro": _mmmu_pro, "mmmu_pro_vision": _mmmu_pro_vision, "mmstar": _mmstar, "ai2d": _ai2d,
    "chartqa": _chartqa, "charxiv": _charxiv, "ocrbench": _ocrbench, "realworldqa": _realworldqa,
    "hallusionbench": _hallusionbench, "blink": _blink, "wemath": _wemath, "logicvista": _logicvista,
    "dynamath": _dynamath, "videomme": _videomme, "mvbench": _mvbench, "longvideobench": _longvideobench,
    "mlvu": _mlvu, "videommmu": _videommmu,
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
