"""``actor_rollout_ref.rollout.name=hf``: a rollout engine on Hugging Face ``generate`` for CPU-only machines.

verl 0.9.1's rollouts (vLLM, SGLang, TensorRT-LLM) are async inference servers that need an accelerator. This
module supplies the three pieces verl's V1 trainer expects from a rollout backend, built the same way:

- :class:`HFRolloutServer`: a Ray actor holding the model. ``generate`` is token-in/token-out like vLLM's server:
  it returns the sampled tokens, the log-probability of each sampled token under the sampling distribution
  (``log_softmax(logits / temperature)``, what verl's actor recomputes), and, when ``prompt_logprobs`` is asked
  for (verl's on-policy distillation teachers), the per-position prompt log-probs in vLLM's layout.
  Concurrent requests are gathered into one batched ``generate`` call.
- :class:`HFReplica`: registered with ``RolloutReplicaRegistry.register("hf", ...)`` (verl's public registry);
  launches one server per replica next to the hybrid actor workers.
- :class:`HFServerAdapter`: the worker-side adapter. verl picks it from ``verl.workers.rollout.base
  ._ROLLOUT_REGISTRY`` (a private dict: verl has no public call to register an adapter, so one entry is added
  there). ``update_weights`` gathers the actor's full tensors and hands them to the server over Ray's object
  store, which is what keeps rollout and actor log-probs in agreement after every step.

Everything here is CPU-only and meant for small models (CI, demos); on GPUs use vLLM or SGLang.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import time
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

import torch

logger = logging.getLogger(__name__)

ROLLOUT_NAME = "hf"
SERVER_NAME_PREFIX = "hf_"
# How long the server waits for more concurrent requests before running a batch (seconds).
BATCH_GATHER_WINDOW_S = float(os.environ.get("ZPPO_HF_ROLLOUT_GATHER_S", "0.02"))


def _sampling_key(params: dict[str, Any]) -> tuple:
    """Requests with the same key can share one ``generate`` call."""
    return (
        float(params.get("temperature", 1.0)),
        float(params.get("top_p", 1.0)),
        int(params.get("top_k", -1) or -1),
        float(params.get("repetition_penalty", 1.0) or 1.0),
        float(params.get("min_p", 0.0) or 0.0),
        bool(params.get("ignore_eos", False)),
    )


# Sampling keys verl's engines take that transformers' ``generate`` has no equivalent for: ignored, said once.
UNSUPPORTED_SAMPLING = ("presence_penalty", "frequency_penalty")
_warned_unsupported: set[str] = set()


def _warn_unsupported(params: dict[str, Any]) -> None:
    for key in UNSUPPORTED_SAMPLING:
        value = params.get(key)
        if value and key not in _warned_unsupported:
            _warned_unsupported.add(key)
            logger.warning("hf rollout: %s=%s is not applied (transformers' generate has no %s); the other sampling "
                           "keys are", key, value, key)


@dataclass
class _Request:
    prompt_ids: list[int]
    params: dict[str, Any]
    max_new_tokens: int
    want_logprobs: bool
    prompt_logprobs: int | None
    image_data: list[Any] | None
    video_data: list[Any] | None
    future: asyncio.Future = field(repr=False, default=None)


def _load_model_and_processor(model_path: str, trust_remote_code: bool, dtype: torch.dtype):
    """Load the same architecture verl's actor trains (causal LM, or image-text-to-text for VL models)."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForImageTextToText, AutoProcessor, AutoTokenizer

    config = AutoConfig.from_pretrained(model_path, trust_remote_code=trust_remote_code)
    is_vision_language = getattr(config, "vision_config", None) is not None
    auto_cls = AutoModelForImageTextToText if is_vision_language else AutoModelForCausalLM
    model = auto_cls.from_pretrained(model_path, dtype=dtype, trust_remote_code=trust_remote_code,
                                     attn_implementation="sdpa")
    model.eval()
    tokenizer = AutoTokenizer.from_pretrained(model_path, trust_remote_code=trust_remote_code)
    processor = None
    if is_vision_language:
        processor = AutoProcessor.from_pretrained(model_path, trust_remote_code=trust_remote_code)
    return model, tokenizer, processor


