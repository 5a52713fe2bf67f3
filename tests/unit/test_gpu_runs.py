"""GPU runs that start and fit (issue #19), checked on a CPU: the GPU extra on verl's tested pins, the import check of
the GPU pieces, token-budget micro-batches that hold the longest row, a memory estimate under 80 GB, the processor's
image patch size, one run folder per script and method, the step count, the layout a dry run prints, and a teacher
client that waits for a 12,288-token answer. Every script is composed as tests/unit/test_examples.py does.
"""

from __future__ import annotations

import ast
import json
from importlib.metadata import distribution
from pathlib import Path

import pytest
from omegaconf import OmegaConf
from packaging.requirements import Requirement

from recipe.zppo.baselines.compute_matching import CUM_GENERATED
from recipe.zppo.trainer import memory
from recipe.zppo.trainer.preflight import (
    GPU_MODULES,
    ConfigError,
    check_gpu_stack,
    check_image_patch_size,
    check_token_budgets,
)
from tests.unit.test_examples import EXAMPLES, GPU_SCRIPTS, METHODS, _compose, _overrides

ROOT = EXAMPLES.parent
SCALES = ("0.8b", "2b", "4b", "9b")
TEACHER = {"served_by_the_run": {}, "url": {"TEACHER_URL": "http://teacher:8000/v1"}}


def _runs():
    """(id, script, env) for every GPU script x teacher placement, and every method of the baselines script."""
    runs = []
    for teacher, env in TEACHER.items():
        for script in GPU_SCRIPTS:
            if script == "run_baselines_qwen3_5_2b.sh":
                # off-policy distillation needs a served teacher elsewhere (TEACHER_URL): the script refuses without
                runs += [(f"{script}:{method}:{teacher}", script, {**env, "METHOD": method}) for method in METHODS
                         if env or not method.startswith("off_policy_distill")]
            elif script == "run_zppo_multinode.sh":
                runs += [(f"{script}:{scale}:{teacher}", script, {**env, "SCALE": scale}) for scale in SCALES]
            else:
                runs.append((f"{script}:{teacher}", script, env))
    return runs


RUNS = _runs()


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory):
    """grpo_matched reads its reference ZPPO run's metrics before Ray starts: give it one."""
    folder = tmp_path_factory.mktemp("reference")
    (folder / "metrics").mkdir()
    record = {"step": 1, "data": {"training/global_step": 1, CUM_GENERATED: 10.0}}
    (folder / "metrics" / "run.jsonl").write_text(json.dumps(record) + "\n")
    return folder


@pytest.fixture(scope="module")
def composed(reference_run):
    """Every run's composed, resolved config, by id (composed once for the module: Hydra composition is slow)."""
    configs = {}
    for run_id, script, env in RUNS:
        config = _compose(_overrides(script, REFERENCE=str(reference_run), **env))
        OmegaConf.resolve(config)
        configs[run_id] = config
    return configs


# ---------------------------------------------------------------- 1. the GPU install


