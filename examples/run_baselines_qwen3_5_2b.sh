#!/usr/bin/env bash
# Every method of the paper's comparison at one scale (Qwen3.5-2B student), one run per call, same data, same
# settings (preset=paper, 200 steps): METHOD=<name> bash examples/run_baselines_qwen3_5_2b.sh [hydra overrides]
#   grpo, grpo_verl, grpo_buffer, grpo_matched, grpo_buffer_bcq, grpo_buffer_ncq, zppo, hint, prefix,
#   on_policy_distill, on_policy_distill_buffer, off_policy_distill, off_policy_distill_buffer
#   (table: examples/README.md)
# One node of 8 x 80 GB GPUs. The distillation methods have verl serve the Qwen3.5-27B teacher (TEACHER_PATH) on
# 2 of the 8 GPUs (its own resource pool, rescoring every trajectory) and train the student on the other 6; the
# off-policy ones also need the served teacher that draws the fresh rollouts elsewhere (TEACHER_URL); zppo, grpo_buffer_bcq and
# grpo_buffer_ncq have the run serve TEACHER_MODEL on TEACHER_GPUS (or use TEACHER_URL), as _common.sh says.
# grpo_matched spends what a ZPPO run spent (cumulative generated tokens, step by step): run METHOD=zppo with this
# script first (same batch and steps); REFERENCE is that run's folder (default: where METHOD=zppo writes it).
# Not run in CI (no GPU there); its overrides are composed with Hydra by tests/unit/test_examples.py.
source "$(dirname "$0")/_common.sh"
METHOD=${METHOD:?set METHOD to one of the methods listed at the top of this script}
MODEL=${MODEL:-Qwen/Qwen3.5-2B}
TEACHER_PATH=${TEACHER_PATH:-Qwen/Qwen3.5-27B}
STUDENT_GPU_COUNT=8
ZPPO_ARGS=("method=$METHOD" "actor_rollout_ref.model.path=$MODEL")
case "$METHOD" in
    grpo_matched)
        ZPPO_ARGS+=("zppo.matched.reference=${REFERENCE:-$HOME/zppo_runs/zppo_qwen3_5_2b_baselines}") ;;
    off_policy_distill|off_policy_distill_buffer)
        : "${TEACHER_URL:?off-policy distillation draws fresh teacher rollouts every step: set TEACHER_URL}"
        STUDENT_GPU_COUNT=6
        ZPPO_ARGS+=("distillation.teacher_models.teacher_model.model_path=$TEACHER_PATH"
                    distillation.nnodes=1 distillation.n_gpus_per_node=2
                    distillation.teacher_models.teacher_model.inference.tensor_model_parallel_size=2) ;;
    on_policy_distill|on_policy_distill_buffer)
        STUDENT_GPU_COUNT=6
        ZPPO_ARGS+=("distillation.teacher_models.teacher_model.model_path=$TEACHER_PATH"
                    distillation.nnodes=1 distillation.n_gpus_per_node=2
                    distillation.teacher_models.teacher_model.inference.tensor_model_parallel_size=2) ;;
esac
ZPPO_ARGS+=(trainer.nnodes=1)
case "$METHOD" in
    zppo|grpo_buffer_bcq|grpo_buffer_ncq) zppo_node_gpus ;;  # the teacher draws and compresses candidates
    *) ZPPO_ARGS+=("trainer.n_gpus_per_node=$STUDENT_GPU_COUNT") ;;
esac
zppo_common_args "${METHOD}_qwen3_5_2b_baselines"  # not run_zppo_qwen3_5_2b.sh's folder (METHOD=zppo)
zppo_scale_args 2b
zppo_launch "$@"
