#!/usr/bin/env bash
# ZPPO on a CPU with the tiny offline assets (what `make demo` runs). Extra Hydra overrides are passed through:
#   bash examples/run_cpu_tiny.sh trainer.total_training_steps=5
set -euo pipefail
TINY_DIR=${TINY_DIR:-.cache/tiny}
python -m data_prep.tiny --out "$TINY_DIR" --teacher-responses 2
ZPPO_TINY_DIR="$TINY_DIR" python -m recipe.zppo.main_zppo preset=cpu "$@"