class HFRolloutServer:
    """Token-in/token-out generation server on Hugging Face ``generate`` (one Ray actor per replica)."""

    def __init__(self, config, model_config, replica_rank: int = 0, **_unused):
        from .version_guard import require_supported_verl

        require_supported_verl("The 'hf' rollout (actor_rollout_ref.rollout.name=hf)")
        from verl.utils.config import omega_conf_to_dataclass
        from verl.workers.config import HFModelConfig, RolloutConfig

        self.config = (
            omega_conf_to_dataclass(config, RolloutConfig) if not isinstance(config, RolloutConfig) else config
        )
        self.model_config = (
            omega_conf_to_dataclass(model_config, HFModelConfig)
            if not isinstance(model_config, HFModelConfig)
            else model_config
        )
        self.replica_rank = replica_rank
        dtype = getattr(torch, str(self.config.dtype).replace("torch.", ""))
        model_path = self.model_config.local_path or self.model_config.path
        self.model, self.tokenizer, self.processor = _load_model_and_processor(
            model_path, self.model_config.trust_remote_code, dtype
        )
        generation_eos = self.model.generation_config.eos_token_id
        eos = generation_eos if generation_eos is not None else self.tokenizer.eos_token_id
        self.eos_token_ids = set(eos if isinstance(eos, list) else [eos])
        pad = self.tokenizer.pad_token_id
        self.pad_token_id = pad if pad is not None else min(self.eos_token_ids)
        self.global_steps: int | None = None
        self.weight_version = 0
        self._queue: list[_Request] = []
        self._worker_task: asyncio.Task | None = None
        self._wakeup: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # ---------------------------------------------------------------- generation

    def _max_new_tokens(self, prompt_len: int, params: dict[str, Any]) -> int:
        limit = params.pop("max_tokens", None) or params.pop("max_new_tokens", None)
        if limit is None:
            limit = min(
                self.config.response_length, self.config.prompt_length + self.config.response_length - prompt_len
            )
        max_model_len = self.config.max_model_len or (self.config.prompt_length + self.config.response_length)
        return max(1, min(int(limit), max_model_len - prompt_len))

    async def generate(
        self,
        prompt_ids: list[int],
        sampling_params: dict[str, Any],
        request_id: str,
        image_data: list[Any] | None = None,
        video_data: list[Any] | None = None,
        **_unused,
    ):
        from verl.workers.rollout.replica import TokenOutput

        params = dict(sampling_params)
        prompt_ids = [int(t) for t in prompt_ids]
        request = _Request(
            prompt_ids=prompt_ids,
            params=params,
            max_new_tokens=self._max_new_tokens(len(prompt_ids), params),
            want_logprobs=bool(params.pop("logprobs", False)),
            prompt_logprobs=params.pop("prompt_logprobs", None),
            image_data=image_data,
            video_data=video_data,
        )
        if video_data:
            raise NotImplementedError("The 'hf' rollout does not take video inputs; use vLLM on GPUs.")
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # (Ray runs one loop for the actor's life; plain asyncio.run calls do not)
            self._loop, self._queue, self._wakeup, self._worker_task = loop, [], asyncio.Event(), None
        request.future = loop.create_future()
        self._queue.append(request)
        self._wakeup.set()
        if self._worker_task is None or self._worker_task.done():
            self._worker_task = asyncio.create_task(self._serve_forever())
        token_ids, log_probs, extra = await request.future
        return TokenOutput(
            token_ids=token_ids,
            log_probs=log_probs if request.want_logprobs else None,
            stop_reason="completed",
            extra_fields={"global_steps": self.global_steps, "weight_version": self.weight_version, **extra},
        )

    async def _serve_forever(self):
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            # Let the rest of a burst of concurrent requests arrive, then run them together.
            await asyncio.sleep(BATCH_GATHER_WINDOW_S)
            pending, self._queue = self._queue, []
            if not pending:
                continue
            groups: dict[tuple, list[_Request]] = {}
            for request in pending:
                groups.setdefault(_sampling_key(request.params), []).append(request)
            for batch in groups.values():
                try:
                    results = await asyncio.to_thread(self._run_batch, batch)
                except Exception as error:  # surface the error on every waiting request, keep serving
                    logger.exception("hf rollout batch failed")
                    for request in batch:
                        if not request.future.done():
                            request.future.set_exception(error)
                    continue
                for request, result in zip(batch, results, strict=True):
                    if not request.future.done():
                        request.future.set_result(result)

    def _vision_inputs(self, batch: list[_Request], input_ids: torch.Tensor) -> dict[str, torch.Tensor]:
        images = [image for request in batch for image in (request.image_data or [])]
        if not images:
            return {}
        if self.processor is None:
            raise ValueError("Images were sent to the 'hf' rollout but the model has no image processor.")
        vision = dict(self.processor.image_processor(images=images, return_tensors="pt"))
        # Which tokens are image tokens: without it Qwen-VL models silently fall back to text positions for the
        # image (no M-RoPE), and the rollout's log-probs no longer match the actor's.
        if hasattr(self.processor, "create_mm_token_type_ids"):
            vision["mm_token_type_ids"] = torch.tensor(self.processor.create_mm_token_type_ids(input_ids.tolist()))
        return vision

    @torch.no_grad()
    def _run_batch(self, batch: list[_Request]) -> list[tuple[list[int], list[float], dict]]:
        params = batch[0].params
        temperature = float(params.get("temperature", 1.0))
        do_sample = temperature > 0
        top_k = int(params.get("top_k", -1) or -1)
        min_p = float(params.get("min_p", 0.0) or 0.0)
        _warn_unsupported(params)
        max_new_tokens = max(request.max_new_tokens for request in batch)

        # Left-pad prompts into one tensor.
        width = max(len(request.prompt_ids) for request in batch)
        input_ids = torch.full((len(batch), width), self.pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, request in enumerate(batch):
            input_ids[row, width - len(request.prompt_ids) :] = torch.tensor(request.prompt_ids)
            attention_mask[row, width - len(request.prompt_ids) :] = 1
        model_inputs = {"input_ids": input_ids, "attention_mask": attention_mask,
                        **self._vision_inputs(batch, input_ids)}

        output = self.model.generate(
            **model_inputs,
            do_sample=do_sample,
            temperature=temperature if do_sample else None,
            top_p=float(params.get("top_p", 1.0)) if do_sample else None,
            top_k=top_k if (do_sample and top_k > 0) else None,
            min_p=min_p if (do_sample and min_p > 0) else None,
            repetition_penalty=float(params.get("repetition_penalty", 1.0) or 1.0),
            max_new_tokens=max_new_tokens,
            pad_token_id=self.pad_token_id,
            eos_token_id=None if params.get("ignore_eos") else sorted(self.eos_token_ids),
            output_logits=True,
            return_dict_in_generate=True,
        )
        new_tokens = output.sequences[:, width:]
        # Log-probs of the sampled tokens under the sampling distribution before top-k/top-p filtering,
        # which is what verl's actor recomputes (logits / temperature).
        logits = torch.stack(output.logits, dim=1).float()
        if do_sample:
            logits = logits / temperature
        token_logprobs = torch.log_softmax(logits, dim=-1).gather(-1, new_tokens.unsqueeze(-1)).squeeze(-1)

        results = []
        for row, request in enumerate(batch):
            tokens = new_tokens[row].tolist()[: request.max_new_tokens]
            length = len(tokens)
            if not params.get("ignore_eos"):
                for position, token in enumerate(tokens):
                    if token in self.eos_token_ids:
                        length = position + 1
                        break
            extra = {}
            if request.prompt_logprobs is not None:
                extra.update(self._prompt_logprobs(request, int(request.prompt_logprobs)))
            results.append((tokens[:length], token_logprobs[row, :length].tolist(), extra))
        return results

    def _prompt_logprobs(self, request: _Request, top_k: int) -> dict[str, list]:
        """Per-position prompt log-probs in vLLM's layout (what verl's distillation teacher loop reads).

        Entry i (0 <= i < L-1) describes prompt token i+1 given tokens 0..i: ``[logprob]`` of the actual token when
        ``top_k == 0``, else the top-k (ids, logprobs) by rank; a dummy entry pads the end to length L.
        """
        ids = torch.tensor([request.prompt_ids])
        model_inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids), **self._vision_inputs([request], ids)}
        logprobs = torch.log_softmax(self.model(**model_inputs).logits[0, :-1].float(), dim=-1)
        if top_k == 0:
            actual = ids[0, 1:]
            values = logprobs.gather(-1, actual.unsqueeze(-1))
            prompt_ids, prompt_logprobs = actual.unsqueeze(-1).tolist(), values.tolist()
        else:
            top = torch.topk(logprobs, k=top_k, dim=-1)
            prompt_ids, prompt_logprobs = top.indices.tolist(), top.values.tolist()
        width = max(top_k, 1)
        prompt_ids.append([0] * width)
        prompt_logprobs.append([0.0] * width)
        return {"prompt_ids": prompt_ids, "prompt_logprobs": prompt_logprobs}

    # ---------------------------------------------------------------- weights

    def update_weights(self, named_tensors: dict[str, torch.Tensor], global_steps: int | None = None) -> dict:
        """Load the actor's full tensors; every parameter of the rollout model must be covered by name."""
        state = self.model.state_dict()
        unknown = sorted(set(named_tensors) - set(state))
        if unknown:
            raise KeyError(f"hf rollout: {len(unknown)} weights from the actor match no rollout parameter, "
                           f"e.g. {unknown[:3]}")
        missing = sorted(name for name in state if name not in named_tensors and not self._is_tied(name))
        if missing:
            raise KeyError(f"hf rollout: the actor sent no value for {len(missing)} parameters, e.g. {missing[:3]}")
        with torch.no_grad():
            for name, tensor in named_tensors.items():
                state[name].copy_(tensor.to(state[name].dtype))
        self.weight_version += 1
        if global_steps is not None:
            self.global_steps = global_steps
        return {"weight_version": self.weight_version, "num_tensors": len(named_tensors)}

    def _is_tied(self, name: str) -> bool:
        tied = getattr(self.model, "_tied_weights_keys", None) or []
        return name in (tied if isinstance(tied, (list, tuple, set)) else list(tied))

    def get_weight_version(self) -> int:
        return self.weight_version

    # ---------------------------------------------------------------- lifecycle no-ops
    # The model lives in CPU memory: there is no KV-cache pool or device memory to release or resume.

    async def wake_up(self, tags: list[str] | None = None):
        return None

    async def sleep(self):
        return None

    async def clear_kv_cache(self):
        return None

    async def release_kv_cache(self):
        return None

    async def resume_kv_cache(self):
        return None

    async def set_global_steps(self, global_steps: int):
        self.global_steps = global_steps

    async def wait_for_requests_to_drain(self):
        while self._queue:
            await asyncio.sleep(0.01)

    async def abort_all_requests(self, reset_prefix_cache: bool = True, reject_request: bool = False):
        return {"aborted_count": 0, "request_ids": []}

    async def abort_request(self, request_id: str, reset_prefix_cache: bool = True):
        return {"aborted": False, "request_id": request_id}

    async def resume_generation(self):
        return None

    async def start_profile(self, **kwargs):
        return None

    async def stop_profile(self):
        return None

    def get_server_address(self) -> tuple[str, int]:
        # No HTTP front end: verl reaches this server through its Ray handle (token-in/token-out).
        return "hf-rollout", 0


