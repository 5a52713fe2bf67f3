#!/usr/bin/env bash
# ZPPO, Qwen3.5-0.8B student, Qwen3.5-27B-FP8 teacher served by the run on 2 of the 8 GPUs (or at TEACHER_URL), fresh
# teacher rollouts and candidate compression every step, as the paper. One node: 8 x 80 GB GPUs (memory per GPU: examples/README.md, "Memory").
# Usage: MODEL=... DATA=... bash examples/run_zppo_qwen3_5_0_8b.sh [hydra overrides]   (see examples/README.md)
# Not run in CI (no GPU there); its overrides are composed with Hydra by tests/unit/test_examples.py.
source "$(dirname "$0")/_common.sh"
zppo_single_node 0.8b "$@"
