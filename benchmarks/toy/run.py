"""Run the toy experiment: data, warm-up, every arm through ``python -m recipe.zppo.main_zppo`` on the CPU, report.

    python -m benchmarks.toy.run --out outputs/toy [--seeds 0 1 2] [--size smoke|full]

Steps (each skipped on a rerun when its output is already there, so an interrupted experiment resumes):

1. data: the task's RL set (easy + hard questions, the correct worked solution as each row's teacher response)
   and the held-out set, ``OUT/data/{train,val}.parquet`` (``task.py``);
2. warm-up: a tiny random Qwen3 trained on plain short questions and candidate-format prompts, ``OUT/student``;
   its greedy held-out accuracy (easy, hard) and candidate reading (BCQ/NCQ of hard lengths) are measured;
3. RL arms, one run each, from the same student and data: per seed ``zppo``, then ``grpo_matched`` (matched to
   that ``zppo`` run's generated tokens), then ``grpo_buffer``; after all seeds the loss-aggregation variants of
   ``zppo`` with the first seed. Run folder ``OUT/runs/<arm>_s<seed>``, its log ``OUT/runs/<arm>_s<seed>.log``;
   a finished run leaves ``toy_done.json`` (summary, held-out accuracy of its final checkpoint, wall time);
4. ``OUT/results.json`` and ``OUT/RESULTS.md``: mean ± sd over seeds per arm, the per-run table, the command,
   the total wall time, the machine.

One local Ray head serves every run (started here, stopped at the end); seeds differ in ``data.seed`` (the order of
fresh questions) and ``zppo.reformulation.seed`` (reformulation draws); sampling itself is not seeded.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from recipe.zppo.eval.report import make_report

from ..local_ray import LocalRayHead, run_main_zppo
from . import results as results_mod
from . import task

# arm -> (main_zppo overrides, whether it runs for every seed or only the first)
ARMS: dict[str, tuple[tuple[str, ...], bool]] = {
    "zppo": (("method=zppo",), True),
    "grpo_matched": (("method=grpo_matched",), True),  # + zppo.matched.reference=<the zppo run of its seed>
    "grpo_buffer": (("method=grpo_buffer",), True),
    "zppo_exclude_zero_adv": (("method=zppo", "zppo.update.loss_weighting=exclude_zero_adv"), False),
    "zppo_per_kind": (("method=zppo", "zppo.update.loss_weighting=per_kind"), False),
}


@dataclass(frozen=True)
class Size:
    spec: task.TaskSpec
    warmup_steps: int
    warmup_lr: float
    rl_steps: int
    train_batch_size: int
    rollout_n: int
    lr: float
    reading_count: int  # BCQ/NCQ prompts of the warm-up's candidate-reading check
    arms: tuple[str, ...]
    seeds: tuple[int, ...]
    run_timeout_s: int
    extra_overrides: tuple[str, ...] = field(default_factory=tuple)


SIZES = {
    "smoke": Size(
        spec=task.TaskSpec(rl_easy=8, rl_hard=8, heldout_easy=8, heldout_hard=8),
        warmup_steps=10, warmup_lr=1.5e-3, rl_steps=1, train_batch_size=4, rollout_n=4, lr=1e-4, reading_count=4,
        arms=("zppo", "grpo_matched"), seeds=(0,), run_timeout_s=600,
    ),
    "full": Size(
        spec=task.TaskSpec(rl_easy=48, rl_hard=48, heldout_easy=100, heldout_hard=100),
        warmup_steps=1000, warmup_lr=1.5e-3, rl_steps=12, train_batch_size=8, rollout_n=4, lr=1e-4, reading_count=64,
        arms=tuple(ARMS), seeds=(0, 1, 2), run_timeout_s=1500,
    ),
}


def log(message: str) -> None:
    print(f"[toy {time.strftime('%H:%M:%S')}] {message}", flush=True)


# ------------------------------------------------------------------------------------------------------- stages


def prepare_data(out: Path, size: Size) -> dict:
    splits = task.make_splits(size.spec, seed=0)
    paths = task.write_rl_data(splits, out / "data")
    return {"splits": splits, **paths}


def prepare_student(out: Path, size: Size, splits: dict) -> dict:
    """The warmed-up student and its greedy accuracies (cached in ``student/toy_warmup.json``)."""
    from . import warmup

    student = out / "student"
    done = student / "toy_warmup.json"
    if done.is_file():
        log(f"warm-up: done before ({done})")
        return json.loads(done.read_text())
    started = time.time()
    reserved = task.reserved_questions(splits)
    log(f"warm-up: {size.warmup_steps} supervised steps on plain and candidate-format prompts")
    warmup.write_random_student(student, seed=0)
    losses = warmup.supervised_warmup(student, size.spec, reserved, steps=size.warmup_steps, lr=size.warmup_lr)
    train_s = time.time() - started
    summary = {
        "steps": size.warmup_steps,
        "final_loss": losses[-1],
        "train_wall_s": train_s,
        "heldout_easy_acc": warmup.evaluate_plain(student, splits["heldout_easy"]),
        "heldout_hard_acc": warmup.evaluate_plain(student, splits["heldout_hard"]),
    }
    reading = warmup.evaluate_candidate_reading(student, size.spec, reserved, size.reading_count)
    summary.update(bcq_hard_acc=reading["bcq"], ncq_hard_acc=reading["ncq"], wall_s=time.time() - started)
    done.write_text(json.dumps(summary, indent=2) + "\n")
    log("warm-up: loss {final_loss:.3f}; greedy plain easy {heldout_easy_acc:.3f}, plain hard {heldout_hard_acc:.3f}, "
        "BCQ hard {bcq_hard_acc:.3f}, NCQ hard {ncq_hard_acc:.3f} ({wall_s:.0f} s)".format(**summary))
    return summary


def run_overrides(arm: str, seed: int, size: Size, out: Path, data: dict) -> list[str]:
    run_dir = out / "runs" / f"{arm}_s{seed}"
    overrides = [
        "preset=cpu",
        *ARMS[arm][0],
        f"actor_rollout_ref.model.path={out / 'student'}",
        f"data.train_files={data['train']}",
        f"data.val_files={data['val']}",
        f"trainer.default_local_dir={run_dir}",
        f"trainer.experiment_name=toy_{arm}_s{seed}",
        f"trainer.total_training_steps={size.rl_steps}",
        f"trainer.save_freq={size.rl_steps}",
        f"data.train_batch_size={size.train_batch_size}",
        f"actor_rollout_ref.actor.ppo_mini_batch_size={size.train_batch_size}",
        f"actor_rollout_ref.rollout.n={size.rollout_n}",
        f"actor_rollout_ref.actor.optim.lr={size.lr}",
        f"data.seed={seed}",
        f"zppo.reformulation.seed={seed}",
        # The toy's teacher is its stored solutions, shown uncompressed (no teacher model to serve).
        "zppo.teacher.source=offline",
        "zppo.teacher.compression.enable=false",
        *size.extra_overrides,
    ]
    if arm == "grpo_matched":
        overrides.append(f"zppo.matched.reference={out / 'runs' / f'zppo_s{seed}'}")
    return overrides


def run_arm(arm: str, seed: int, size: Size, out: Path, data: dict, ray_address: str) -> dict:
    """One RL run (skipped when ``toy_done.json`` is there) and the held-out accuracy of its final checkpoint."""
    from . import warmup

    run_dir = out / "runs" / f"{arm}_s{seed}"
    done = run_dir / "toy_done.json"
    if done.is_file():
        log(f"{arm} seed {seed}: done before")
        # Its held-out accuracy and wall time as recorded; the training summary re-read (new summary keys show).
        return {**json.loads(done.read_text()), **results_mod.summarize_steps(run_dir)}
    if run_dir.exists():  # an unfinished attempt: start over rather than resume its partial state
        shutil.rmtree(run_dir)
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    args = run_overrides(arm, seed, size, out, data)
    log(f"{arm} seed {seed}: training {size.rl_steps} steps (log {run_dir}.log)")
    started = time.time()
    returncode = run_main_zppo(args, ray_address, f"{run_dir}.log", timeout=size.run_timeout_s)
    wall_s = time.time() - started
    if returncode != 0:
        raise RuntimeError(f"{arm} seed {seed}: main_zppo exited {returncode}, see {run_dir}.log")
    summary = results_mod.summarize_steps(run_dir)
    final = run_dir / f"global_step_{size.rl_steps}" / "actor" / "huggingface"
    splits = data["splits"]
    summary.update(
        arm=arm, seed=seed, wall_s=wall_s, command=shlex.join(["python", "-m", "recipe.zppo.main_zppo", *args]),
        heldout_easy_acc=warmup.evaluate_plain(final, splits["heldout_easy"], tokenizer_dir=out / "student"),
        heldout_hard_acc=warmup.evaluate_plain(final, splits["heldout_hard"], tokenizer_dir=out / "student"),
    )
    done.write_text(json.dumps(summary, indent=2) + "\n")
    log(f"{arm} seed {seed}: {wall_s:.0f} s; graduated {summary['graduated']:.0f}, admitted {summary['admitted']:.0f}, "
        f"tokens {summary['cum_generated_tokens']:,.0f}, rollouts {summary['cum_rollouts']:,.0f}; held-out acc "
        f"easy {summary['heldout_easy_acc']:.3f}, hard {summary['heldout_hard_acc']:.3f}")
    return summary


def schedule(size: Size, seeds: list[int]) -> list[tuple[str, int]]:
    """Per seed the every-seed arms in ARMS order (zppo before its grpo_matched), then the first-seed-only arms."""
    plan = [(arm, seed) for seed in seeds for arm in size.arms if ARMS[arm][1]]
    plan += [(arm, seeds[0]) for arm in size.arms if not ARMS[arm][1]]
    missing = [s for a, s in plan if a == "grpo_matched" and "zppo" not in size.arms]
    if missing:
        raise ValueError("grpo_matched needs the zppo arm (its reference)")
    return plan


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.toy.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, type=Path, help="output folder (resumable)")
    parser.add_argument("--size", choices=sorted(SIZES), default="full")
    parser.add_argument("--seeds", type=int, nargs="+", default=None, help="RL seeds (default: the size's)")
    parser.add_argument("--warmup-only", action="store_true", help="stop after the data and the warm-up")
    parser.add_argument("--ray-address", default=None,
                        help="attach the runs to this running Ray head instead of starting one (e.g. the tests')")
    args = parser.parse_args(argv)
    size = SIZES[args.size]
    seeds = list(args.seeds if args.seeds is not None else size.seeds)
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    command = shlex.join(["python", "-m", "benchmarks.toy.run", "--out", str(args.out), "--size", args.size,
                          "--seeds", *map(str, seeds)])
    started = time.time()
    log(f"size {args.size}, seeds {seeds}, out {out}")
    data = prepare_data(out, size)
    warm = prepare_student(out, size, data["splits"])
    if args.warmup_only:
        return 0
    plan = schedule(size, seeds)
    pending = [p for p in plan if not (out / "runs" / f"{p[0]}_s{p[1]}" / "toy_done.json").is_file()]
    address = args.ray_address
    runs, failed = [], []
    with contextlib.ExitStack() as stack:
        if pending and address is None:
            address = stack.enter_context(LocalRayHead(out / "ray_head.log"))
            log(f"Ray head at {address}")
        for number, (arm, seed) in enumerate(plan, 1):
            log(f"run {number}/{len(plan)}")
            try:
                runs.append(run_arm(arm, seed, size, out, data, address))
            except (RuntimeError, subprocess.TimeoutExpired, ValueError, OSError) as error:
                # One failed run must not cost the others; a rerun of this command retries it.
                log(f"{arm} seed {seed}: FAILED ({error}); going on, rerun the command to retry it")
                failed.append({"arm": arm, "seed": seed, "error": str(error)})
    results = {
        "size": args.size,
        "seeds": seeds,
        "command": command,
        "size_config": json.loads(json.dumps(dataclasses.asdict(size), default=list)),
        # This launch's wall time; on a resumed launch the stages done before count in stages_wall_s only.
        "wall_s": time.time() - started,
        "stages_wall_s": warm["wall_s"] + sum(r["wall_s"] for r in runs),
        "machine": f"{platform.node() or 'host'}: {os.cpu_count()} CPU cores, "
                   f"{platform.processor() or platform.machine()}, "
                   f"Python {platform.python_version()}",
        "warmup": warm,
        "runs": runs,
        "failed": failed,
        "arms": results_mod.aggregate(runs),
        "notes": "graduated/admitted: questions leaving/entering the replay buffer, summed over steps; held-out acc: "
                 "greedy, plain prompt, final checkpoint, questions disjoint from warm-up and RL.",
    }
    results_mod.write_results(results, out)
    first_seed = [run for run in runs if run["seed"] == seeds[0]]
    if first_seed:  # every arm of the first seed in one report: dynamics against steps and generated tokens
        make_report([out / "runs" / f"{run['arm']}_s{run['seed']}" for run in first_seed], None, out / "report",
                    names=[run["arm"] for run in first_seed], title=f"Toy experiment, seed {seeds[0]}")
    log(f"done in {(time.time() - started) / 60:.1f} min: {out / 'RESULTS.md'}"
        + (f"; {len(failed)} run(s) FAILED, rerun the command to retry them" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
