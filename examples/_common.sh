# Sourced by the GPU run scripts of this folder (not run by itself). Every script runs preset=paper (Table 8:
# optimiser, clipping, loss, batch, lengths, steps, G_S/G_T, sampling, buffer; recipe/zppo/config/preset/paper.yaml)
# and adds only what the paper leaves to the machine: the student model, the GPU layout, micro-batches and memory
# knobs. Environment variables a user sets (all optional except where noted):
#   MODEL        student model (hub id or local folder); default: the script's Qwen3.5 size
#   DATA         folder of the ZPPO-77K builder's output (data_prep.build_zppo77k: train-*.parquet shards, val.parquet)
#   TEACHER_DATA folder of data_prep.teacher_responses' output for those shards (default: $DATA, i.e. responses
#                written in place of the builder's shards); TRAIN_FILES / VAL_FILES override both
#   TEACHER_MODEL  the frozen teacher (default Qwen/Qwen3.5-27B-FP8, the paper's). The run serves it itself with
#                `vllm serve` on TEACHER_GPUS (default 6,7: the paper's 2 of every 8 GPUs, one replica per GPU) and
#                trains the student on the other 6 (STUDENT_GPUS, default 0-5)
#   TEACHER_URL  instead, an OpenAI-compatible endpoint already serving TEACHER_MODEL (e.g. `vllm serve` on other
#                machines): the student then takes all 8 GPUs
#   OUT          checkpoint/metrics folder (default $HOME/zppo_runs/<experiment>: <method>_qwen3_5_<size>, with
#                _baselines for run_baselines_qwen3_5_2b.sh and _<N>nodes for run_zppo_multinode.sh, one per script
#                and method)
#   ZPPO_DRY_RUN=1  print the resolved layout (stderr) and the command's Hydra overrides (one per line) instead of running it; the test suite uses
#                this to compose every script's overrides with Hydra, without running anything.
set -euo pipefail

DATA=${DATA:-$HOME/data/zppo77k}
TEACHER_DATA=${TEACHER_DATA:-$DATA}
TRAIN_FILES=${TRAIN_FILES:-$TEACHER_DATA/train-*.parquet}
VAL_FILES=${VAL_FILES:-$DATA/val.parquet}
TEACHER_MODEL=${TEACHER_MODEL:-Qwen/Qwen3.5-27B-FP8}
TEACHER_GPUS=${TEACHER_GPUS:-6,7}
STUDENT_GPUS=${STUDENT_GPUS:-0,1,2,3,4,5}

# Shared by every scale: the paper's values (preset=paper), the data, vLLM rollout, checkpoint and validation
# every 50 steps (ours), the run's folder and the teacher.
zppo_common_args() {
    local experiment=$1
    # Every script and method has its own folder (a shared one would make the second run resume the first)
    ZPPO_RUN_DIR=${OUT:-$HOME/zppo_runs/$experiment}
    ZPPO_ARGS+=(
        preset=paper
        "data.train_files=$TRAIN_FILES" "data.val_files=$VAL_FILES"
        actor_rollout_ref.rollout.name=vllm
        trainer.save_freq=50 trainer.test_freq=50
        "trainer.experiment_name=$experiment" "trainer.default_local_dir=$ZPPO_RUN_DIR"
    )
    ZPPO_ARGS+=("zppo.teacher.server.model=$TEACHER_MODEL")
    if [[ -n "${TEACHER_URL:-}" ]]; then
        ZPPO_ARGS+=("zppo.teacher.server.url=$TEACHER_URL")
    fi
}

# GPUs of one node for the student (verl, through Ray) and, when the run serves the teacher, for the teacher.
zppo_node_gpus() {
    if [[ -n "${TEACHER_URL:-}" ]]; then
        ZPPO_ARGS+=(trainer.n_gpus_per_node=8)
        return
    fi
    local teacher_gpus
    IFS=, read -ra teacher_gpus <<< "$TEACHER_GPUS"
    export CUDA_VISIBLE_DEVICES=$STUDENT_GPUS  # what Ray and verl see; the teacher's server gets its own
    ZPPO_ARGS+=("trainer.n_gpus_per_node=$(( $(tr -cd , <<< "$STUDENT_GPUS" | wc -c) + 1 ))"
                zppo.teacher.server.engine=vllm "zppo.teacher.server.devices='$TEACHER_GPUS'"
                "zppo.teacher.server.extra_args=[--data-parallel-size,${#teacher_gpus[@]}]")
}

