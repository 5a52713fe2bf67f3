#!/usr/bin/env bash
# ZPPO, Qwen3.5-2B student, one node of 8 GPUs, offline teacher responses stored in the data (see README).
# Not run in this repository's CI (no GPU there); the values follow the paper where it gives them (n=8,
# hard/admission/graduation thresholds 0.5) and are ours otherwise (see recipe/zppo/config/zppo_trainer.yaml).
set -euo pipefail
MODEL=${MODEL:-Qwen/Qwen3.5-2B}
DATA=${DATA:-$HOME/data/zppo77k}
python -m recipe.zppo.main_zppo \
    actor_rollout_ref.model.path="$MODEL" \
    data.train_files="$DATA/train.parquet" data.val_files="$DATA/val.parquet" \
    data.train_batch_size=128 data.max_prompt_length=8192 data.max_response_length=4096 \
    actor_rollout_ref.rollout.name=vllm actor_rollout_ref.rollout.n=8 \
    actor_rollout_ref.rollout.tensor_model_parallel_size=1 actor_rollout_ref.rollout.gpu_memory_utilization=0.6 \
    actor_rollout_ref.actor.ppo_mini_batch_size=32 actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=4 \
    actor_rollout_ref.actor.optim.lr=1e-6 actor_rollout_ref.actor.use_kl_loss=false \
    actor_rollout_ref.actor.strategy=fsdp2 actor_rollout_ref.ref.strategy=fsdp2 \
    actor_rollout_ref.model.enable_gradient_checkpointing=true \
    trainer.n_gpus_per_node=8 trainer.nnodes=1 trainer.save_freq=50 trainer.test_freq=50 \
    trainer.experiment_name=zppo_qwen3_5_2b "$@"