@functools.cache
def build_replica_class():
    """Build :class:`HFReplica` lazily, so importing this module does not import verl's rollout stack."""
    import ray
    from verl.workers.rollout.replica import RolloutReplica

    class HFReplica(RolloutReplica):
        """One :class:`HFRolloutServer` per replica, placed on the node of the replica's first worker."""

        async def launch_servers(self):
            if self.world_size != 1:
                raise ValueError(
                    "The 'hf' rollout runs one process per replica: set actor_rollout_ref.rollout."
                    "tensor_model_parallel_size=1 (and data/pipeline parallel size 1)."
                )
            worker = self.workers[0]
            node_id = await worker.__ray_call__.remote(lambda self: ray.get_runtime_context().get_node_id())
            name = f"{SERVER_NAME_PREFIX}server_{self.replica_rank}_0{self.name_suffix}"
            server = (
                ray.remote(HFRolloutServer)
                .options(
                    scheduling_strategy=ray.util.scheduling_strategies.NodeAffinitySchedulingStrategy(
                        node_id=node_id, soft=False
                    ),
                    name=name,
                    num_cpus=0,
                    max_concurrency=self.max_concurrency,
                    runtime_env={"env_vars": {"OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}},
                )
                .remote(config=self.config, model_config=self.model_config, replica_rank=self.replica_rank)
            )
            self.servers = [server]
            self._server_handle = server
            self._server_address = f"{SERVER_NAME_PREFIX}{self.replica_rank}:{name}"

        def rollout_worker_use_gpu(self) -> bool:
            return False

    return HFReplica


def build_server_adapter_class():
    """Build :class:`HFServerAdapter` lazily (it subclasses verl's ``BaseRollout``)."""
    import ray
    from verl.workers.rollout.base import BaseRollout

    from .version_guard import require_supported_verl

    require_supported_verl("The 'hf' rollout (actor_rollout_ref.rollout.name=hf)")

    class HFServerAdapter(BaseRollout):
        """Worker-side client of the replica's :class:`HFRolloutServer`: resumes, releases, updates weights."""

        def __init__(self, config, model_config, device_mesh, replica_rank: int = -1):
            super().__init__(config, model_config, device_mesh)
            # One process per replica (tensor parallel size 1), so the worker's rank is its replica's rank.
            rank = int(os.environ.get("RANK", "0"))
            self.replica_rank = rank if replica_rank == -1 else replica_rank
            self._server = None

        def _server_handle(self):
            if self._server is None:
                self._server = ray.get_actor(f"{SERVER_NAME_PREFIX}server_{self.replica_rank}_0")
            return self._server

        async def resume(self, tags: list[str]):
            return None

        async def release(self):
            return None

        @torch.no_grad()
        async def update_weights(
            self,
            weights: Generator[tuple[str, torch.Tensor], None, None],
            global_steps: int = None,
            wire_format: str = "named_tensors",
            **kwargs,
        ):
            if wire_format != "named_tensors":
                raise ValueError("The 'hf' rollout takes full tensors (wire_format='named_tensors'), "
                                 f"not {wire_format!r}")
            start = time.time()
            named_tensors = {}
            for name, tensor in weights:
                if hasattr(tensor, "full_tensor"):  # DTensor shards from FSDP2
                    tensor = tensor.full_tensor()
                named_tensors[name] = tensor.detach().to("cpu", copy=True)
            result = await self._server_handle().update_weights.remote(named_tensors, global_steps)
            logger.info("hf rollout: updated %d tensors in %.2fs", result["num_tensors"], time.time() - start)

    return HFServerAdapter


def register_hf_rollout() -> None:
    """Make ``rollout.name=hf`` resolvable by verl (replica through the public registry, adapter by module path)."""
    from verl.workers.rollout import base as rollout_base
    from verl.workers.rollout.replica import RolloutReplicaRegistry

    RolloutReplicaRegistry.register(ROLLOUT_NAME, build_replica_class)
    # verl resolves adapters from this private dict by "module.attr" path; HFServerAdapter is built on first use.
    rollout_base._ROLLOUT_REGISTRY[(ROLLOUT_NAME, "async")] = f"{__name__}.HFServerAdapter"


def __getattr__(name: str):
    # Module-level lazy attribute: verl imports "verl_patches.hf_rollout" and reads HFServerAdapter from it.
    if name == "HFServerAdapter":
        adapter = build_server_adapter_class()
        globals()["HFServerAdapter"] = adapter
        return adapter
    raise AttributeError(name)
