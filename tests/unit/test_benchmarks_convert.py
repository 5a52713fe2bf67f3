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
    JUDGES,
    LETTERS,
    METRICS,
    ROW_SCHEMA,
    Clip,
    ConvertOptions,
    SourceError,
    clean_option,
    frame_times,
    read_srt,
    sample_frames,
    split_options,
    subtitles_at,
)
from data_prep.benchmarks.fixtures import FRAME_COUNT, SUBTITLE_CUES, VIDEO_FPS, build_fixtures, frame_colour
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
            content = row["prompt"][-1]["content"]  # the last user turn (earlier turns: MultiChallenge)
            assert row["prompt"][-1]["role"] == "user" and content.endswith("\n\n" + ANSWER_CLOSER), name
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


def test_every_row_gives_the_judge_its_bare_question(converted):
    # Fig. 9's judge and the official ones see the question itself: no image or frame markers, no closer, and no
    # options block (the judge prompt lists the options from extra_info["choices"]).
    _, out, _, done = converted
    from recipe.zppo.algo.answer_format import ANSWER_CLOSER

    for name in done:
        for row in _rows(out, name):
            info = row["extra_info"]
            bare = info["judge_question"]
            assert bare.strip() and "<image>" not in bare and ANSWER_CLOSER not in bare, (name, bare)
            if info["choices"] and info["judge"] != "charxiv_reasoning":
                assert "\nA. " not in bare, (name, bare)


def test_images_are_resized_into_the_pixel_range(converted):
    _, out, _, _ = converted
    sizes = []
    for name in ("mathvista", "mmmu", "mmmu_pro", "logicvista"):  # upscaled, and a 300x200 image downscaled
        for row in _rows(out, name):
            for image in row["images"]:
                width, height = Image.open(io.BytesIO(image["bytes"])).size
                assert MIN_PIXELS <= width * height <= MAX_PIXELS, (name, width, height)
                sizes.append(width / height)
    assert any(abs(ratio - 1.5) < 0.05 for ratio in sizes)  # 300x200 kept its aspect ratio


def test_video_rows_hold_frames_sampled_in_order(converted):
    _, out, _, _ = converted
    for name in suite("video") + ["longvideobench", "mlvu"]:
        for row in _rows(out, name):
            adaptation = row["extra_info"]["subset"] == "Adaptation"  # + the question's image after the frames
            assert len(row["images"]) == FRAMES + adaptation, name
            content = row["prompt"][0]["content"]
            assert f"shown as {FRAMES} frames" in content and "<image>" * FRAMES in content
            frames = row["images"][:FRAMES]
            reds = [Image.open(io.BytesIO(f["bytes"])).convert("RGB").getpixel((3, 3))[0] for f in frames]
            assert reds == sorted(reds) and reds[-1] - reds[0] > 60, (name, reds)  # spread over time, in order


def test_clip_bounds_and_frame_folders_sample_inside_the_clip(tmp_path):
    build_fixtures(tmp_path, ["mvbench"], rows=1)
    video = tmp_path / "mvbench/video/star/Charades_v1_480/clip0.mp4"
    frames = sample_frames(Clip(video, start=1.0, end=2.0), 2, "test").images
    # 4 fps: 1.25 s and 1.75 s are frames 5 and 7
    assert [f.getpixel((3, 3))[0] for f in frames] == pytest.approx([frame_colour(5)[0], frame_colour(7)[0]], abs=6)
    folder = tmp_path / "mvbench/video/tvqa/frames_fps3_hq/episode0"
    frames = sample_frames(Clip(folder, start=0.0, end=FRAME_COUNT / VIDEO_FPS, frame_fps=3.0), 3, "test").images
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


# ------------------------------------------------------------------------------------------------ the paper's suite

