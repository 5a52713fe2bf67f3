#!/usr/bin/env bash
# Every row of the paper's Tabs 1-4 at one scale (Qwen3.5-2B student), same data, same settings (preset=paper,
# Table 8, 200 steps); examples/README.md says which method is which row of which table.
#   METHOD=<name> bash examples/run_baselines_qwen3_5_2b.sh [hydra overrides]   one method
#   TEACHER_URL=<url> bash examples/run_baselines_qwen3_5_2b.sh [hydra overrides]  every row below, one after the
#                                                  other (TEACHER_URL: the off-policy rows' fresh teacher rollouts)
# The rows (PAPER_ROWS): off_policy_distill, off_policy_distill_buffer, on_policy_distill, on_policy_distill_buffer
# (Tab. 1, the † ones also Tab. 2), grpo, grpo_buffer (Tabs 1-4), grpo_both, grpo_buffer_bcq (Tabs 3-4),
# grpo_buffer_ncq (Tab. 3), hint, prefix (Tab. 4), zppo (every table). Ours, not rows of the paper: grpo_verl (verl's
# GRPO estimator) and grpo_matched (GRPO† given a ZPPO run's generated tokens).
# One node of 8 x 80 GB GPUs. Methods with a served teacher (zppo, grpo_both, grpo_buffer_bcq, grpo_buffer_ncq, hint,
# prefix: fresh teacher rollouts, compressions or hints) have the run serve TEACHER_MODEL on TEACHER_GPUS (or use
# TEACHER_URL) and train on the other 6, as _common.sh says. The on-policy distillation methods serve the Qwen3.5-27B
# teacher (TEACHER_PATH) on 2 of the 8 GPUs (its own resource pool) and train the student on the other 6; the
# off-policy ones (Algorithm 2) also need a served teacher elsewhere for their fresh rollouts (TEACHER_URL).
# grpo_matched spends what a ZPPO run spent (cumulative generated tokens, step by step): run METHOD=zppo with this
# script first (same batch and steps); REFERENCE is that run's folder (default: where METHOD=zppo writes it).
# Not run in CI (no GPU there); its overrides are composed with Hydra by tests/unit/test_examples.py.
PAPER_ROWS=(off_policy_distill off_policy_distill_buffer on_policy_distill on_policy_distill_buffer grpo grpo_buffer
            grpo_both grpo_buffer_bcq grpo_buffer_ncq hint prefix zppo)
if [[ -z "${METHOD:-}" ]]; then
    # checked before the first run, not hours later at the off-policy rows
    : "${TEACHER_URL:?every row includes off-policy distillation, whose fresh teacher rollouts need TEACHER_URL}"
    for row in "${PAPER_ROWS[@]}"; do
        METHOD=$row bash "$0" "$@" || { echo "run_baselines: METHOD=$row failed" >&2; exit 1; }
    done
    exit 0
fi
source "$(dirname "$0")/_common.sh"
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
    zppo|grpo_both|grpo_buffer_bcq|grpo_buffer_ncq|hint|prefix) zppo_node_gpus ;;  # the teacher's rollouts/compressions/hints
    *) ZPPO_ARGS+=("trainer.n_gpus_per_node=$STUDENT_GPU_COUNT") ;;
esac
zppo_common_args "${METHOD}_qwen3_5_2b_baselines"  # not run_zppo_qwen3_5_2b.sh's folder (METHOD=zppo)
zppo_scale_args 2b
zppo_launch "$@"
