"""The report on fake runs: the table's numbers equal those recomputed from the per-answer outputs, family
averages are over the benchmarks every column has, gaps are marked, the plots are real PNGs, and the training tables
cut every run at the same generated-token spend (or the same step) with the values recomputed from the logs."""

from __future__ import annotations

import json
import random
import re

import pytest
from PIL import Image

from data_prep.benchmarks import BENCHMARKS
from recipe.zppo.eval.evaluate import family_averages, pass_at_k, score_benchmarks
from recipe.zppo.eval.report import TOKENS_KEY
from recipe.zppo.eval.report import main as report_main

BENCHES = ["aime25", "gpqa_diamond", "mathvista", "ai2d", "mmstar", "videomme"]  # mmstar: the extra suite


def _answers(seed: int, benches: list[str], n: int) -> list[dict]:
    """Per-answer rows as verl dumps them (with the eval reward's data_source and question_id)."""
    rng = random.Random(seed)
    rows = []
    for bench in benches:
        for q in range(rng.randint(3, 6)):
            for s in range(n):
                acc = float(rng.random() < 0.3 + 0.1 * seed)
                rows.append({"data_source": bench, "question_id": f"{bench}-{q}", "uid": f"u{bench}{q}_0_{s}",
                             "acc": acc, "score": acc, "route": "grader" if rng.random() < 0.9 else "unparseable"})
    return rows


def _write_eval(folder, name, rows, requested):
    """What python -m recipe.zppo.eval leaves: generations + results.json (built by its own scoring functions)."""
    (folder / "generations").mkdir(parents=True)
    (folder / "generations" / "0.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    scores = score_benchmarks(rows)
    entries = {}
    for bench in requested:
        entry = {"family": BENCHMARKS[bench].family, "title": BENCHMARKS[bench].title,
                 "suite": BENCHMARKS[bench].suite}
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
                    TOKENS_KEY: 100 * step * (i + 1), "zppo/compute/cum_rollouts": 8 * step}
            lines.append(json.dumps({"step": step, "data": data}))
        lines.append(json.dumps({"step": 0, "data": {"val-core/aime25/acc/mean@1": 0.5}}))  # validation record
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
    # family averages over the benchmarks every column has (video: grpo lacks it, so no common benchmark); the
    # extra benchmark (mmstar) is never in the VLM average
    vlm = [_value(c) for c in table["VLM average (2)"]]
    for value, name in zip(vlm, ("base", "zppo", "grpo")):
        assert value == pytest.approx((expected[name]["mathvista"] + expected[name]["ai2d"]) / 2, abs=0.05 + 1e-9)
    assert any(key.startswith("Video average (0)") for key in table)
    assert "grpo: videomme" in text and "grpo: no training metrics" in text
    assert "no training metrics" in capsys.readouterr().err


def _assert_png(path):
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", path.name
    with Image.open(path) as image:
        assert image.width > 200 and image.height > 200
        assert len(image.convert("L").getcolors(maxcolors=1 << 16) or []) > 10, f"{path.name} looks blank"


def test_plots_are_non_empty_pngs(runs):
    root, _ = runs
    out = root / "report"
    report_main([str(root / "zppo_run"), str(root / "grpo_eval"), "--baseline", str(root / "base"), "--out",
                 str(out)])
    for name in ("training_dynamics.png", "training_dynamics_tokens.png", "family_bars.png", "benchmark_deltas.png"):
        _assert_png(out / name)
    report = json.loads((out / "report.json").read_text())
    assert report["plots"]["training_dynamics_tokens"] == "training_dynamics_tokens.png"


def test_resumed_launch_replaces_repeated_steps(runs):
    from recipe.zppo.eval.report import read_training_metrics

    root, _ = runs
    steps = read_training_metrics(root / "zppo_run")
    assert [s for s, _ in steps] == [1, 2, 3, 4]
    assert dict(steps)[3][TOKENS_KEY] == 600  # from the second launch


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


# ------------------------------------------------------------------------------------------------ training tables

