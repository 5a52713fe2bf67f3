#!/usr/bin/env bash
# ZPPO on a multi-node Ray cluster: NNODES nodes x 8 GPUs (80 GB each), any student size (SCALE=0.8b|2b|4b|9b).
# Start Ray first: `ray start --head` on the first node, `ray start --address=<head>:6379` on the others, then
# run this on the head node with RAY_ADDRESS=<head>:6379 (the run attaches to that cluster).
# Usage: SCALE=9b NNODES=4 MODEL=... DATA=... bash examples/run_zppo_multinode.sh [hydra overrides]
# Not run in CI (no GPU there); its overrides are composed with Hydra by tests/unit/test_examples.py.
source "$(dirname "$0")/_common.sh"
SCALE=${SCALE:-9b}
NNODES=${NNODES:-4}
MODEL=${MODEL:-$(zppo_default_model "$SCALE")}
# Batch grows with the cluster (128 questions per node), mini-batches with it: the same updates per step as on
# one node.
ZPPO_ARGS=(method=zppo "actor_rollout_ref.model.path=$MODEL"
           "data.train_batch_size=$((128 * NNODES))" "actor_rollout_ref.actor.ppo_mini_batch_size=$((32 * NNODES))"
           "trainer.nnodes=$NNODES" trainer.n_gpus_per_node=8)
zppo_common_args "zppo_qwen3_5_${SCALE/./_}_${NNODES}nodes"
zppo_scale_args "$SCALE"
zppo_launch "$@"
