#!/usr/bin/env bash
# ZPPO on a multi-node Ray cluster: NNODES nodes x 8 GPUs (80 GB each), any student size (SCALE=0.8b|2b|4b|9b).
# Start Ray first: `ray start --head` on the first node, `ray start --address=<head>:6379` on the others, then
# run this on the head node with RAY_ADDRESS=<head>:6379 (the run attaches to that cluster).
# The teacher: best served elsewhere (TEACHER_URL, e.g. `vllm serve` on its own nodes); without it the run serves it
# on the head node's TEACHER_GPUS and the student takes 6 GPUs on every node.
# Usage: SCALE=9b NNODES=8 MODEL=... DATA=... bash examples/run_zppo_multinode.sh [hydra overrides]
# Not run in CI (no GPU there); its overrides are composed with Hydra by tests/unit/test_examples.py.
source "$(dirname "$0")/_common.sh"
SCALE=${SCALE:-9b}
NNODES=${NNODES:-8}  # Tab. 8: 8 nodes x 8 GPUs
MODEL=${MODEL:-$(zppo_default_model "$SCALE")}
# The paper's batch (preset=paper: 384 questions x 8 rollouts a step) whatever the cluster's size: more nodes make a
# step faster, not larger. verl needs the student's GPU count (NNODES x 6, or x 8 with TEACHER_URL) to divide 3,072.
ZPPO_ARGS=(method=zppo "actor_rollout_ref.model.path=$MODEL" "trainer.nnodes=$NNODES")
zppo_node_gpus
zppo_common_args "zppo_qwen3_5_${SCALE/./_}_${NNODES}nodes"
zppo_scale_args "$SCALE"
zppo_launch "$@"