def _setup_gpu_extra() -> list[Requirement]:
    """setup.py's GPU_EXTRA, read without running setup.py."""
    tree = ast.parse((ROOT / "setup.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "GPU_EXTRA" for t in node.targets):
            return [Requirement(item) for item in ast.literal_eval(node.value)]
    raise AssertionError("setup.py has no GPU_EXTRA")


def _verl_pins(extra: str, seen: frozenset = frozenset()) -> dict[str, str]:
    """{name: version} of every ``==`` pin verl's installed metadata gives ``verl[extra]``, nested extras included."""
    pins = {}
    for line in distribution("verl").requires or []:
        requirement = Requirement(line)
        if requirement.marker is None or not requirement.marker.evaluate({"extra": extra}):
            continue
        if requirement.name == "verl":  # verl[flash-attn-cu130torch211] inside verl[fsdp]
            for inner in requirement.extras - seen:
                pins.update(_verl_pins(inner, seen | {extra}))
            continue
        exact = [spec.version for spec in requirement.specifier if spec.operator == "=="]
        if exact:
            pins[requirement.name.lower()] = exact[0]
    return pins


def test_gpu_extra_is_verls_tested_stack():
    ours = {r.name.lower(): r for r in _setup_gpu_extra()}
    verl_vllm, verl_fsdp = _verl_pins("vllm"), _verl_pins("fsdp")
    verl = {**verl_fsdp, **verl_vllm}
    assert verl_vllm and verl_fsdp  # the metadata was read (an empty dict would make the checks below vacuous)
    # Every pin of verl[vllm] is ours (vllm, torch, torchvision, torchaudio, transformers), same version.
    for name, version in verl_vllm.items():
        assert name in ours and str(ours[name].specifier) == f"=={version}", (name, version, ours.get(name))
    # The kernels of verl[fsdp] the student needs: flash-attn and flash-linear-attention, same version.
    for name in ("flash-attn", "flash-linear-attention"):
        assert str(ours[name].specifier) == f"=={verl_fsdp[name]}", name
    # Nothing of ours is pinned to another version than verl's, and no open range on a package verl pins.
    for name, requirement in ours.items():
        if name in verl:
            assert str(requirement.specifier) == f"=={verl[name]}", (name, requirement)
    # What verl does not list (ours): causal-conv1d, the other kernel of Qwen3.5's gated-delta-net layers.
    assert "causal-conv1d" in ours and "causal-conv1d" not in verl
    # Every module the preflight check imports is provided by a package of the extra.
    assert set(GPU_MODULES.values()) <= set(ours)


def test_gpu_install_is_documented_in_order():
    readme = (EXAMPLES / "README.md").read_text()
    section = readme[readme.index("## GPU install"):]
    section = section[: section.index("\n## ", 1)] if "\n## " in section[1:] else section
    torch_at, extra_at = section.index("torch==2.11.0"), section.index('.[gpu]')
    # torch first (flash-attn and causal-conv1d compile against it), both kernels without build isolation, after it.
    for kernel in ("flash-attn", "causal-conv1d"):
        line = next(line for line in section.splitlines() if kernel in line and "pip install" in line)
        assert "--no-build-isolation" in line, line
        assert section.index(line) > torch_at
    assert extra_at > torch_at


@pytest.mark.parametrize("rollout", ["vllm"])
@pytest.mark.parametrize("missing", list(GPU_MODULES))
def test_preflight_names_a_missing_gpu_package(rollout, missing):
    config = OmegaConf.create({"actor_rollout_ref": {"rollout": {"name": rollout}}})
    imported = []

    def fake_import(module):
        imported.append(module)
        if module == missing:
            raise ImportError(f"No module named '{module}'")

    with pytest.raises(ConfigError) as error:
        check_gpu_stack(config, import_module=fake_import)
    message = str(error.value)
    assert "\n" not in message and GPU_MODULES[missing] in message and "rollout.name=vllm" in message
    check_gpu_stack(config, import_module=lambda module: None)  # all present: no error


def test_preflight_gpu_check_skips_the_cpu_preset():
    config = _compose(["preset=cpu"])
    assert config.actor_rollout_ref.rollout.name != "vllm"

    def no_import(module):
        raise AssertionError(f"imported {module} on the CPU preset")

    check_gpu_stack(config, import_module=no_import)


def test_preflight_gpu_check_is_part_of_check_config():
    # check_config runs it (after the device check): read from the source, the call cannot be faked away.
    import inspect

    from recipe.zppo.trainer import preflight

    assert "check_gpu_stack(config)" in inspect.getsource(preflight.check_config)
    assert "check_token_budgets(config)" in inspect.getsource(preflight.check_config)


# ---------------------------------------------------------------- 2. memory with long rows


@pytest.mark.parametrize("run_id", [run[0] for run in RUNS])
def test_token_budget_micro_batches_hold_the_longest_row(run_id, composed):
    config = composed[run_id]
    actor = config.actor_rollout_ref.actor
    assert actor.use_dynamic_bsz and config.actor_rollout_ref.rollout.log_prob_use_dynamic_bsz
    longest = memory.longest_row_bound(config)
    assert longest > config.data.max_prompt_length + config.data.max_response_length or not config.zppo.enable
    for key, budget in memory.token_budgets(config).items():
        assert budget is not None and budget >= longest, (key, budget, longest)
    check_token_budgets(config)  # and the start-up check agrees
    assert actor.entropy_from_logits_with_chunking and actor.shuffle


def test_start_refuses_a_budget_below_the_longest_row(composed):
    config = composed["run_zppo_qwen3_5_2b.sh:served_by_the_run"].copy()
    longest = config.actor_rollout_ref.rollout.prompt_length + config.data.max_response_length
    config.actor_rollout_ref.actor.ppo_max_token_len_per_gpu = longest  # exactly the row: accepted
    config.actor_rollout_ref.rollout.log_prob_max_token_len_per_gpu = longest
    config.actor_rollout_ref.ref.log_prob_max_token_len_per_gpu = longest
    check_token_budgets(config)
    config.actor_rollout_ref.rollout.log_prob_max_token_len_per_gpu = longest - 1
    with pytest.raises(ConfigError, match="rollout.log_prob_max_token_len_per_gpu"):
        check_token_budgets(config)


def test_longest_row_bound_follows_the_config():
    config = _compose(["preset=paper"])
    base = memory.longest_row_bound(config)
    # G_S candidates of compression.max_tokens + the per-candidate allowance, the instruction, the plain budget.
    plain = config.data.max_prompt_length + config.data.max_response_length
    group = config.actor_rollout_ref.rollout.n
    assert base == plain + group * (512 + memory.CANDIDATE_OVERHEAD) + memory.INSTRUCTION_TOKENS
    longer = _compose(["preset=paper", "zppo.teacher.compression.max_tokens=1024"])
    assert memory.longest_row_bound(longer) == base + group * 512
    assert memory.longest_row_bound(_compose(["preset=paper", "method=grpo"])) == plain  # no BCQ/NCQ rows


@pytest.mark.parametrize("run_id", [run[0] for run in RUNS])
def test_memory_estimate_fits_80_gb(run_id, composed):
    config = composed[run_id]
    estimate = memory.estimate_from_config(config)
    assert estimate["total"] < memory.GPU_GB, estimate
    assert estimate["rollout_phase"] < memory.GPU_GB, estimate


def test_memory_estimate_would_catch_the_old_fixed_micro_batch():
    # The issue's case: 8 BCQ/NCQ rows of 16K tokens in one micro-batch (0.8B script): ~57 GB of bf16 logits alone.
    shape = memory.QWEN3_5["0.8b"]
    estimate = memory.memory_estimate(shape, 8 * (4096 + 12288), shards=6, entropy_chunk=None)
    assert estimate["logits"] == pytest.approx(2 * 8 * 16384 * 248320 / 1e9)
    assert estimate["total"] > memory.GPU_GB


def test_readme_memory_table_is_the_functions_output():
    readme = (EXAMPLES / "README.md").read_text()
    for scale in SCALES:
        config = _compose(_overrides("run_zppo_multinode.sh", SCALE=scale, NNODES="1"))
        OmegaConf.resolve(config)
        estimate = memory.estimate_from_config(config)
        row = f"| {scale} | {memory.token_budgets(config)['actor_rollout_ref.actor.ppo_max_token_len_per_gpu']:,} |"
        assert row in readme, row
        line = next(line for line in readme.splitlines() if line.startswith(row))
        assert f"{estimate['total']:.1f}" in line and f"{estimate['rollout_phase']:.1f}" in line, (line, estimate)


# ---------------------------------------------------------------- 3. patch size


def test_dataset_takes_the_processors_patch_size_and_refuses_another(tiny_assets, tmp_path):
    from transformers import AutoProcessor, AutoTokenizer

    from recipe.zppo.trainer.dataset import ZPPODataset

    model = str(tiny_assets["vl-model"])
    processor, tokenizer = AutoProcessor.from_pretrained(model), AutoTokenizer.from_pretrained(model)
    patch = processor.image_processor.patch_size
    assert patch == 16  # the tiny model's processor is Qwen3.5's (data_prep/tiny/models.py), not verl's 14
    files = sorted(str(p) for p in Path(tiny_assets["vl-data"]).glob("train*.parquet"))
    data = _compose(["preset=paper"]).data  # the recipe's data config: image_patch_size null
    assert data.image_patch_size is None
    config = OmegaConf.merge(OmegaConf.to_container(data), {
        "filter_overlong_prompts": False, "cache_dir": str(tmp_path / "cache"), "train_files": files})
    dataset = ZPPODataset(files, tokenizer, config, processor)
    assert dataset.image_patch_size == patch
    config.image_patch_size = 14  # verl's default: refused at start, one line naming the key and both values
    with pytest.raises(ConfigError, match=r"data.image_patch_size=14 but the processor's patch size is 16"):
        ZPPODataset(files, tokenizer, config, processor)
    check_image_patch_size(None, processor)
    check_image_patch_size(16, processor)
    check_image_patch_size(14, None)  # text-only: no processor, nothing to disagree with


# ---------------------------------------------------------------- 4. run folders and length


def test_every_script_and_method_has_its_own_folder(composed):
    folders = {}
    for (run_id, _script, env), config in zip(RUNS, composed.values(), strict=True):
        if env.get("TEACHER_URL"):
            continue  # the same run with its teacher elsewhere: same folder by design
        folders.setdefault(config.trainer.default_local_dir, []).append(run_id)
    clashes = {folder: ids for folder, ids in folders.items() if len(ids) > 1}
    assert not clashes, clashes
    assert len(folders) == len([run for run in RUNS if not run[2].get("TEACHER_URL")])


def test_grpo_matched_reads_the_folder_zppo_writes_with_the_same_script():
    zppo = _compose(_overrides("run_baselines_qwen3_5_2b.sh", METHOD="zppo"))
    matched = _overrides("run_baselines_qwen3_5_2b.sh", METHOD="grpo_matched")
    assert f"zppo.matched.reference={zppo.trainer.default_local_dir}" in matched


@pytest.mark.parametrize("run_id", [run[0] for run in RUNS])
def test_step_count_is_the_papers(run_id, composed):
    # Tab. 8: 200 rollout steps (preset=paper); no script overrides it (else verl's epochs decide: ~18K steps).
    assert composed[run_id].trainer.total_training_steps == 200


# ---------------------------------------------------------------- 5. the paper's hardware layout


def _layout(script: str, **env) -> str:
    import os
    import subprocess

    result = subprocess.run(["bash", str(EXAMPLES / script)], capture_output=True, text=True, timeout=60,
                            env={**os.environ, "ZPPO_DRY_RUN": "1", "HOME": "/home/user", **env})
    assert result.returncode == 0, result.stderr
    return next(line for line in result.stderr.splitlines() if line.startswith("layout:"))


@pytest.mark.parametrize("nnodes", ["1", "8"])
def test_dry_run_prints_the_papers_layout(nnodes, composed):
    line = _layout("run_zppo_multinode.sh", SCALE="2b", NNODES=nnodes)
    # Tab. 8: the student on 6 of every 8 GPUs, the teacher (and judge) on the other 2.
    assert f"{nnodes} node(s); student (verl/FSDP) on 6 GPUs per node ({int(nnodes) * 6} in all" in line, line
    assert "teacher (and judge) served by the run with vllm on GPUs 6,7" in line
    config = _compose(_overrides("run_zppo_multinode.sh", SCALE="2b", NNODES=nnodes))
    assert config.trainer.nnodes == int(nnodes) and config.trainer.n_gpus_per_node == 6
    # Tab. 8's batch (384 x G_S rows a step, mini-batches of 96 prompts) divides over the student GPUs.
    rows = config.data.train_batch_size * config.actor_rollout_ref.rollout.n
    assert rows % (int(nnodes) * 6) == 0 and config.actor_rollout_ref.actor.ppo_mini_batch_size == 96
    # the multi-node script's default is the paper's 8 nodes
    assert composed["run_zppo_multinode.sh:2b:served_by_the_run"].trainer.nnodes == 8
    line = _layout("run_zppo_qwen3_5_4b.sh", TEACHER_URL="http://teacher:8000/v1")
    assert "on 8 GPUs per node (8 in all" in line and "teacher at http://teacher:8000/v1" in line


# ---------------------------------------------------------------- 6. online teacher on GPU

# ours: the slowest decode we plan for, per sequence, on a loaded 27B-FP8 vLLM server (tokens a second).
SLOWEST_DECODE = 8.0


@pytest.mark.parametrize("run_id", [run[0] for run in RUNS if "baselines" not in run[0]])
def test_teacher_client_waits_for_a_full_answer(run_id, composed):
    teacher = composed[run_id].zppo.teacher
    assert teacher.max_tokens == 12288  # Tab. 8
    assert teacher.client.timeout_s >= teacher.max_tokens / SLOWEST_DECODE, teacher.client.timeout_s
