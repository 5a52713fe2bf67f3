"""The report on fake runs: the table's numbers equal those recomputed from the per-answer outputs, family
averages are over the benchmarks every column has, gaps are marked, and the plots are real PNGs."""

from __future__ import annotations

import json
import random
import re

import pytest
from PIL import Image

from data_prep.benchmarks import BENCHMARKS
from recipe.zppo.eval import family_averages, pass_at_k, score_benchmarks
from recipe.zppo.report import main as report_main

BENCHES = ["math500", "gpqa_diamond", "mathvista", "mmstar", "videomme"]


def _answers(seed: int, benches: list[str], n: int) -> list[dict]:
    """Per-answer rows as verl dumps them (with the eval reward's data_source and question_id)."""
    rng = random.Random(seed)
    rows = []
    for bench in benches:
        for q in range(rng.randint(3, 6)):
            for s in range(n):
                acc = float(rng.random() < 0.3 + 0.1 * seed)
                rows.append({"data_source": bench, "question_id": f"{bench}-{q}", "uid": f"u{bench}{q}_0_{s}",
                             "acc": acc, "score": acc, "route": "parser" if rng.random() < 0.9 else "unparseable"})
    return rows


def _write_eval(folder, name, rows, requested):
    """What python -m recipe.zppo.eval leaves: generations + results.json (built by its own scoring functions)."""
    (folder / "generations").mkdir(parents=True)
    (folder / "generations" / "0.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    scores = score_benchmarks(rows)
    entries = {}
    for bench in requested:
        entry = {"family": BENCHMARKS[bench].family, "title": BENCHMARKS[bench].title}
        entry.update({**scores[bench], "status": "ok"} if bench in scores else {"status": "missing"})
        entries[bench] = entry
    results = {"name": name, "model": f"/models/{name}", "date": "2026-01-01T00:00:00", "metric": "acc",
               "benchmarks": entries, "families": family_averages(entries)}
    (folder / "results.json").write_text(json.dumps(results))


def _write_metrics(run_dir, launches):
    (run_dir / "metrics").mkdir(parents=True)
    for i, steps in enumerate(launches):
        lines = []
        for step in steps:
            data = {"training/global_step": step, "critic/score/mean": 0.1 * step, "zppo/hard_frac": 1 - 0.1 * step,
                    "zppo/zero_adv_group_frac": 0.5, "zppo/bcq_acc": 0.2, "zppo/ncq_acc": float("nan"),
                    "zppo/buffer_size": 3 * step, "zppo/admitted": 3, "zppo/graduated": 1, "zppo/evicted": 0,
                    "zppo/gen_tokens_cum": 100 * step * (i + 1)}
            lines.append(json.dumps({"step": step, "data": data}))
        lines.append(json.dumps({"step": 0, "data": {"val-core/math500/acc/mean@1": 0.5}}))  # validation record
        (run_dir / "metrics" / f"2026010{i}-000000.jsonl").write_text("\n".join(lines) + "\n")


def _recompute(rows) -> dict[str, float]:
    """Accuracy per benchmark straight from the answers: mean over questions of the share of correct answers."""
    per_question: dict[tuple, list[float]] = {}
    for r in rows:
        per_question.setdefault((r["data_source"], r["question_id"]), []).append(r["acc"])
    per_bench: dict[str, list[float]] = {}
    for (bench, _), accs in per_question.items():
        per_bench.setdefault(bench, []).append(sum(accs) / len(accs))
    return {b: 100 * sum(v) / len(v) for b, v in per_bench.items()}


def _table(markdown: str) -> dict[str, list[str]]:
    rows = {}
    for line in markdown.splitlines():
        if line.startswith("| ") and not line.startswith("| Benchmark"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            rows[cells[0].strip("*")] = cells[1:]
    return rows


def _value(cell: str) -> float | None:
    match = re.match(r"\**(-?\d+\.\d)", cell)
    return float(match.group(1)) if match else None


@pytest.fixture
def runs(tmp_path):
    base_rows, zppo_rows, grpo_rows = _answers(0, BENCHES, 1), _answers(2, BENCHES, 4), _answers(1, BENCHES[:-1], 1)
    _write_eval(tmp_path / "base", "base", base_rows, BENCHES)
    zppo_dir = tmp_path / "zppo_run"
    _write_eval(zppo_dir / "eval_step10", "zppo", zppo_rows, BENCHES)  # a training run with its eval inside
    _write_metrics(zppo_dir, [[1, 2, 3], [3, 4]])  # a resumed run: the second launch redoes step 3
    _write_eval(tmp_path / "grpo_eval", "grpo", grpo_rows, BENCHES)  # no metrics, video benchmark missing
    return tmp_path, {"base": base_rows, "zppo": zppo_rows, "grpo": grpo_rows}


def test_table_numbers_equal_those_recomputed_from_the_answers(runs, capsys):
    root, rows = runs
    out = root / "report"
    assert report_main([str(root / "zppo_run"), str(root / "grpo_eval"), "--baseline", str(root / "base"),
                        "--out", str(out)]) == 0
    text = (out / "report.md").read_text()
    table = _table(text)
    expected = {name: _recompute(r) for name, r in rows.items()}
    for bench in BENCHES:
        cells = table[BENCHMARKS[bench].title]
        base, zppo, grpo = (_value(c) for c in cells)
        assert base == pytest.approx(expected["base"][bench], abs=0.05 + 1e-9)
        assert zppo == pytest.approx(expected["zppo"][bench], abs=0.05 + 1e-9)
        assert f"({expected['zppo'][bench] - expected['base'][bench]:+.1f})" in cells[1]
        if bench == "videomme":
            assert grpo is None and cells[2] == "–"  # the gap is marked
        else:
            assert grpo == pytest.approx(expected["grpo"][bench], abs=0.05 + 1e-9)
    # family averages over the benchmarks every column has (video: grpo lacks it, so no common benchmark)
    vlm = [_value(c) for c in table["VLM average (2)"]]
    for value, name in zip(vlm, ("base", "zppo", "grpo")):
        assert value == pytest.approx((expected[name]["mathvista"] + expected[name]["mmstar"]) / 2, abs=0.05 + 1e-9)
    assert any(key.startswith("Video average (0)") for key in table)
    assert "grpo: videomme" in text and "grpo: no training metrics" in text
    assert "no training metrics" in capsys.readouterr().err


def test_plots_are_non_empty_pngs(runs):
    root, _ = runs
    out = root / "report"
    report_main([str(root / "zppo_run"), str(root / "grpo_eval"), "--baseline", str(root / "base"), "--out",
                 str(out), "--x-axis", "zppo/gen_tokens_cum"])
    for name in ("training_dynamics.png", "family_bars.png", "benchmark_deltas.png"):
        path = out / name
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
        with Image.open(path) as image:
            assert image.width > 200 and image.height > 200
            assert len(image.convert("L").getcolors(maxcolors=1 << 16) or []) > 10, f"{name} looks blank"


def test_resumed_launch_replaces_repeated_steps(runs):
    from recipe.zppo.report import read_training_metrics

    root, _ = runs
    steps = read_training_metrics(root / "zppo_run")
    assert [s for s, _ in steps] == [1, 2, 3, 4]
    assert dict(steps)[3]["zppo/gen_tokens_cum"] == 600  # from the second launch


def test_scoring_avg_and_pass_at_k():
    rows = [{"data_source": "b", "question_id": "q1", "acc": a} for a in (1, 0, 0, 0)]
    rows += [{"data_source": "b", "question_id": "q2", "acc": a} for a in (0, 0, 0, 0)]
    scores = score_benchmarks(rows)["b"]
    assert scores["acc"] == pytest.approx(12.5) and scores["pass@1"] == pytest.approx(12.5)
    assert scores["pass@4"] == pytest.approx(50.0) and scores["pass@2"] == pytest.approx(100 * (0.5 * 0.5))
    assert pass_at_k(4, 1, 2) == pytest.approx(0.5)


def test_baseline_without_results_is_one_clear_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit, match="no evaluation results"):
        report_main([str(tmp_path / "empty"), "--baseline", str(tmp_path / "empty"), "--out", str(tmp_path / "o")])