PAPER_ABBREVS = {  # the column headers of the paper's Tabs 1-2, in the order of Tabs 5-7
    "ai2d": "AI2D", "babyvision": "BabyV", "charxiv": "CharXiv", "dynamath": "DynaM", "embspatial": "EmbSp",
    "infovqa": "InfoVQA", "mathverse": "MVerse", "mathvision": "MVision", "mathvista": "MVista", "mmmu_pro": "MMMUPro",
    "mm_vet": "MM-Vet", "ocrbench_v2_en": "OCREN", "ocrbench_v2_zh": "OCRZH", "visualpuzzles": "VisP",
    "vlms_are_blind": "VBlind", "wemath": "WeMath",
    "aime25": "AIME25", "aime26": "AIME26", "ceval": "CEval", "gpqa_diamond": "GPQA-D", "hle": "HLE",
    "imo_answerbench": "IMO-AB", "mmlu": "MMLU", "mmlu_pro": "MMLU-Pro", "mmlu_redux": "MMLU-Rd",
    "multichallenge": "MultiCh",
    "mmvu": "MMVU", "mvbench": "MVBench", "videomme": "VMME", "videomme_sub": "VMMES", "videommmu": "VMMMU",
}
# Tabs 5-7: scoring and Hugging Face source of each
PAPER_SCORING = {
    "benchjudge": {"charxiv", "mm_vet", "hle", "multichallenge", "mmvu"},
    "det": {"infovqa", "ocrbench_v2_en", "ocrbench_v2_zh"},
    "rule_judge": {"mathvista", "mvbench", "videomme", "videomme_sub", "videommmu"},
}
PAPER_SOURCES = {
    "ai2d": "lmms-lab/ai2d", "babyvision": "UnipatAI/BabyVision", "charxiv": "princeton-nlp/CharXiv",
    "dynamath": "DynaMath/DynaMath_Sample", "embspatial": "FlagEval/EmbSpatial-Bench", "infovqa": "lmms-lab/DocVQA",
    "mathverse": "CaraJ/MathVerse-lmmseval", "mathvision": "MathLLMs/MathVision", "mathvista": "AI4Math/MathVista",
    "mmmu_pro": "MMMU/MMMU_Pro", "mm_vet": "lmms-lab/MMVet", "ocrbench_v2_en": "ling99/OCRBench_v2",
    "ocrbench_v2_zh": "ling99/OCRBench_v2", "visualpuzzles": "neulab/VisualPuzzles",
    "vlms_are_blind": "XAI/vlmsareblind",
    "wemath": "We-Math/We-Math", "aime25": "opencompass/AIME2025", "aime26": "MathArena/aime_2026",
    "ceval": "ceval/ceval-exam", "gpqa_diamond": "Idavidrein/gpqa", "hle": "cais/hle",
    "imo_answerbench": "OpenEvals/IMO-AnswerBench", "mmlu": "cais/mmlu", "mmlu_pro": "TIGER-Lab/MMLU-Pro",
    "mmlu_redux": "edinburgh-dawg/mmlu-redux-2.0", "multichallenge": "ScaleAI/MultiChallenge", "mmvu": "yale-nlp/MMVU",
    "mvbench": "OpenGVLab/MVBench", "videomme": "lmms-lab/Video-MME", "videomme_sub": "lmms-lab/Video-MME",
    "videommmu": "lmms-lab/VideoMMMU",
}


def test_registry_is_the_papers_suite_and_the_rest_is_extra():
    paper = [b for b in BENCHMARKS.values() if b.suite == "paper"]
    assert {b.name: b.abbrev for b in paper} == PAPER_ABBREVS
    assert [b.name for b in paper] == list(PAPER_ABBREVS)  # Tabs 5-7 order
    assert {b.name: b.origin for b in paper} == PAPER_SOURCES
    for bench in paper:
        expected = next((s for s, names in PAPER_SCORING.items() if bench.name in names), "exact_judge")
        assert bench.scoring == expected, bench.name
    assert [len(suite(f)) for f in FAMILIES] == [10, 16, 5]  # llm, vlm, video
    extra = suite("extra")
    assert len(extra) == 12 and not set(extra) & set(PAPER_ABBREVS)
    assert "mmmu_pro_vision" not in BENCHMARKS  # now one of MMMU-Pro's three configs
    names, unknown = resolve(["llm", "vlm", "video"])
    assert set(names) == set(PAPER_ABBREVS) and not unknown
    assert resolve(["MMMUPro", "OCREN", "gpqa-d", "VMMES", "extra"])[0][:4] == ["mmmu_pro", "ocrbench_v2_en",
                                                                                "gpqa_diamond", "videomme_sub"]