# Per step, as the trainer logs them: cumulative generated tokens and rollouts (compute ledger), the replay buffer's
# per-step counters and size, the mean score. ZPPO spends a different number of tokens every step; GRPO 200 a step.
ZPPO_STEPS = [  # step, cum tokens, cum rollouts, graduated, admitted, buffer size, score
    (1, 100, 16, 0, 4, 4, 0.10),
    (2, 350, 40, 1, 3, 6, 0.20),
    (3, 750, 72, 2, 2, 6, 0.30),
    (4, 1050, 96, 1, 0, 5, 0.40),
]
GRPO_STEPS = [(s, 200 * s, 8 * s, s % 2, 2, 10 + s, 0.05 * s) for s in range(1, 7)]
LEGACY_STEPS = [(s, None, None, 1, 1, 3, 0.5) for s in range(1, 6)]  # logged before the compute ledger existed


def _data(step, tokens, rollouts, graduated, admitted, buffer_size, score) -> dict:
    data = {"training/global_step": step, "critic/score/mean": score, "zppo/graduated": graduated,
            "zppo/admitted": admitted, "zppo/evicted": 0, "zppo/buffer_size": buffer_size}
    if tokens is not None:
        data.update({TOKENS_KEY: tokens, "zppo/compute/cum_rollouts": rollouts,
                     "zppo/compute/cum_prompt_tokens": 3 * tokens, "zppo/compute/original/generated_tokens": 1.0})
    return data


def _write_launches(run_dir, launches):
    (run_dir / "metrics").mkdir(parents=True)
    for i, rows in enumerate(launches):
        text = "".join(json.dumps({"step": row[0], "data": _data(*row)}) + "\n" for row in rows)
        (run_dir / "metrics" / f"2026010{i}-000000.jsonl").write_text(text)


def _expected(steps, cut_step) -> dict:
    """A run's row at ``cut_step``, recomputed from the logged steps: sums and mean over steps 1..cut."""
    upto = [row for row in steps if row[0] <= cut_step]
    last = upto[-1]
    return {"step": last[0], "cum_generated_tokens": last[1], "cum_rollouts": last[2],
            "cum_graduated": sum(r[3] for r in upto), "cum_admitted": sum(r[4] for r in upto),
            "buffer_size": last[5], "mean_score": sum(r[6] for r in upto) / len(upto)}


@pytest.fixture
def trained(tmp_path):
    _write_eval(tmp_path / "base", "base", _answers(0, BENCHES, 1), BENCHES)
    # zppo was resumed: its first launch logged a different step 3 (more tokens, 5 graduated) that is replaced
    _write_launches(tmp_path / "zppo_run", [ZPPO_STEPS[:2] + [(3, 900, 80, 5, 5, 9, 0.9)], ZPPO_STEPS[2:]])
    _write_launches(tmp_path / "grpo_run", [GRPO_STEPS])
    _write_launches(tmp_path / "legacy_run", [LEGACY_STEPS])
    return tmp_path


def _report(root, *extra):
    out = root / "report"
    assert report_main([str(root / "zppo_run"), str(root / "grpo_run"), str(root / "legacy_run"), "--baseline",
                        str(root / "base"), "--out", str(out), "--names", "zppo,grpo,legacy", *extra]) == 0
    return json.loads((out / "report.json").read_text()), (out / "report.md").read_text(), out