# Per student size: token-budget micro-batches and rollout parallelism sized for 80 GB GPUs (H100/H200/A100-80G).
# BCQ/NCQ rows are much longer than plain ones and sit next to each other in the batch, so a fixed count of rows
# per micro-batch meets them together (ours): verl's dynamic batching (use_dynamic_bsz) packs rows up to a token
# budget per GPU instead, for the update and for the old log-probs (rollout/ref budgets follow the actor's). Each
# budget must hold the longest row: rollout.prompt_length (BCQ/NCQ prompts included) + data.max_response_length;
# with preset=paper that is at most 4,096 + 8 x (512 + 256) + 1,024 + 12,288 = 23,552 tokens
# (recipe/zppo/trainer/memory.py: longest_row_bound; the run refuses a smaller budget at start, preflight.py).
# Micro-batches only split the gradient accumulation: the update is the same. The memory each budget costs is in
# examples/README.md ("Memory"), computed by recipe/zppo/trainer/memory.py.
zppo_scale_args() {
    local budget
    case "$1" in 0.8b) budget=49152 ;; 2b) budget=49152 ;; 4b) budget=24576 ;; 9b) budget=24576 ;;
        *) echo "unknown scale '$1' (0.8b, 2b, 4b, 9b)" >&2; exit 2 ;; esac
    ZPPO_TOKEN_BUDGET=$budget
    ZPPO_ARGS+=(actor_rollout_ref.actor.use_dynamic_bsz=true
                "actor_rollout_ref.actor.ppo_max_token_len_per_gpu=$budget"
                "actor_rollout_ref.rollout.log_prob_max_token_len_per_gpu=$budget"
                # entropy over 248K-vocabulary logits in chunks of 2,048 tokens, not one fp32 copy of them all
                actor_rollout_ref.actor.entropy_from_logits_with_chunking=true
                actor_rollout_ref.ref.entropy_from_logits_with_chunking=true
                # shuffled mini-batches: each of the I mini-batches mixes plain, replayed, BCQ and NCQ rows, so every
                # update sees the step's loss weighting rather than one kind at a time (ours)
                actor_rollout_ref.actor.shuffle=true)
    case "$1" in
        0.8b) ZPPO_ARGS+=(actor_rollout_ref.rollout.tensor_model_parallel_size=1
                          actor_rollout_ref.rollout.gpu_memory_utilization=0.6) ;;
        2b)   ZPPO_ARGS+=(actor_rollout_ref.rollout.tensor_model_parallel_size=1
                          actor_rollout_ref.rollout.gpu_memory_utilization=0.6) ;;
        4b)   ZPPO_ARGS+=(actor_rollout_ref.rollout.tensor_model_parallel_size=1
                          actor_rollout_ref.rollout.gpu_memory_utilization=0.5) ;;
        9b)   ZPPO_ARGS+=(actor_rollout_ref.rollout.tensor_model_parallel_size=2
                          actor_rollout_ref.rollout.gpu_memory_utilization=0.5
                          actor_rollout_ref.actor.fsdp_config.param_offload=false) ;;
    esac
}

# The hub id of the Qwen3.5 student of a size (0.8b -> Qwen/Qwen3.5-0.8B).
zppo_default_model() { echo "Qwen/Qwen3.5-${1^^}"; }

# The single-node ZPPO run of one student size (what run_zppo_qwen3_5_<size>.sh runs): the paper's batch (384 new
# questions a step, 4 mini-batches) on one node of 8 GPUs, so a step takes longer than on the paper's 8 nodes.
zppo_single_node() {
    local scale=$1
    shift
    ZPPO_ARGS=(method=zppo "actor_rollout_ref.model.path=${MODEL:-$(zppo_default_model "$scale")}" trainer.nnodes=1)
    zppo_node_gpus
    zppo_common_args "zppo_qwen3_5_${scale/./_}"
    zppo_scale_args "$scale"
    zppo_launch "$@"
}

# The resolved hardware layout, one line (printed to stderr by a dry run, and before a real run starts).
zppo_layout() {
    local nnodes=1 per_node=8 item
    for item in "${ZPPO_ARGS[@]}"; do
        case "$item" in trainer.nnodes=*) nnodes=${item#*=} ;; trainer.n_gpus_per_node=*) per_node=${item#*=} ;; esac
    done
    local teacher="teacher at ${TEACHER_URL:-?} (served elsewhere)"
    if [[ " ${ZPPO_ARGS[*]} " == *" zppo.teacher.server.engine=vllm "* ]]; then
        teacher="teacher (and judge) served by the run with vllm on GPUs $TEACHER_GPUS of the head node"
    elif [[ -z "${TEACHER_URL:-}" ]]; then
        teacher="no served teacher"
    fi
    echo "layout: $nnodes node(s); student (verl/FSDP) on $per_node GPUs per node ($(( nnodes * per_node )) in all${CUDA_VISIBLE_DEVICES:+, CUDA_VISIBLE_DEVICES=$CUDA_VISIBLE_DEVICES});" \
         "$teacher;" \
         "token budget per GPU ${ZPPO_TOKEN_BUDGET:-?}; run folder ${ZPPO_RUN_DIR:-?}"
}

zppo_launch() {
    zppo_layout >&2
    if [[ "${ZPPO_DRY_RUN:-0}" == "1" ]]; then
        printf '%s\n' "${ZPPO_ARGS[@]}" "$@"
        return 0
    fi
    exec python -m recipe.zppo.main_zppo "${ZPPO_ARGS[@]}" "$@"
}
