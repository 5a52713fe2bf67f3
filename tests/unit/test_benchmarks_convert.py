"""Benchmark converters: tiny copies of every registered benchmark in its published layout (built offline by
data_prep.benchmarks.fixtures) convert into the trainer's rows, and the project's reward grades them as a user
expects: the correct answer in the answer format scores 1, a wrong one 0.
"""

from __future__ import annotations

import io
import json
import re

import pyarrow.parquet as pq
import pytest
from PIL import Image

from data_prep.benchmarks import BENCHMARKS, FAMILIES, convert_many, resolve, suite
from data_prep.benchmarks.__main__ import main as convert_main
from data_prep.benchmarks.common import (
    LETTERS,
    ROW_SCHEMA,
    Clip,
    ConvertOptions,
    SourceError,
    clean_option,
    sample_frames,
    split_options,
)
from data_prep.benchmarks.fixtures import FRAME_COUNT, VIDEO_FPS, build_fixtures, frame_colour
from recipe.zppo.algo.answer_format import ANSWER_CLOSER
from recipe.zppo.reward import compute_score

MIN_PIXELS, MAX_PIXELS = 32 * 32, 64 * 64  # small range: fixture images are upscaled, a large one downscaled
FRAMES = 4


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench_src")
    out = tmp_path_factory.mktemp("bench_out")
    expected = build_fixtures(root, rows=2)
    options = ConvertOptions(MIN_PIXELS, MAX_PIXELS, frames=FRAMES)
    done = convert_many(list(BENCHMARKS), root, out, options, log=lambda line: None)
    return root, out, expected, done


def _rows(out, name):
    return pq.read_table(str(out / f"{name}.parquet")).to_pylist()


def _respond(answer) -> str:
    return f"<think>reasoning</think> The answer is \\boxed{{{answer}}}"


def test_every_registered_benchmark_converts_with_the_trainer_schema(converted):
    _, out, expected, done = converted
    assert set(done) == set(BENCHMARKS)
    for name, answers in expected.items():
        assert pq.read_schema(str(out / f"{name}.parquet")).equals(ROW_SCHEMA, check_metadata=False), name
        rows = _rows(out, name)
        assert len(rows) == len(answers) == done[name]["rows"], name
        ids = [row["extra_info"]["question_id"] for row in rows]
        assert len(set(ids)) == len(ids), f"{name}: question ids repeat"
        for row in rows:
            assert row["data_source"] == name
            assert row["extra_info"]["family"] == BENCHMARKS[name].family
            content = row["prompt"][0]["content"]
            assert content.endswith("\n\n" + ANSWER_CLOSER), name
            assert content.count("<image>") == len(row["images"]), name
    manifest = json.loads((out / "manifest.json").read_text())
    assert {name: entry["rows"] for name, entry in manifest.items()} == {n: d["rows"] for n, d in done.items()}


def test_reward_grades_converted_rows_right_and_wrong(converted):
    """For multiple choice the answer is the letter of the fixture's correct OPTION TEXT among the row's choices (the
    paper's grader reads letters, not option text): graded right, this checks the gold letter."""
    _, out, expected, _ = converted
    for name, answers in expected.items():
        for row, correct in zip(_rows(out, name), answers):
            gold, info = row["reward_model"]["ground_truth"], row["extra_info"]
            if info["reward_type"] == "multiple_choice" and info.get("choices") is not None:
                cleaned = [clean_option(c).lower() for c in info["choices"]]
                if clean_option(str(correct)).lower() in cleaned:
                    correct = LETTERS[cleaned.index(clean_option(str(correct)).lower())]
            elif info["reward_type"] == "multiple_choice":  # options only in the image: the fixture names the letter
                correct = re.fullmatch(r"option ([A-Z]) of row \d+", str(correct)).group(1)
            right = compute_score(name, _respond(correct), gold, info)
            wrong = compute_score(name, _respond("zebra 987654"), gold, info)
            assert right["acc"] == 1.0, (name, correct, gold, info["reward_type"], right)
            assert wrong["acc"] == 0.0, (name, gold, wrong)
            if info["reward_type"] == "multiple_choice":
                assert compute_score(name, _respond(gold), gold, info)["acc"] == 1.0, (name, gold)


def test_format_instructions_are_replaced_by_the_closer(converted):
    _, out, _, _ = converted
    content = _rows(out, "realworldqa")[0]["prompt"][0]["content"]
    assert "Please answer directly" not in content and "A. left\nB. right\nC. straight" in content
    free_form = _rows(out, "realworldqa")[1]["prompt"][0]["content"]
    assert "How many cars are in picture 1?\n\n" in free_form and "single word" not in free_form
    mmmu = _rows(out, "mmmu")[0]["prompt"][0]["content"]
    assert mmmu.startswith("<image><image>") and "Image 1 and Image 2" in mmmu and "<image 1>" not in mmmu


def test_images_are_resized_into_the_pixel_range(converted):
    _, out, _, _ = converted
    sizes = []
    for name in ("mathvista", "mmmu", "mmmu_pro_vision", "logicvista"):  # upscaled, and a 300x200 image downscaled
        for row in _rows(out, name):
            for image in row["images"]:
                width, height = Image.open(io.BytesIO(image["bytes"])).size
                assert MIN_PIXELS <= width * height <= MAX_PIXELS, (name, width, height)
                sizes.append(width / height)
    assert any(abs(ratio - 1.5) < 0.05 for ratio in sizes)  # 300x200 kept its aspect ratio