def _section(markdown: str, heading: str) -> dict[str, list[str]]:
    """The rows (run -> cells) of the Markdown table under the heading that starts with ``heading``."""
    lines = markdown.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(heading))
    rows = {}
    for line in lines[start + 1:]:
        if line.startswith("#"):
            break
        if line.startswith("| ") and not line.startswith("| Run"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            rows[cells[0]] = cells[1:]
    return rows


def _check_row(row, expected):
    for key, value in expected.items():
        assert row[key] == pytest.approx(value), (row["run"], key)


def test_equal_compute_cuts_every_run_at_the_smallest_final_spend(trained, capsys):
    report, text, _ = _report(trained)
    training = report["training"]
    budget = min(ZPPO_STEPS[-1][1], GRPO_STEPS[-1][1])  # 1050: zppo's final spend
    assert training["token_budget"] == budget and training["token_budget_source"] == "smallest final spend"
    rows = {row["run"]: row for row in training["equal_compute"]}
    assert set(rows) == {"zppo", "grpo"}  # legacy has no compute metrics
    _check_row(rows["zppo"], _expected(ZPPO_STEPS, 4))  # 1050 <= budget: the inclusive end
    _check_row(rows["grpo"], _expected(GRPO_STEPS, 5))  # 1000 <= 1050 < 1200
    assert rows["zppo"]["cum_graduated"] == 4  # the resumed step 3 replaced the first launch's (5 graduated)
    # the Markdown table shows the same row
    table = _section(text, "## Training at equal compute")
    assert table["grpo"] == ["5", "1,000", "40", "3", "10", "15", "0.150"]
    assert table["zppo"][:2] == ["4", "1,050"]
    assert "left out of the equal-compute table: legacy" in text
    assert "legacy" not in table
    assert "left out of the equal-compute table: legacy" in capsys.readouterr().err


def test_equal_steps_cuts_every_run_at_the_smallest_final_step(trained):
    report, text, _ = _report(trained)
    steps = report["training"]["equal_steps"]
    assert steps["step"] == 4
    rows = {row["run"]: row for row in steps["rows"]}
    _check_row(rows["zppo"], _expected(ZPPO_STEPS, 4))
    _check_row(rows["grpo"], _expected(GRPO_STEPS, 4))
    legacy = rows["legacy"]  # in this table too, without the compute columns
    assert legacy["cum_generated_tokens"] is None and legacy["cum_graduated"] == 4 and legacy["step"] == 4
    table = _section(text, "## Training at equal steps")
    assert table["legacy"][:3] == ["4", "–", "–"]


def test_token_budget_option(trained):
    report, text, _ = _report(trained, "--token-budget", "500")
    training = report["training"]
    assert training["token_budget"] == 500 and training["token_budget_source"] == "--token-budget"
    rows = {row["run"]: row for row in training["equal_compute"]}
    _check_row(rows["zppo"], _expected(ZPPO_STEPS, 2))  # 350 <= 500 < 750
    _check_row(rows["grpo"], _expected(GRPO_STEPS, 2))  # 400 <= 500 < 600
    assert "500 generated tokens (set by --token-budget)" in text

    # a budget below a run's first step leaves it without a row; one above a run's final spend is marked
    report, text, _ = _report(trained, "--token-budget", "150")
    rows = {row["run"]: row for row in report["training"]["equal_compute"]}
    assert rows["zppo"]["step"] == 1 and rows["grpo"]["step"] is None
    assert "grpo: no logged step within the budget" in text
    report, text, _ = _report(trained, "--token-budget", "1100")
    rows = {row["run"]: row for row in report["training"]["equal_compute"]}
    assert rows["zppo"]["step"] == 4 and rows["zppo"]["reached_budget"] is False
    assert rows["grpo"]["step"] == 5 and rows["grpo"]["reached_budget"] is True
    assert _section(text, "## Training at equal compute")["zppo"][0] == "4†"

    with pytest.raises(SystemExit, match="--token-budget"):
        _report(trained, "--token-budget", "0")


def test_both_dynamics_plots_and_a_run_without_tokens_is_named(trained):
    report, text, out = _report(trained, "--title", "ZPPO vs GRPO")
    assert report["plots"]["training_dynamics"] == "training_dynamics.png"
    assert report["plots"]["training_dynamics_tokens"] == "training_dynamics_tokens.png"
    for name in ("training_dynamics.png", "training_dynamics_tokens.png"):
        _assert_png(out / name)
        assert f"]({name})" in text
    assert text.startswith("# ZPPO vs GRPO\n")
    assert f"{TOKENS_KEY} not logged by legacy: left out of training_dynamics_tokens.png" in text

    # --x-axis another metric: the second plot is against it
    report, _, out = _report(trained, "--x-axis", "zppo/compute/cum_rollouts")
    assert report["x_axis"] == "zppo/compute/cum_rollouts"
    _assert_png(out / "training_dynamics_by_zppo_compute_cum_rollouts.png")


def test_running_sums_of_the_buffer_counters(trained):
    from recipe.zppo.eval.report import read_training_metrics

    steps = read_training_metrics(trained / "zppo_run")
    assert [data["report/cum_graduated"] for _, data in steps] == [0, 1, 3, 4]
    assert [data["report/cum_admitted"] for _, data in steps] == [4, 7, 9, 9]


def test_without_a_baseline_the_report_is_about_training_only(trained):
    out = trained / "training_only"
    assert report_main([str(trained / "zppo_run"), str(trained / "grpo_run"), "--out", str(out),
                        "--names", "zppo,grpo"]) == 0
    text = (out / "report.md").read_text()
    assert "Evaluation" not in text and not (out / "family_bars.png").exists()
    assert _section(text, "## Training at equal compute")["grpo"][:2] == ["5", "1,000"]
    for name in ("training_dynamics.png", "training_dynamics_tokens.png"):
        _assert_png(out / name)


# ------------------------------------------------------------------------------------------------ against the paper

PAPER_VLM_BASE_08B = {  # Tab. 1, Qwen3.5-0.8B (written out here, not read from the data file under test)
    "ai2d": 65.6, "babyvision": 6.7, "charxiv": 54.3, "dynamath": 17.8, "embspatial": 67.9, "infovqa": 68.6,
    "mathverse": 43.5, "mathvision": 16.4, "mathvista": 60.7, "mmmu_pro": 26.8, "mm_vet": 53.2, "ocrbench_v2_en": 40.0,
    "ocrbench_v2_zh": 17.0, "visualpuzzles": 20.5, "vlms_are_blind": 42.8, "wemath": 54.4}
TAB1_HEADER = ("| Method | AI2D | BabyV | CharXiv | DynaM | EmbSp | InfoVQA | MVerse | MVision | MVista | MMMUPro | "
               "MM-Vet | OCREN | OCRZH | VisP | VBlind | WeMath | Avg |")
TAB2_HEADER = ("| Method | AIME25 | AIME26 | CEval | GPQA-D | HLE | IMO-AB | MMLU | MMLU-Pro | MMLU-Rd | MultiCh | "
               "Avg | MMVU | MVBench | VMME | VMMES | VMMMU | Avg |")


def _results(folder, name, model, scores: dict[str, float], families: dict[str, str]):
    folder.mkdir(parents=True)
    entries = {bench: {"family": families.get(bench, "vlm"), "title": bench, "status": "ok", "acc": acc,
                       **({"suite": "extra"} if bench not in families else {})} for bench, acc in scores.items()}
    (folder / "results.json").write_text(json.dumps({"name": name, "model": model, "benchmarks": entries,
                                                     "metric": "acc"}))


def test_paper_layout_tables_on_a_fixed_input(tmp_path, capsys):
    from recipe.zppo.eval.paper_tables import load_reference

    reference = load_reference()
    families = {name: entry["family"] for name, entry in reference["benchmarks"].items()}
    zppo_row = next(r for r in reference["rows"] if (r["size"], r["method"], r["family"]) == ("0.8B", "zppo", "vlm"))
    base_scores = {**PAPER_VLM_BASE_08B, "aime25": 3.3, "ceval": 52.3, "mmlu": 57.7, "mmstar": 61.0}
    _results(tmp_path / "base", "base", "/models/Qwen3.5-0.8B", base_scores, families)
    _results(tmp_path / "zppo", "zppo", "/ckpt/zppo_run", {k: v + 1.0 for k, v in zppo_row["scores"].items()},
             families)
    assert report_main([str(tmp_path / "zppo"), "--baseline", str(tmp_path / "base"), "--out",
                        str(tmp_path / "r")]) == 0
    printed = capsys.readouterr().out
    assert printed in (tmp_path / "r" / "report.md").read_text()
    lines = printed.splitlines()
    assert "## Against the paper (Qwen3.5-0.8B" in printed  # the size named in the base model's path
    assert TAB1_HEADER in lines and TAB2_HEADER in lines

    def row(label, after):
        start = lines.index(after)
        return next(line for line in lines[start:] if line.startswith(f"| {label} |")).strip("|").split(" | ")[1:]

    paper_base = row("Qwen3.5-0.8B", TAB1_HEADER)
    assert paper_base[0].strip() == "65.6" and paper_base[-1].strip() == "41.0"
    ours_base = [c.strip() for c in row("ours: base", TAB1_HEADER)]
    assert ours_base == [f"{v:.1f}" for v in PAPER_VLM_BASE_08B.values()] + ["41.0"]
    delta_base = [c.strip() for c in row("Δ base - paper Qwen3.5-0.8B", TAB1_HEADER)]
    assert delta_base == ["+0.0"] * 17
    delta_zppo = [c.strip() for c in row("Δ zppo - paper + ZPPO", TAB1_HEADER)]
    assert delta_zppo == ["+1.0"] * 17
    # Tab. 2: three LLM benchmarks evaluated: the average is over those three, marked, and its delta compares the
    # paper's average over the same three; no video benchmark
    llm = [c.strip() for c in row("ours: base", TAB2_HEADER)]
    assert llm[0] == "3.3" and llm[1] == "–" and llm[10] == f"{(3.3 + 52.3 + 57.7) / 3:.1f}*(3)"
    assert llm[11:] == ["–"] * 6
    assert [c.strip() for c in row("Δ base - paper Qwen3.5-0.8B", TAB2_HEADER)][10] == "+0.0*(3)"
    # Tab. 4: the paper's rows, then ours in the 0.8B columns
    tab4_header = "| Method | LLM 0.8B | VLM 0.8B | Video 0.8B | LLM 2B | VLM 2B | Video 2B |"
    assert tab4_header in lines
    assert [c.strip() for c in row("Base", tab4_header)] == ["25.2", "41.0", "48.3", "45.3", "56.8", "60.6"]
    assert [c.strip() for c in row("ours: base (0.8B)", tab4_header)][1:] == ["41.0", "–", "–", "–", "–"]
    # a benchmark outside the paper's 31 is reported apart, never averaged
    assert "| Method | mmstar |" in lines and [c.strip() for c in row("ours: base", "| Method | mmstar |")] == ["61.0"]
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    assert report["paper"]["vlm"]["rows"][-1]["avg"] == pytest.approx(1.0)


def test_paper_reference_data_is_consistent():
    """The shipped Tabs 1-2 rows: 16 + 10 + 5 benchmarks; every row's mean of its benchmarks is the table's Avg within
    0.1 (the paper averages unrounded scores); the base 0.8B row is the one a pipeline check compares with."""
    from recipe.zppo.eval.paper_tables import load_reference

    reference = load_reference()
    families = [entry["family"] for entry in reference["benchmarks"].values()]
    assert (families.count("vlm"), families.count("llm"), families.count("video")) == (16, 10, 5)
    sizes_methods = {(row["size"], row["method"], row["family"]) for row in reference["rows"]}
    for size in ("0.8B", "2B"):
        for method in ("base", "grpo_buffer", "zppo"):
            assert {(size, method, f) for f in ("vlm", "llm", "video")} <= sizes_methods
        assert (size, "grpo", "vlm") in sizes_methods
    for row in reference["rows"]:
        names = [n for n, e in reference["benchmarks"].items() if e["family"] == row["family"]]
        assert set(row["scores"]) == set(names), row["label"]
        assert abs(sum(row["scores"].values()) / len(names) - row["avg"]) <= 0.1, (row["label"], row["size"])
    base = {(r["family"]): r["avg"] for r in reference["rows"] if (r["size"], r["method"]) == ("0.8B", "base")}
    assert base == {"vlm": 41.0, "llm": 25.2, "video": 48.3}
    tab4_base = next(r for r in reference["tab4"] if (r["size"], r["method"]) == ("0.8B", "base"))
    assert tab4_base["avg"] == base
