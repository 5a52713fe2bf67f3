"""The ZPPO-77K builder (data_prep.build_zppo77k) on fixtures in both published schemas.

The fixture (built once per module) plants exactly one or two rows for every rule, so each rule's count is
known: Vero-600k as nested parquet files (one file with an int-typed ground truth, one val-split file that must
be skipped, one image given as a relative path), MMFineReason-SFT-586K as a ``datasets.save_to_disk`` folder
with its published source names and the pass-rate column as the authors' card names it. A second fixture
(``_real_layout``) has a derived Vero copy (no top-level id, a shared ``data_source``) and every published
MMFineReason source name with a ``pass_rate`` column, int ids and a null answer.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from data_prep.build_zppo77k import BuildError, BuildOptions, build
from data_prep.build_zppo77k.builder import RULE_NAMES, _hash64
from data_prep.build_zppo77k.cli import main as cli_main
from data_prep.build_zppo77k.synthetic import (
    VERO_NO_ID_SCHEMA,
    VERO_SCHEMA,
    image_cell,
    jpeg,
    mmfinereason_row,
    mmfinereason_schema,
    png,
    vero_row,
    write_parquet,
    write_vero,
)
from data_prep.build_zppo77k.text import FORMAT_RULES, clean_question, infer_reward_type, strip_format_instructions
from data_prep.build_zppo77k.tiers import TierTableError, load_tier_table
from data_prep.vision import MAX_ASPECT_RATIO, MAX_PIXELS, MIN_PIXELS, resized_hw
from recipe.zppo.algo.answer_format import ANSWER_CLOSER

REPO = Path(__file__).resolve().parents[2]
MC_SUFFIX = "\nA. cat\nB. dog\nC. bird\nD. fish\nAnswer with the option's letter from the given choices directly."
TIER1_CAP, TIER2_CAP = 4, 2

# Expected drops of the fixture, per rule (each planted row is named in ``_fixture``).
EXPECTED_DROPS = {
    "excluded_source": 4, "pass_rate_missing": 1, "pass_rate_above_max": 1, "unsupported_reward_type": 1,
    "answer_missing": 2, "answer_not_string": 1, "answer_too_long": 1, "question_empty": 1, "image_missing": 1,
    "image_undecodable": 1, "image_too_small": 1, "image_aspect_ratio": 1, "duplicate_within_source": 2,
    "duplicate_of_vero": 1, "over_cap": 4, "image_decode_failed": 1, "prompt_too_long": 0,
}
# MMFineReason's published source names for two of the paper's sub-datasets (AI2D, Geo3K/Geometry3K).
AI2D, GEO3K = "FineVision-ai2d_merged", "FineVision-geometry3k(mathv360k)"
# Expected output rows per (source, sub-dataset).
EXPECTED_OUT = {("vero", "ai2d_merged"): 4, ("vero", "geo170k"): 3, ("vero", "tallyqa"): 2,
                ("mmfinereason", "MMR1"): 3, ("mmfinereason", GEO3K): 4, ("mmfinereason", AI2D): 0}


def _fixture(root: Path) -> tuple[Path, Path, dict[str, bytes]]:
    """Write the two inputs; returns (vero dir, mmfinereason dir, named image bytes)."""
    img = {f"p{k}": png(640, 480, seed=k) for k in range(12)}
    img.update({f"j{k}": jpeg(640, 480, seed=100 + k) for k in range(6)})
    img["big"] = png(2400, 1800, seed=200)  # 4.3M pixels: downscaled
    img["small"] = jpeg(150, 120, seed=201)  # 18K pixels: upscaled
    img["tiny"] = png(80, 300, seed=202)  # a side below 100
    img["thin"] = png(25000, 100, seed=203)  # aspect ratio 250
    img["truncated"] = png(640, 480, seed=204)[:4000]  # header fine, data cut: fails only in pass 2
    img["relative"] = png(700, 500, seed=205)

    vero = root / "vero"
    (vero / "images").mkdir(parents=True)
    (vero / "images" / "rel.png").write_bytes(img["relative"])
    q = lambda i: f"Which animal is shown in picture {i}?"  # noqa: E731
    ai2d = [vero_row(f"a{i}", "ai2d_merged", q(i) + MC_SUFFIX, "ABCD"[i % 4], image_cell(img[f"p{i}"]),
                     reward_type="multiple_choice") for i in range(1, 7)]
    ai2d.append(vero_row("a7", "ai2d_merged", q(7) + MC_SUFFIX, "x" * 600, image_cell(img["p7"]),
                         reward_type="multiple_choice"))  # answer_too_long
    ai2d.append(vero_row("a8", "ai2d_merged", q(1) + MC_SUFFIX, "B", image_cell(img["p1"]),
                         reward_type="multiple_choice"))  # duplicate_within_source (of a1)
    geo = [
        vero_row("g1", "geo170k", "Find the angle ABC in degrees.", "35", image_cell(img["big"])),
        vero_row("g2", "geo170k", "Find the length of AB. Please reason step by step, and put your final answer "
                 "within \\boxed{}.", "4.5", image_cell(img["small"])),
        vero_row("g3", "geo170k", "Find the area.", "12", image_cell(img["truncated"])),  # image_decode_failed
        vero_row("g4", "geo170k", "Find the perimeter.", "20", image_cell(None, "images/rel.png")),
        vero_row("g5", "geo170k", "Find x.", "3", image_cell(None, None)),  # image_missing
        vero_row("g6", "geo170k", "Find y.", "4", image_cell(b"definitely not an image")),  # image_undecodable
        vero_row("g7", "geo170k", "Find z.", "5", image_cell(img["tiny"])),  # image_too_small
        vero_row("g8", "geo170k", "Find w.", "6", image_cell(img["thin"])),  # image_aspect_ratio
        vero_row("g9", "geo170k", "Find v.", "", image_cell(img["p8"])),  # answer_missing
    ]
    tally = [vero_row(f"t{i}", "tallyqa", f"How many dots are there in panel {i}?", str(i), image_cell(img[f"j{i}"]),
                      reward_type="counting") for i in range(1, 4)]
    tally.append(vero_row("t4", "tallyqa", "Box the dog.", "[1, 2, 3, 4]", image_cell(img["j4"]),
                          reward_type="grounding"))  # unsupported_reward_type
    tally.append(vero_row("t5", "tallyqa", "Answer the question using a single word or phrase.", "3",
                          image_cell(img["j5"]), reward_type="counting"))  # question_empty
    other = [vero_row("r1", "refcocog", "Box the cat.", "[0, 0, 9, 9]", image_cell(img["p9"]), "grounding"),
             vero_row("r2", "refcocog", "Box the bird.", "[0, 0, 5, 5]", image_cell(img["p9"]), "grounding"),
             vero_row("u1", "mystery_set", "What is this?", "a cat", image_cell(img["p9"]))]  # 3 x excluded_source
    write_vero(ai2d, vero / "ai2d_merged" / "train" / "part-0.parquet", row_group_rows=3)
    write_vero(geo + tally, vero / "data" / "deeper" / "train-00000-of-00002.parquet", row_group_rows=4)
    write_vero(other, vero / "data" / "deeper" / "train-00001-of-00002.parquet")
    write_vero([vero_row("val1", "geo170k", "A validation-split row.", "1", image_cell(img["p10"]))],
               vero / "data" / "val-00000-of-00001.parquet")  # other split: never read
    int_gold = VERO_SCHEMA.set(VERO_SCHEMA.get_field_index("reward_model"), pa.field(
        "reward_model", pa.struct([("ground_truth", pa.int64()), ("style", pa.string())])))
    row = vero_row("n1", "geo170k", "Count the sides.", 7, image_cell(img["p11"]))
    row["extra_info"]["answer"] = "7"
    write_parquet([row], int_gold, vero / "odd" / "train.parquet")  # answer_not_string

    card = "qwen3vl_4b_pass_rate"  # this copy names the pass rate as the authors' card does
    mm = [
        # duplicate_of_vero: a2's question without the stripped format instruction, other case and spacing
        mmfinereason_row("ma1", AI2D, "WHICH animal is  shown in picture 2?\nA. cat\nB. dog\nC. bird\nD. fish",
                         "C", image_cell(img["p2"])),
        mmfinereason_row("ma2", AI2D, "Which plant is shown?", "A", image_cell(img["p3"])),  # over_cap (ai2d)
        mmfinereason_row("m1", "MMR1", "Compute the slope.", "0.5", image_cell(img["j1"]), pass_rate=0.0),
        mmfinereason_row("m2", "MMR1", "Compute the sum.", "\\frac{3}{4}", image_cell(img["j2"]), pass_rate=0.25),
        mmfinereason_row("m3", "MMR1", "Compute the root.", "\\sqrt{2}", image_cell(img["j3"]), pass_rate=0.5),
        mmfinereason_row("m4", "MMR1", "Too easy.", "1", image_cell(img["j1"]), pass_rate=0.75),  # above max
        mmfinereason_row("m5", "MMR1", "No rate.", "1", image_cell(img["j1"]), pass_rate=None),  # rate missing
        mmfinereason_row("m6", "MMR1", "Blank answer.", "   ", image_cell(img["j1"])),  # answer_missing
        *[mmfinereason_row(f"m{k}", GEO3K, f"Find side {k}.", str(k), image_cell(img[f"p{k - 3}"]))
          for k in range(7, 11)],
        mmfinereason_row("m11", GEO3K, "Find side 7.", "7", image_cell(img["p4"])),  # within-source dup
        mmfinereason_row("m12", "SomeNewSource", "Unknown source.", "1", image_cell(img["p5"])),  # excluded
    ]
    import datasets

    mmfr = root / "mmfinereason"
    for row in mm:
        row[card] = row.pop("pass_rate")
    datasets.Dataset(pa.Table.from_pylist(mm, schema=mmfinereason_schema(card))).save_to_disk(str(mmfr))
    return vero, mmfr, img


def _opts(fx, out: Path, **kw) -> BuildOptions:
    base = dict(out=out, vero=str(fx["vero"]), mmfinereason=str(fx["mmfr"]), tier1_cap=TIER1_CAP,
                tier2_cap=TIER2_CAP, progress=False)
    base.update(kw)
    return BuildOptions(**base)


def _rows(out: Path) -> list[dict]:
    rows = []
    for shard in sorted(out.glob("train-*.parquet")):
        rows.extend(pq.read_table(shard).to_pylist())
    if (out / "val.parquet").exists():
        rows.extend(pq.read_table(out / "val.parquet").to_pylist())
    return rows


@pytest.fixture(scope="module")
def fx(tmp_path_factory):
    root = tmp_path_factory.mktemp("zppo77k")
    vero, mmfr, img = _fixture(root / "in")
    out = root / "out"
    summary = build(_opts({"vero": vero, "mmfr": mmfr}, out, val_rows=2, shard_rows=5))
    return {"vero": vero, "mmfr": mmfr, "img": img, "out": out, "summary": summary, "root": root}


# ------------------------------------------------------------------------------------------------ rules


def test_every_rule_counts_exactly_the_planted_rows(fx):
    dropped = fx["summary"]["dropped"]
    assert list(dropped) == list(RULE_NAMES)
    assert {rule: dropped[rule]["count"] for rule in RULE_NAMES} == EXPECTED_DROPS
    assert dropped["pass_rate_above_max"]["sample_ids"] == ["mmfr/m4"]
    assert dropped["answer_not_string"]["sample_ids"] == ["vero/n1"]
    assert sorted(dropped["duplicate_within_source"]["sample_ids"]) == ["mmfr/m11", "vero/a8"]
    assert dropped["image_decode_failed"]["sample_ids"] == ["vero/g3"]
    # the val-split file is not read; every other input row is accounted for exactly once
    rows_in = sum(fx["summary"]["rows_in"].values())
    assert rows_in == 8 + 9 + 5 + 3 + 1 + 14
    assert rows_in == sum(EXPECTED_DROPS.values()) + sum(EXPECTED_OUT.values())


def test_output_rows_per_sub_dataset_and_caps(fx):
    rows = _rows(fx["out"])
    got = {}
    for row in rows:
        key = (row["extra_info"]["source"], row["extra_info"]["sub_dataset"])
        got[key] = got.get(key, 0) + 1
    assert {k: v for k, v in EXPECTED_OUT.items() if v} == got
    summary = fx["summary"]
    assert summary["rows_out"] == {"train": 14, "val": 2, "by_source": {"vero": 9, "mmfinereason": 7}}
    groups = summary["groups"]
    assert groups["ai2d"]["members"] == [f"mmfinereason/{AI2D}", "vero/ai2d_merged"]
    assert groups["ai2d"]["out"] == TIER1_CAP and groups["vero/tallyqa"]["out"] == TIER2_CAP
    for group in groups.values():
        assert group["out"] <= group["cap"] == {"tier1": TIER1_CAP, "tier2": TIER2_CAP}[group["tier"]]
    assert summary["unknown_sources"] == ["mmfinereason/SomeNewSource", "vero/mystery_set"]
    assert summary["tier_table"]["version"] == load_tier_table().version


def test_vero_wins_duplicates_and_shared_caps(fx):
    rows = _rows(fx["out"])
    ids = {row["extra_info"]["question_id"] for row in rows}
    assert "mmfr/ma1" not in ids and "mmfr/ma2" not in ids  # the duplicate, and the shared cap filled by Vero
    assert {i for i in ids if i.startswith("vero/a")} <= {f"vero/a{i}" for i in range(1, 7)}
    assert fx["summary"]["dropped"]["duplicate_of_vero"]["sample_ids"] == ["mmfr/ma1"]


def test_unknown_source_tier_option_admits_unlisted_sub_datasets(fx, tmp_path):
    summary = build(_opts(fx, tmp_path / "out", unknown_source_tier="tier2"))
    assert summary["dropped"]["excluded_source"]["count"] == EXPECTED_DROPS["excluded_source"] - 2
    by_name = {(s["source"], s["sub_dataset"]): s for s in summary["sub_datasets"]}
    assert by_name[("vero", "mystery_set")]["out_train"] == 1
    assert by_name[("mmfinereason", "SomeNewSource")]["out_train"] == 1


# ------------------------------------------------------------------------------------------------ row layout


def test_prompts_end_with_the_closer_once_and_carry_the_verifier_fields(fx):
    rows = _rows(fx["out"])
    ids = [row["extra_info"]["question_id"] for row in rows]
    assert len(ids) == len(set(ids))
    for row in rows:
        (message,) = row["prompt"]
        content = message["content"]
        assert message["role"] == "user"
        assert content.endswith("\n\n" + ANSWER_CLOSER) and content.count(ANSWER_CLOSER) == 1
        assert content.count("<image>") == len(row["images"]) == 1 and content.startswith("<image>")
        assert "option's letter" not in content and "\\boxed{}." not in content.replace(ANSWER_CLOSER, "")
        extra = row["extra_info"]
        assert content == extra["question"] + "\n\n" + ANSWER_CLOSER
        assert row["reward_model"] == {"style": "rule", "ground_truth": extra["answer"]}
        assert extra["question_id"].startswith({"vero": "vero/", "mmfinereason": "mmfr/"}[extra["source"]])
    by_id = {row["extra_info"]["question_id"]: row["extra_info"] for row in rows}
    assert by_id["mmfr/m1"]["reward_type"] == "numeric" and by_id["mmfr/m1"]["pass_rate"] == 0.0
    assert by_id["mmfr/m2"]["reward_type"] == "math"
    assert by_id["vero/t1"]["reward_type"] == "counting"
    assert by_id["vero/g2"]["question"] == "<image>Find the length of AB."


def test_images_are_resized_into_the_pixel_range_and_kept_when_in_range(fx):
    import io

    from PIL import Image

    rows = {row["extra_info"]["question_id"]: row for row in _rows(fx["out"])}
    for row in rows.values():
        with Image.open(io.BytesIO(row["images"][0]["bytes"])) as im:
            im.load()
            assert MIN_PIXELS <= im.size[0] * im.size[1] <= MAX_PIXELS
    big = Image.open(io.BytesIO(rows["vero/g1"]["images"][0]["bytes"]))
    assert big.format == "PNG" and abs(big.size[0] / big.size[1] - 2400 / 1800) < 0.01
    small = Image.open(io.BytesIO(rows["vero/g2"]["images"][0]["bytes"]))
    assert small.format == "JPEG" and abs(small.size[0] / small.size[1] - 150 / 120) < 0.01
    assert rows["vero/g4"]["images"][0]["bytes"] == fx["img"]["relative"]  # read from the relative path, kept
    assert rows["mmfr/m1"]["images"][0]["bytes"] == fx["img"]["j1"]  # in range: original bytes


def test_two_runs_give_identical_bytes_whatever_the_number_of_workers(fx, tmp_path):
    out = tmp_path / "again"
    summary = build(_opts(fx, out, val_rows=2, shard_rows=5, workers=2))
    names = sorted(p.name for p in fx["out"].iterdir())
    assert names == sorted(p.name for p in out.iterdir())
    assert [n for n in names if n.startswith("train-")] == [f"train-0000{k}-of-00003.parquet" for k in range(3)]
    for name in names:
        if name.endswith(".parquet"):
            assert (fx["out"] / name).read_bytes() == (out / name).read_bytes(), name
    strip = lambda s: {k: v for k, v in s.items() if k not in ("timing_s", "image_cpu_s", "options")}  # noqa: E731
    assert strip(summary) == strip(json.loads((fx["out"] / "summary.json").read_text()))


def test_shards_are_bounded_and_val_rows_are_disjoint(fx):
    shards = sorted(fx["out"].glob("train-*.parquet"))
    sizes = [pq.read_metadata(s).num_rows for s in shards]
    assert sizes == [5, 5, 4]
    train_ids = {r["extra_info"]["question_id"] for s in shards for r in pq.read_table(s).to_pylist()}
    val = pq.read_table(fx["out"] / "val.parquet").to_pylist()
    assert len(val) == 2 and {r["extra_info"]["split"] for r in val} == {"val"}
    assert not train_ids & {r["extra_info"]["question_id"] for r in val}
    indices = [r["extra_info"]["index"] for s in shards for r in pq.read_table(s).to_pylist()]
    assert indices == list(range(len(indices)))
    assert not (fx["out"] / ".staging").exists()


def test_a_failed_decode_is_replaced_by_the_next_candidate(fx, tmp_path):
    """tallyqa plus a corrupt JPEG that the seeded draw picks first: the cap is still met, without it."""
    vero = tmp_path / "vero"
    good = [vero_row(f"k{i}", "tallyqa", f"How many cars in scene {i}?", str(i), image_cell(fx["img"][f"j{i}"]),
                     reward_type="counting") for i in range(3)]
    bad = vero_row("kbad", "tallyqa", "How many cars in the broken scene?", "2",
                   image_cell(jpeg(640, 480, seed=7)[:3000]), reward_type="counting")
    write_vero(good + [bad], vero / "train.parquet")
    seed = next(s for s in range(1000) if min(_hash64("cap", str(s), q) for q in
                                              ["vero/k0", "vero/k1", "vero/k2", "vero/kbad"]) ==
                _hash64("cap", str(s), "vero/kbad"))
    summary = build(BuildOptions(out=tmp_path / "out", vero=str(vero), tier2_cap=2, seed=seed, progress=False))
    ids = {r["extra_info"]["question_id"] for r in _rows(tmp_path / "out")}
    assert len(ids) == 2 and "vero/kbad" not in ids
    assert summary["dropped"]["image_decode_failed"]["sample_ids"] == ["vero/kbad"]
    assert summary["dropped"]["over_cap"]["count"] == 1


def test_shared_question_ids_are_made_unique(fx, tmp_path):
    vero = tmp_path / "vero"
    write_vero([vero_row("7", "geo170k", "Find a.", "1", image_cell(fx["img"]["p1"])),
                vero_row("7", "geoqa_plus", "Find b.", "2", image_cell(fx["img"]["p2"])),
                vero_row("8", "geo170k", "Find c.", "3", image_cell(fx["img"]["p3"]))], vero / "train.parquet")
    summary = build(BuildOptions(out=tmp_path / "out", vero=str(vero), progress=False))
    ids = sorted(r["extra_info"]["question_id"] for r in _rows(tmp_path / "out"))
    assert len(set(ids)) == 3 and "vero/8" in ids
    assert sum(i.startswith("vero/7~") for i in ids) == 2
    assert summary["question_id_collisions"] == 2


# ------------------------------------------------------------------------------------------------ bad input


def test_missing_column_is_a_clear_error_naming_file_and_column(fx, tmp_path, capsys):
    bad = tmp_path / "bad"
    schema = pa.schema([f for f in VERO_SCHEMA if f.name != "data_source"])
    row = vero_row("x", "geo170k", "Q?", "1", image_cell(fx["img"]["p1"]))
    del row["data_source"]
    write_parquet([row], schema, bad / "train.parquet")
    with pytest.raises(BuildError, match=r"bad/train\.parquet: missing column 'data_source'"):
        build(BuildOptions(out=tmp_path / "o1", vero=str(bad), progress=False))
    nested = tmp_path / "nested"
    schema = VERO_SCHEMA.set(VERO_SCHEMA.get_field_index("reward_model"),
                             pa.field("reward_model", pa.struct([("style", pa.string())])))
    row = vero_row("x", "geo170k", "Q?", "1", image_cell(fx["img"]["p1"]))
    row["reward_model"] = {"style": "rule"}
    write_parquet([row], schema, nested / "train.parquet")
    code = cli_main(["--vero", str(nested), "--mmfinereason", "none", "--out", str(tmp_path / "o2"), "--no-progress",
                     "--processor", "none"])
    assert code == 2 and "missing column 'reward_model.ground_truth'" in capsys.readouterr().err
    assert not (tmp_path / "o2" / "summary.json").exists()


def test_existing_output_needs_overwrite_and_leaves_no_stale_shards(fx, tmp_path):
    out = tmp_path / "out"
    build(_opts(fx, out, shard_rows=3))
    assert len(list(out.glob("train-*.parquet"))) == 6
    with pytest.raises(BuildError, match="--overwrite"):
        build(_opts(fx, out))
    build(_opts(fx, out, overwrite=True))
    assert sorted(p.name for p in out.iterdir()) == ["summary.json", "train-00000-of-00001.parquet"]


# ------------------------------------------------------------------------------------------------ the trainer


def test_the_trainer_dataset_reads_the_shards(fx, tiny_assets, tmp_path, monkeypatch):
    import datasets
    from omegaconf import OmegaConf
    from verl.utils import hf_processor, hf_tokenizer

    from recipe.zppo.trainer.dataset import ZPPODataset

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "hf"))
    proc = hf_processor(str(tiny_assets["vl-model"]))
    tok = hf_tokenizer(str(tiny_assets["vl-model"]))
    config = OmegaConf.create({"prompt_key": "prompt", "image_key": "images", "max_prompt_length": 4096,
                               "filter_overlong_prompts": False, "cache_dir": str(tmp_path / "verl")})
    shards = [str(p) for p in sorted(fx["out"].glob("train-*.parquet"))]
    ds = ZPPODataset(shards, tok, config, processor=proc)
    assert len(ds) == 14
    expected = [r["extra_info"]["question_id"] for s in shards for r in pq.read_table(s).to_pylist()]
    assert ds.question_ids == expected
    item = ds[0]
    assert item["zppo_question_id"] == expected[0]
    (message,) = item["raw_prompt"]
    kinds = [part["type"] for part in message["content"]]
    assert kinds == ["image", "text"] and message["content"][1]["text"].endswith(ANSWER_CLOSER)


# ------------------------------------------------------------------------------------------------ pieces


@pytest.mark.parametrize("rule", FORMAT_RULES, ids=lambda r: r.name)
def test_each_format_rule_strips_its_instruction_and_keeps_the_question(rule):
    question = "In the figure, what is the value of x?\nA. 1\nB. 2"
    cleaned, applied = strip_format_instructions(f"{question} {rule.example}")
    assert rule.name in applied
    if rule.name == "hint_answer_type":
        assert cleaned == question + " The answer is an integer."
    else:
        assert cleaned == question


def test_format_stripping_examples():
    assert clean_question("<image>\nWhat is 2+3? Let's think step by step.") == ("What is 2+3?",
                                                                                 ["think_step_by_step"])
    text = ("Hint: Please answer the question requiring a floating-point number with two decimal places and "
            "provide the final value, e.g., 1.23, 1.34, 1.45, at the end.\nQuestion: How long is AB?")
    assert clean_question(text)[0] == ("The answer is a floating-point number with two decimal places.\n"
                                       "Question: How long is AB?")
    text = ("Hint: Please answer the question requiring a Python list as an answer and provide the final list, "
            "e.g., [1, 2, 3], [1.2, 1.3, 1.4], at the end.\nQuestion: List the bar heights.")
    assert clean_question(text)[0] == "The answer is a Python list.\nQuestion: List the bar heights."
    assert clean_question("Output the thinking process in <think> </think> and final answer in <answer> </answer> "
                          "tags.\nWhat is shown?")[0] == "What is shown?"
    # ordinary wording is left alone
    assert clean_question("Think about the boxed region: how many steps are shown?")[0] == \
        "Think about the boxed region: how many steps are shown?"
    assert clean_question("Describe it. " + ANSWER_CLOSER)[0] == "Describe it."


@pytest.mark.parametrize("answer,question,expected", [
    ("B", "Pick one.\nA. 3\nB. 4\nC. 5", "multiple_choice"),
    ("(C)", "(A) red (B) blue (C) green", "multiple_choice"),
    ("B", "Which point is the centre?", "string_match"),
    ("42", "", "numeric"), ("-3.5", "", "numeric"), ("1,234", "", "numeric"), ("12%", "", "numeric"),
    ("3/4", "", "numeric"),
    ("\\frac{3}{4}", "", "math"), ("2\\sqrt{3}", "", "math"), ("x^2+1", "", "math"), ("$\\pi$", "", "math"),
    ("a cat", "", "string_match"), ("Yes", "", "string_match"),
])
def test_reward_type_is_inferred_from_the_answer_and_question(answer, question, expected):
    assert infer_reward_type(answer, question) == expected


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 20000), st.integers(1, 20000))
def test_resized_hw_stays_in_range_and_keeps_the_aspect_ratio(h, w):
    nh, nw = resized_hw(h, w)
    if max(h, w) / min(h, w) <= MAX_ASPECT_RATIO:
        assert MIN_PIXELS <= nh * nw <= MAX_PIXELS
        assert abs(nh / nw - h / w) <= (h / w) * (2 / min(nh, nw)) + 1e-9  # each side rounded by < 1 pixel
    if MIN_PIXELS <= h * w <= MAX_PIXELS:
        assert (nh, nw) == (h, w)


def test_tier_table_maps_sub_datasets_and_rejects_malformed_tables(tmp_path):
    table = load_tier_table()
    assert table.lookup("vero", "stem-ai2d_merged").canonical == "ai2d"
    assert table.lookup("mmfinereason", "WeMath2-Pro").canonical == table.lookup("vero", "wemath20_standard").canonical
    assert table.lookup("vero", "PixMo-Cap").tier == "excluded" and table.lookup("vero", "pixmo").tier == "tier2"
    assert not table.lookup("vero", "brand_new").known
    assert all(e.why for entries in table.entries.values() for e in entries)
    cases = {
        "vero: []\n": "'version' key is required",
        "version: 1\nvero:\n  - {name: a, tier: tier3, why: x}\n": "tier must be one of",
        "version: 1\nvero:\n  - {name: a, tier: tier1}\n": "'why'",
        "version: 1\nvero:\n  - {name: a, tier: tier1, canonical: g, why: x}\n"
        "mmfinereason:\n  - {name: b, tier: tier2, canonical: g, why: y}\n": "canonical group 'g'",
    }
    for text, message in cases.items():
        path = tmp_path / "t.yaml"
        path.write_text(text)
        with pytest.raises(TierTableError, match=message):
            load_tier_table(path)


def test_builder_benchmark_reduced_run_reports_rows_and_memory(tmp_path):
    out_json = tmp_path / "bench.json"
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "bench_build_zppo77k.py"), "--smoke",
                           "--workdir", str(tmp_path / "work"), "--json", str(out_json)],
                          cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out_json.read_text())
    assert result["smoke"] and result["rows_in"] > 0 and 0 < result["rows_out"] <= result["rows_in"]
    assert result["peak_rss_mib"] > 0 and "input rows/s" in proc.stdout


# ------------------------------------------------------------------------------------------------ real layouts


# MMFineReason's published source names (issue #21) -> (tier, canonical group) they must land in.
MMFR_REAL_SOURCES = {
    "FineVision-ai2d_merged": ("tier1", "ai2d"), "FineVision-geo170k(qa)": ("tier1", "geo170k"),
    "FineVision-geometry3k(mathv360k)": ("tier1", "mmfinereason/geometry3k"),
    "FineVision-raven": ("tier2", "raven"), "FineVision-scienceqa": ("tier1", "mmfinereason/scienceqa"),
    "FineVision-tqa": ("tier1", "tqa"), "FineVision-visualwebinstruct(filtered)": ("tier1", "visualwebinstruct"),
    "mmopenr1-8k": ("tier1", "mmfinereason/mm_openr1"), "Euclid30K": ("tier1", "mmfinereason/euclid"),
    "WeMath2-Pro": ("tier1", "wemath"), "WeMath2-SFT": ("tier1", "wemath"), "WeMath2-Standard": ("tier1", "wemath"),
    "Zebra-CoT-Physics": ("tier2", "mmfinereason/zebra_cot"), "BMMR": ("tier1", "mmfinereason/bmmr"),
    "MMR1": ("tier1", "mmfinereason/mmr1"), "ViRL39K": ("tier1", "mmfinereason/virl39k"),
    "PuzzleQA": ("tier2", "mmfinereason/puzzleqa"), "VisualSphinx": ("tier2", "mmfinereason/visualsphinx"),
    "LLaVA-CoT": ("tier2", "mmfinereason/llava_cot"), "MMK12": ("excluded", None),
    "GameQA-140K": ("excluded", None), "WaltonColdStart": ("excluded", None),
}
# Ids of a Vero copy whose counting / search sets share one data_source -> the sub-dataset they are counted under.
VERO_SHARED_IDS = {"tallyqa_17": "tallyqa", "pixmo_counting_3": "pixmo", "pixelreasoner_9": "pixelreasoner",
                   "multihop_2": "multihop_qa", "visual_probe_easy_4": "visual_probe",
                   "refcocog_grounding_1": "refcocog", "zzz_5": "counting_grounding_search"}


def test_every_published_mmfinereason_source_name_is_in_the_papers_tier():
    table = load_tier_table()
    for name, (tier, group) in MMFR_REAL_SOURCES.items():
        entry = table.lookup("mmfinereason", name)
        assert entry.known and entry.tier == tier, name
        if group is not None:
            assert entry.canonical == group, name
    # the paper's 17 MMFineReason sub-datasets are all reached by a published name
    reached = {table.lookup("mmfinereason", n).name for n, (t, _) in MMFR_REAL_SOURCES.items() if t != "excluded"}
    assert len(reached) == 17


# App. B.1's Vero sub-datasets (its short names) -> a published data_source spelling, per tier.
PAPER_VERO_TIER1 = {"ai2d": "stem-ai2d_merged", "geo170k": "geo170k", "geomverse": "geomverse",
                    "geoqa_plus": "geoqa_plus", "mmk12": "mmk12", "cosyn_math": "CoSyn_400k_math",
                    "cosyn_chart": "CoSyn_400k_chart", "cosyn_diagram": "CoSyn_400k_diagram",
                    "cosyn_table": "CoSyn_400k_table", "wemath": "wemath20_standard", "tqa": "tqa",
                    "visualwebinstruct": "visualwebinstruct", "chartqa": "chartqa_difficulty",
                    "arxivqa": "arxivqa_formatted"}
PAPER_VERO_TIER2 = {"pathvqa": "pathvqa", "vqarad": "vqarad", "raven": "raven", "evochart": "evochart",
                    "infographic_vqa": "infographic_vqa", "aokvqa": "aokvqa", "gqa": "gqa", "iconqa": "iconqa",
                    "vqav2": "vqav2", "visual7w": "visual7w", "tallyqa": "tallyqa", "pixelreasoner": "pixelreasoner",
                    "multihop": "multihop_qa", "pixmo": "pixmo", "visual_probe": "visual_probe"}


def test_the_tier_table_gives_tiers_to_exactly_the_papers_named_sub_datasets():
    table = load_tier_table()
    reached = {}
    for tier, names in (("tier1", PAPER_VERO_TIER1), ("tier2", PAPER_VERO_TIER2)):
        for short, spelling in names.items():
            entry = table.lookup("vero", spelling)
            assert entry.known and entry.tier == tier, short
            reached[("vero", entry.name)] = tier
    for name, (tier, _) in MMFR_REAL_SOURCES.items():
        if tier != "excluded":
            reached[("mmfinereason", table.lookup("mmfinereason", name).name)] = tier
    in_table = {(e.source, e.name): e.tier for entries in table.entries.values() for e in entries
                if e.tier != "excluded"}
    assert in_table == reached  # nothing else has a tier: 14 + 15 Vero, 12 + 5 MMFineReason
    assert sorted(Counter(in_table.values()).items()) == [("tier1", 26), ("tier2", 20)]
    for unnamed in ("mavis_math_metagen", "mavis_math_rule_geo", "CoSyn_400k_chemical", "ecd_vqa", "reachqa"):
        assert table.lookup("vero", unnamed).tier == "excluded"  # not named in B.1


def test_rows_of_a_shared_vero_data_source_are_routed_by_id_prefix_like_veros_loader():
    table = load_tier_table()

    def route(name: str, row_id: str) -> tuple[str, bool]:
        used, _, routed = table.resolve("vero", name, row_id)
        return used, routed

    assert route("counting_grounding_search", "tallyqa_17") == ("tallyqa", True)
    assert route("counting_grounding_search", "visual_probe_easy_4") == ("visual_probe", True)
    assert route("counting_grounding_search", "visual_12") == ("visual_probe", True)  # Vero: "visual" is search
    assert route("counting_grounding_search", "web_3") == ("osatlas", True)
    assert route("counting_grounding_search", "zzz_5") == ("counting_grounding_search", False)
    assert route("tallyqa", "pixmo_counting_3") == ("pixmo", True)  # a shared set spelled like a member
    assert route("tallyqa", "tallyqa_1") == ("tallyqa", False) and route("tallyqa", "t1") == ("tallyqa", False)
    assert route("geo170k", "pixmo_1") == ("geo170k", False)  # sets without id_prefix keep their rows
    assert route("visual_jigsaw_2d", "visual_1") == ("visual_jigsaw_2d", False)


def _real_layout(root: Path, img: dict[str, bytes]) -> tuple[Path, Path]:
    """Vero as a derived copy (no top-level id; ids in extra_info; one shared data_source) and MMFineReason
    with its published source names, a ``pass_rate`` column, int ids and a null answer."""
    vero = root / "vero"
    rows = [vero_row(None, "stem-ai2d_merged", f"Which part is labelled {k}?" + MC_SUFFIX, "A",
                     image_cell(img[f"p{k}"]), reward_type="multiple_choice") for k in range(3)]
    rows[0]["extra_info"]["id"] = "ai2d_0"
    rows[1]["extra_info"]["id"] = "ai2d_1"
    rows[2]["extra_info"]["id"] = "ai2d_2"
    for k, rid in enumerate(VERO_SHARED_IDS):
        row = vero_row(None, "counting_grounding_search", f"How many objects in view {k}?", str(k + 1),
                       image_cell(img[f"j{k % 6}"]), reward_type="counting")
        row["extra_info"]["id"] = rid
        rows.append(row)
    # a shared data_source spelled like one of its members: the id decides
    row = vero_row(None, "tallyqa", "How many objects in the last view?", "9", image_cell(img["p11"]),
                   reward_type="counting")
    row["extra_info"]["id"] = "pixmo_counting_9"
    rows.append(row)
    for row in rows:
        del row["id"]
    write_parquet(rows, VERO_NO_ID_SCHEMA, vero / "data" / "train-00000-of-00001.parquet")
    mmfr = root / "mmfr"
    schema = mmfinereason_schema("pass_rate", pa.int64())
    mm = []
    for k, name in enumerate(MMFR_REAL_SOURCES):
        mm.append(mmfinereason_row(1000 + k, name, f"Problem {k}: find the value of x in the figure.", str(k),
                                   image_cell(img[f"p{k % 12}"]), pass_rate=[0.0, 0.25, 0.5][k % 3]))
    mm.append(mmfinereason_row(2000, "MMR1", "Too easy.", "1", image_cell(img["p1"]), pass_rate=0.75))
    mm.append(mmfinereason_row(2001, "MMR1", "No answer.", None, image_cell(img["p2"]), pass_rate=0.0))
    write_parquet(mm, schema, mmfr / "data" / "train-00000-of-00001.parquet")
    return vero, mmfr


def test_real_layouts_keep_rows_per_source_and_tier(fx, tmp_path):
    vero, mmfr = _real_layout(tmp_path / "in", fx["img"])
    summary = build(BuildOptions(out=tmp_path / "out", vero=str(vero), mmfinereason=str(mmfr), progress=False))
    rows = _rows(tmp_path / "out")
    out = {}
    for row in rows:
        extra = row["extra_info"]
        out[(extra["source"], extra["sub_dataset"])] = out.get((extra["source"], extra["sub_dataset"]), 0) + 1
    kept_mmfr = {n for n, (t, _) in MMFR_REAL_SOURCES.items() if t != "excluded"}
    assert {k: v for k, v in out.items() if k[0] == "mmfinereason"} == {("mmfinereason", n): 1 for n in kept_mmfr}
    assert {k: v for k, v in out.items() if k[0] == "vero"} == {
        ("vero", "stem-ai2d_merged"): 3, ("vero", "tallyqa"): 1, ("vero", "pixmo"): 2, ("vero", "pixelreasoner"): 1,
        ("vero", "multihop_qa"): 1, ("vero", "visual_probe"): 1}
    tiers = {(r["extra_info"]["source"], r["extra_info"]["sub_dataset"]): r["extra_info"]["tier"] for r in rows}
    assert tiers[("vero", "tallyqa")] == "tier2" and tiers[("mmfinereason", "FineVision-tqa")] == "tier1"
    ids = {r["extra_info"]["question_id"] for r in rows}
    assert {"vero/ai2d_0", "vero/tallyqa_17", "mmfr/1000"} <= ids
    dropped = summary["dropped"]
    assert dropped["pass_rate_above_max"]["sample_ids"] == ["mmfr/2000"]
    assert dropped["answer_missing"]["sample_ids"] == ["mmfr/2001"]
    assert dropped["excluded_source"]["count"] == 3 + 2  # MMK12, GameQA, Walton; refcocog; the unroutable id
    assert summary["routed_by_id"] == {"vero/counting_grounding_search": {
        "multihop_qa": 1, "pixelreasoner": 1, "pixmo": 1, "refcocog": 1, "tallyqa": 1, "visual_probe": 1},
        "vero/tallyqa": {"pixmo": 1}}
    kept = {(s["source"], s["sub_dataset"]): (s["tier"], s["out_train"] + s["out_val"])
            for s in summary["sub_datasets"]}
    assert kept[("vero", "pixmo")] == ("tier2", 2) and kept[("mmfinereason", "MMK12")] == ("excluded", 0)
    assert summary["unknown_source_rows"] == {"vero/counting_grounding_search": 1}


def test_cli_defaults_name_the_papers_hub_ids_and_student_processor():
    from data_prep.build_zppo77k.cli import STUDENT_PROCESSOR, options_from, parser

    args = parser().parse_args(["--out", "o"])
    assert args.processor == STUDENT_PROCESSOR == "Qwen/Qwen3.5-0.8B" and args.max_prompt_tokens == 4096
    opts = options_from(args)
    assert opts.vero == "zlab-princeton/Vero-600k"
    assert opts.mmfinereason == "OpenDataArena/MMFineReason-SFT-586K-Qwen3-VL-235B-Thinking"
    assert options_from(parser().parse_args(["--out", "o", "--processor", "none"])).processor is None


def test_unknown_sources_are_printed_and_strict_fails_before_writing(fx, tmp_path, capsys):
    code = cli_main(["--vero", str(fx["vero"]), "--mmfinereason", str(fx["mmfr"]), "--out", str(tmp_path / "o"),
                     "--no-progress", "--processor", "none"])
    printed = capsys.readouterr().out
    assert code == 0 and "UNKNOWN SOURCES: 2 sub-dataset(s)" in printed
    assert any(line.split() == ["vero/mystery_set", "1", "rows"] for line in printed.splitlines())
    code = cli_main(["--vero", str(fx["vero"]), "--mmfinereason", str(fx["mmfr"]), "--out", str(tmp_path / "s"),
                     "--no-progress", "--strict", "--processor", "none"])
    err = capsys.readouterr().err
    assert code == 2 and "--strict" in err and "mmfinereason/SomeNewSource (1 rows)" in err
    assert not list((tmp_path / "s").glob("*.parquet")) and not (tmp_path / "s" / "summary.json").exists()


def test_prompts_are_counted_with_the_students_processor_and_held_to_the_budget(fx, tiny_assets, tmp_path):
    from PIL import Image
    from transformers import AutoProcessor

    vero = tmp_path / "vero"
    long_question = "Read every label in the figure carefully. " * 40 + "What is x?"
    rows = [vero_row("short1", "geo170k", "Find x.", "3", image_cell(fx["img"]["p1"])),
            vero_row("short2", "geo170k", "Find y.\nA. 1\nB. 2", "A", image_cell(fx["img"]["big"]),
                     reward_type="multiple_choice"),
            vero_row("long", "geo170k", long_question, "4", image_cell(fx["img"]["p2"]))]
    write_vero(rows, vero / "train.parquet")
    proc_dir = tiny_assets["vl-model"]
    summary = build(BuildOptions(out=tmp_path / "out", vero=str(vero), progress=False, processor=str(proc_dir),
                                 max_prompt_tokens=150))
    assert summary["dropped"]["prompt_too_long"]["sample_ids"] == ["vero/long"]
    assert summary["prompt_tokens"]["checked"] and summary["prompt_tokens"]["written_max"] <= 150
    processor = AutoProcessor.from_pretrained(str(proc_dir))
    written = _rows(tmp_path / "out")
    assert len(written) == 2
    for row in written:  # the count is what the processor gives for the stored image and the full prompt
        import io

        image = Image.open(io.BytesIO(row["images"][0]["bytes"])).convert("RGB")
        text = row["prompt"][0]["content"].removeprefix("<image>")
        messages = [{"role": "user", "content": [{"type": "image", "image": image}, {"type": "text", "text": text}]}]
        raw = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        expected = len(processor(text=[raw], images=[image])["input_ids"][0])
        assert row["extra_info"]["prompt_tokens"] == expected