def test_video_rows_hold_frames_sampled_in_order(converted):
    _, out, _, _ = converted
    for name in suite("video"):
        for row in _rows(out, name):
            assert len(row["images"]) == FRAMES, name
            content = row["prompt"][0]["content"]
            assert f"shown as {FRAMES} frames" in content and "<image>" * FRAMES in content
            reds = [Image.open(io.BytesIO(f["bytes"])).convert("RGB").getpixel((3, 3))[0] for f in row["images"]]
            assert reds == sorted(reds) and reds[-1] - reds[0] > 60, (name, reds)  # spread over time, in order


def test_clip_bounds_and_frame_folders_sample_inside_the_clip(tmp_path):
    build_fixtures(tmp_path, ["mvbench"], rows=1)
    video = tmp_path / "mvbench/video/star/Charades_v1_480/clip0.mp4"
    frames = sample_frames(Clip(video, start=1.0, end=2.0), 2, "test")
    # 4 fps: 1.25 s and 1.75 s are frames 5 and 7
    assert [f.getpixel((3, 3))[0] for f in frames] == pytest.approx([frame_colour(5)[0], frame_colour(7)[0]], abs=6)
    folder = tmp_path / "mvbench/video/tvqa/frames_fps3_hq/episode0"
    frames = sample_frames(Clip(folder, start=0.0, end=FRAME_COUNT / VIDEO_FPS, frame_fps=3.0), 3, "test")
    assert len(frames) == 3


def test_split_options_reads_inline_options():
    stem, options = split_options("What colour?\nOptions: A: red, B: dark blue, C: green")
    assert stem == "What colour?" and options == ["red", "dark blue", "green"]
    stem, options = split_options("Find x.\nChoices:\nA:30°\nB:40°")
    assert stem == "Find x." and options == ["30°", "40°"]
    assert split_options("Is A: the first letter?") == ("Is A: the first letter?", None)


def test_suite_names_resolve_and_unknown_names_are_reported():
    names, unknown = resolve(["vlm", "aime24", "AIME24", "nosuch"])
    assert names[: len(suite("vlm"))] == suite("vlm") and names.count("aime24") == 1
    assert unknown == ["nosuch"]
    assert {BENCHMARKS[n].family for n in resolve(list(FAMILIES))[0]} == set(FAMILIES)


def test_missing_and_malformed_copies_are_one_line_and_others_still_convert(tmp_path, capsys):
    src, out = tmp_path / "src", tmp_path / "out"
    build_fixtures(src, ["math500", "mmstar"], rows=2)
    (src / "mmstar/mmstar.parquet").write_bytes(b"not parquet")
    code = convert_main(["--suite", "math500,mmstar,aime24,nosuch", "--src", str(src), "--out", str(out),
                         "--min-pixels", str(MIN_PIXELS), "--max-pixels", str(MAX_PIXELS)])
    err = capsys.readouterr().err
    assert code == 1
    assert (out / "math500.parquet").exists() and not (out / "mmstar.parquet").exists()
    lines = err.splitlines()
    assert any("mmstar" in line and "mmstar.parquet" in line and "cannot read" in line for line in lines)
    assert any("aime24" in line and "does not exist" in line for line in lines)
    assert any("nosuch" in line and "unknown" in line for line in lines)
    assert "Traceback" not in err


def test_a_row_without_a_required_field_names_file_and_key(tmp_path):
    build_fixtures(tmp_path, ["math500"], rows=1)
    path = tmp_path / "math500/test.jsonl"
    path.write_text(json.dumps({"problem": "1+1?", "unique_id": "x"}) + "\n")
    with pytest.raises(SourceError, match=r"test\.jsonl: row without answer"):
        convert_many(["math500"], tmp_path, tmp_path / "out", ConvertOptions(MIN_PIXELS, MAX_PIXELS),
                     log=lambda line: (_ for _ in ()).throw(SourceError(line)))


def test_images_given_as_base64_or_paths_are_read(tmp_path):
    import base64

    from data_prep.benchmarks.common import Source, image_bytes

    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), (200, 10, 10)).save(buffer, format="JPEG")
    jpeg = buffer.getvalue()
    encoded = base64.b64encode(jpeg).decode()
    assert encoded.startswith("/9j/")  # base64 JPEG starts with a slash: it must not be taken for a path
    (tmp_path / "imgs").mkdir()
    (tmp_path / "imgs/a.jpg").write_bytes(jpeg)
    source, options = Source("x", tmp_path), ConvertOptions(MIN_PIXELS, MAX_PIXELS)
    for value in (encoded, "imgs/a.jpg", "a.jpg", {"bytes": None, "path": "imgs/a.jpg"}, jpeg):
        width, height = Image.open(io.BytesIO(image_bytes(value, source, options, "test"))).size
        assert MIN_PIXELS <= width * height <= MAX_PIXELS
    with pytest.raises(SourceError, match="missing.png not found"):
        image_bytes("missing.png", source, options, "test")