def test_list_prints_one_line_per_benchmark(capsys):
    assert convert_main(["--list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["ABBREV", "family", "hf_source", "split/config", "scoring", "suite"]
    assert len(lines) == 1 + len(BENCHMARKS)
    mmmu_pro = next(line for line in lines if line.startswith("MMMUPro "))
    cells = mmmu_pro.split()
    assert cells[:3] == ["MMMUPro", "vlm", "MMMU/MMMU_Pro"] and cells[-2:] == ["Exact+Judge", "paper"]
    assert "standard (4 options)" in mmmu_pro and "vision" in mmmu_pro
    assert next(line for line in lines if line.startswith("CharXiv ")).split()[-2:] == ["BenchJudge", "paper"]
    assert next(line for line in lines if line.startswith("OCRZH ")).split()[-2:] == ["Det.", "paper"]
    assert next(line for line in lines if line.startswith("MMStar ")).split()[-1] == "extra"


# Hand-computed from the fixture writers (data_prep/benchmarks/fixtures.py, 2 rows, 4 frames): for chosen rows,
# the gold (ground_truth), images, text the prompt must contain, and extra_info fields.
EXPECTED_ROWS = {
    "ai2d": {0: dict(gold="B", images=1, has=["Which label marks part 0?"], subset="")},
    "babyvision": {0: dict(gold="B", images=1, subset="Fine-grained Discrimination", reward_type="multiple_choice"),
                   1: dict(gold="(1,7)", subset="Visual Tracking", has=["Give the exit cell of maze 1."])},
    "charxiv": {
        0: dict(gold="2", subset="reasoning", judge="charxiv_reasoning", inst_category="4",
                judge_question="Which curve peaks first in plot 0?", question_id="charxiv-0-reasoning"),
        1: dict(gold="panel 1", inst_category="1"),
        2: dict(gold="Title 0", subset="descriptive", judge="charxiv_descriptive", inst_category="1",
                judge_question="What is the title of the plot?", has=["For the current plot, what is its title?\n*"]),
        4: dict(gold="3", inst_category="19", has=["What is the number of subplots?\n"],
                judge_question="What is the number of subplots?"),
        6: dict(gold="Title 1", has=["For the subplot at row 2 and column 1, what is its title?"],
                question_id="charxiv-1-descriptive1"),
        8: dict(gold="4", inst_category="10",
                has=["For the subplot at row 2 and column 1, how many lines are there?"]),
    },
    "dynamath": {0: dict(gold="1.0", reward_type="numeric", has=["slope of line 0 (variant 1)"])},
    "embspatial": {0: dict(gold="B", subset="left", category="mp3d", has=["Where is the chair 0?\nA. option A"])},
    "infovqa": {0: dict(gold='["10%", "10 percent"]', metric="anls", gold_answers=["10%", "10 percent"],
                        question_id="infovqa-65000")},
    "mathverse": {0: dict(gold="B", has=["Find angle 0.\nA. 30°\nB. 40°"]), 1: dict(gold="4", reward_type="math")},
    "mathvision": {0: dict(gold="B", has=["<image>Image 1What is shown in figure 0?"])},
    "mathvista": {0: dict(gold="B"), 1: dict(gold="1.5", reward_type="numeric", has=["(Unit: cm)"])},
    "mmmu_pro": {
        0: dict(gold="B", images=2, subset="standard (10 options)", question_id="mmmu_pro-std10-test_Art_1",
                has=["J. option J of row 10"]),
        2: dict(gold="B", images=2, subset="standard (4 options)", question_id="mmmu_pro-std4-test_Art_1",
                has=["D. option D of row 4"]),
        5: dict(gold="C", images=1, subset="vision", question_id="mmmu_pro-vision-test_Art_2",
                has=["Answer the multiple-choice question shown in the image."]),
    },
    "mm_vet": {0: dict(gold="-1 <AND> -5", judge="mm_vet", gold_answers=["-1 <AND> -5"],
                       judge_question="What is x in equation 0?", category="ocr,math")},
    "ocrbench_v2_en": {1: dict(gold="WORD1", subset="text recognition", metric="ocrbench_v2",
                               ocr_task="text recognition en", ocr_eval="None", question_id="ocrbench_v2_en-2")},
    "ocrbench_v2_zh": {0: dict(gold='["标题0", "标题 0"]', subset="visual text understanding", metric="ocrbench_v2",
                               ocr_task="cognition VQA cn", question_id="ocrbench_v2_zh-1",
                               gold_answers=["标题0", "标题 0"], has=["图0中的标题是什么？"])},
    "visualpuzzles": {0: dict(gold="B", subset="Algorithmic"),
                      1: dict(gold="C", subset="Spatial", choices=None,
                              has=["Which cube unfolds into net 1?\nOptions: Choose from (A) (B) (C) (D) in the "
                                   "image."])},
    "vlms_are_blind": {0: dict(gold="1", subset="Touching Circles", has=["How many circles touch in image 0?\n\n"])},
    "wemath": {0: dict(gold="D", has=["D. 4 cm"])},
    "aime25": {0: dict(gold="1", question_id="aime25-aime2025-I-1", images=0),
               2: dict(gold="2", question_id="aime25-aime2025-II-1", has=["Compute 0 squared plus 2."])},
    "aime26": {0: dict(gold="6", question_id="aime26-1"), 1: dict(gold="8", question_id="aime26-2")},
    "ceval": {0: dict(gold="B", subset="accountant", question_id="ceval-accountant-0", has=["accountant 问题 0？"]),
              3: dict(gold="C", subset="physician", question_id="ceval-physician-1")},
    "gpqa_diamond": {0: dict(question_id="gpqa_diamond-rec0000", has=["Which particle is number 0?"])},
    "hle": {0: dict(gold="11", images=0, judge="hle", question_type="exactMatch", reward_type="math",
                    gold_answers=["11"], judge_question="What is the smallest prime above 10?"),
            1: dict(gold="B", images=1, question_type="multipleChoice", reward_type="multiple_choice")},
    "imo_answerbench": {0: dict(gold="\\pm \\sqrt{4}", subset="Algebra", reward_type="math",
                                question_id="imo_answerbench-imo-bench-algebra-000")},
    "mmlu": {0: dict(gold="B", subset="anatomy", question_id="mmlu-anatomy-0"),
             1: dict(gold="C", subset="virology", question_id="mmlu-virology-0")},
    "mmlu_pro": {0: dict(gold="B", has=["Question 0?\nA. option A of row 0"])},
    "mmlu_redux": {0: dict(gold="B", question_id="mmlu_redux-anatomy-0"),
                   1: dict(gold="C", question_id="mmlu_redux-anatomy-2", subset="anatomy")},
    "multichallenge": {0: dict(gold="YES", judge="multichallenge", axis="INSTRUCTION_RETENTION",
                               target_question="Does the model answer in French?", pass_criteria="YES",
                               turns=3, has=["What is 0 plus one?"])},
    "mmvu": {0: dict(gold="B", images=4, judge="mmvu", question_type="multiple-choice", subset="Art",
                     gold_answers=["B"], judge_question="Which technique is shown in clip 0?"),
             1: dict(gold="impasto 1", images=4, question_type="open-ended", choices=None)},
    "mvbench": {0: dict(gold="B", images=4, category="action_sequence"), 2: dict(category="episodic_reasoning")},
    "videomme": {0: dict(gold="B", images=4, subset="short", category="Counting Problem", lacks=["subtitles"])},
    "videomme_sub": {
        0: dict(gold="B", images=4, has=["<image>\nThis video's subtitles are listed below:\nfirst line\nsecond line"
                                         "\nWhat happens in clip 0?"], lacks=["between frames", "after the end"]),
        1: dict(has=["This video's subtitles are listed below:\nNo subtitles available\nWhat happens in clip 1?"]),
    },
    "videommmu": {
        0: dict(gold="B", images=4, subset="Perception",
                has=["E. option E of row 0\nPlease ignore the Quiz question in last frame of the video.\n\n"]),
        4: dict(gold="B", images=5, subset="Adaptation",
                has=["<image><image><image><image>\n<image>You should watch and learn the video content. Then apply "
                     "what you learned to answer the following multi-choice question. The image for this question is "
                     "at the end of the video.\nWhat does the lecturer draw in lecture 0?"]),
        5: dict(gold="12.5", images=5, reward_type="numeric", has=["following open-ended question"]),
    },
}
_ROW_KEYS = {"gold", "images", "has", "lacks", "turns"}


def test_every_paper_benchmark_has_hand_computed_rows():
    assert set(EXPECTED_ROWS) == set(PAPER_ABBREVS)


@pytest.mark.parametrize("name", list(EXPECTED_ROWS))
def test_paper_rows_match_hand_computed_expectations(converted, name):
    _, out, _, _ = converted
    rows = _rows(out, name)
    bench = BENCHMARKS[name]
    for row in rows:  # every row carries its benchmark's scoring fields
        info = row["extra_info"]
        assert info["benchmark"] == name and info["scoring"] == bench.scoring, name
        assert (info["metric"] in METRICS) == (bench.scoring == "det"), name
        assert (info["judge"] in JUDGES) == (bench.scoring == "benchjudge"), name
    for index, expected in EXPECTED_ROWS[name].items():
        row, where = rows[index], f"{name} row {index}"
        info, content = row["extra_info"], row["prompt"][-1]["content"]
        if "gold" in expected:
            assert row["reward_model"]["ground_truth"] == expected["gold"], where
        if "images" in expected:
            assert len(row["images"]) == expected["images"], where
        for text in expected.get("has", []):
            assert text in content, (where, text, content)
        for text in expected.get("lacks", []):
            assert text not in content, (where, text)
        if "turns" in expected:
            assert len(row["prompt"]) == expected["turns"] and row["prompt"][1]["role"] == "assistant", where
        for key, value in expected.items():
            if key not in _ROW_KEYS:
                assert info[key] == value, (where, key, info[key])


def test_frame_sampling_protocols():
    assert frame_times(0.0, 3.0, 4, "linspace") == pytest.approx([0.0, 1.0, 2.0, 3.0])  # Video-MME: ends included
    assert frame_times(0.0, 4.0, 4, "segments") == pytest.approx([0.5, 1.5, 2.5, 3.5])  # MVBench: segment middles
    assert BENCHMARKS["mvbench"].frames == 16 and BENCHMARKS["mvbench"].sampling == "segments"
    assert BENCHMARKS["videomme_sub"].frames == 32 and BENCHMARKS["videomme_sub"].sampling == "linspace"


def test_linspace_takes_the_first_and_last_frame_and_subtitles_follow_the_frames(tmp_path):
    build_fixtures(tmp_path, ["videomme_sub"], rows=1)
    sampled = sample_frames(Clip(tmp_path / "videomme_sub/data/vid0.mp4"), 3, "test", "linspace")
    reds = [f.getpixel((3, 3))[0] for f in sampled.images]
    assert reds == pytest.approx([frame_colour(0)[0], frame_colour(5)[0], frame_colour(11)[0]], abs=6)
    assert sampled.times == pytest.approx([0.0, 1.25, 2.75])  # 4 fps, 12 frames: the last starts at 2.75 s
    cues = read_srt(tmp_path / "videomme_sub/subtitle/vid0.srt")
    assert [c[2] for c in cues] == [c[2] for c in sorted(SUBTITLE_CUES)]  # the <font> wrapper removed
    assert subtitles_at(cues, sampled.times) == ["first line", "second line"]
    assert subtitles_at(cues, [0.4]) == ["first line", "a cue between frames"]  # in the file's order
    assert subtitles_at(cues, [3.5]) == []


def test_videommmu_adaptation_image_is_the_release_image_or_the_last_frame(converted):
    _, out, _, _ = converted
    rows = _rows(out, "videommmu")
    with_image, without = rows[4], rows[5]
    assert Image.open(io.BytesIO(with_image["images"][-1]["bytes"])).convert("RGB").getpixel((40, 30)) != \
        Image.open(io.BytesIO(without["images"][-1]["bytes"])).convert("RGB").getpixel((40, 30))
    last = Image.open(io.BytesIO(without["images"][-1]["bytes"])).convert("RGB").getpixel((3, 3))
    assert last[0] == pytest.approx(frame_colour(11)[0], abs=6)  # the video's final frame


def test_mmvu_takes_one_frame_per_second_by_default(tmp_path):
    """MMVU's protocol: 1 frame per whole second (at most 64), evenly from the first to the last frame; the fixture
    video lasts 3 s (12 frames at 4 fps), so 3 frames: 0, 5 and 11."""
    build_fixtures(tmp_path / "src", ["mmvu"], rows=1)
    done = convert_many(["mmvu"], tmp_path / "src", tmp_path / "out", ConvertOptions(MIN_PIXELS, MAX_PIXELS),
                        log=lambda line: None)
    assert done["mmvu"]["options"]["per_second"] == 1.0
    (row,) = _rows(tmp_path / "out", "mmvu")
    reds = [Image.open(io.BytesIO(f["bytes"])).convert("RGB").getpixel((3, 3))[0] for f in row["images"]]
    assert reds == pytest.approx([frame_colour(t)[0] for t in (0, 5, 11)], abs=6)
    assert "shown as 3 frames" in row["prompt"][0]["content"]
