"""Generation engines: ``hf`` (Hugging Face ``generate``; CPU or any device) and ``vllm`` (offline ``vllm.LLM``).

Both take ``Request`` objects (rendered prompt, images, per-question seed) and return, per request, k
``Generation`` texts with their finish reason and token counts, or an error status for that request alone.

- ``hf``: one ``generate`` call per question with ``num_return_sequences=k`` (no padding across questions), after
  ``torch.manual_seed(question seed)``: a question's responses depend only on (seed, question id), never on the
  batch or shard it is in. Meant for tests, demos and small teachers.
- ``vllm``: the whole batch in one ``LLM.generate`` call; each request carries its own ``SamplingParams`` with
  ``n=k`` and ``seed=question seed`` (vLLM's per-request seeded sampling). Prompts are rendered by the teacher's
  own chat template (``prompts.Renderer``, the same code as ``hf``) and images go in ``multi_modal_data``.
  vLLM is imported only when this engine is chosen.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from .prompts import Renderer, Request, opened_think

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Sampling:
    k: int
    temperature: float
    top_p: float
    top_k: int
    max_tokens: int


@dataclass
class Generation:
    """The k responses to one request (``status`` "ok"), or why there are none."""

    status: str
    texts: list[str]
    truncated: int = 0  # responses cut at max_tokens (finish reason "length")
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0


class EngineUnavailable(RuntimeError):
    pass


class HFEngine:
    name = "hf"

    def __init__(self, model: str, renderer: Renderer, dtype: str = "auto", device: str = "auto",
                 threads: int | None = None, trust_remote_code: bool = False):
        import torch
        from transformers import AutoModelForCausalLM, AutoModelForImageTextToText

        if threads:
            torch.set_num_threads(threads)
        self.torch = torch
        self.renderer = renderer
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if dtype == "auto":
            dtype = "bfloat16" if device.startswith("cuda") else "float32"
        self.device = device
        auto_cls = AutoModelForImageTextToText if renderer.is_vision_language else AutoModelForCausalLM
        self.model = auto_cls.from_pretrained(model, dtype=getattr(torch, dtype), trust_remote_code=trust_remote_code)
        self.model.to(device).eval()
        tokenizer = renderer.tokenizer
        eos = self.model.generation_config.eos_token_id
        eos = eos if eos is not None else tokenizer.eos_token_id
        self.eos_ids = sorted(set(eos if isinstance(eos, list) else [eos]))
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.eos_ids[0]
        config = getattr(renderer.config, "text_config", None) or renderer.config
        self.context = getattr(config, "max_position_embeddings", None)

    def _inputs(self, request: Request):
        if request.images:
            inputs = self.renderer.processor(text=[request.prompt], images=request.images, return_tensors="pt")
        else:
            inputs = self.renderer.tokenizer(request.prompt, return_tensors="pt", add_special_tokens=False)
        return {k: v.to(self.device) for k, v in inputs.items()}

    def generate(self, requests: list[Request], sampling: Sampling) -> list[Generation]:
        return [self._one(request, sampling) for request in requests]

    def _one(self, request: Request, sampling: Sampling) -> Generation:
        torch = self.torch
        started = time.perf_counter()
        try:
            inputs = self._inputs(request)
        except Exception as error:
            logger.warning("question %s: the processor failed: %s", request.question_id, error)
            return Generation(f"processor_error:{type(error).__name__}", [])
        prompt_len = int(inputs["input_ids"].shape[1])
        max_new = sampling.max_tokens
        if self.context is not None:
            if prompt_len >= self.context:
                return Generation("prompt_too_long", [], prompt_tokens=prompt_len)
            max_new = min(max_new, self.context - prompt_len)
        greedy = sampling.temperature <= 0
        options = {"do_sample": False} if greedy else {
            "do_sample": True, "temperature": sampling.temperature, "top_p": sampling.top_p,
            "top_k": max(sampling.top_k, 0)}  # 0: off (None would fall back to the model default)
        try:
            with torch.no_grad():
                torch.manual_seed(request.seed)
                out = self.model.generate(**inputs, max_new_tokens=max_new,
                                          num_return_sequences=1 if greedy else sampling.k,
                                          pad_token_id=self.pad_id, eos_token_id=self.eos_ids, **options)
        except Exception as error:  # one question's failure (e.g. out of memory) never stops the run
            logger.warning("question %s: generation failed: %s", request.question_id, error)
            return Generation(f"generation_error:{type(error).__name__}", [], prompt_tokens=prompt_len)
        rows = out[:, prompt_len:].tolist()
        if greedy:
            rows = rows * sampling.k
        prefix = opened_think(request.prompt)
        texts, truncated, tokens = [], 0, 0
        eos = set(self.eos_ids)
        for row in rows:
            length = next((i for i, t in enumerate(row) if t in eos), None)
            cut = length is None
            if cut:
                length = len(row)
            truncated += cut
            tokens += length + (0 if cut else 1)  # the end-of-sequence token counts, as in vLLM
            texts.append(prefix + self.renderer.tokenizer.decode(row[:length], skip_special_tokens=True))
        return Generation("ok", texts, truncated, prompt_len, tokens, time.perf_counter() - started)


class VLLMEngine:
    name = "vllm"

    def __init__(self, model: str, renderer: Renderer, tensor_parallel_size: int = 1, dtype: str = "auto",
                 max_model_len: int | None = None, gpu_memory_utilization: float = 0.9, max_images: int = 4,
                 seed: int = 0, trust_remote_code: bool = False):
        try:
            import vllm
        except ImportError as error:
            raise EngineUnavailable(
                f"--engine vllm needs vLLM ({error}); install it on a GPU machine (pip install -e '.[gpu]'), "
                "or use --engine hf") from None
        self.vllm = vllm
        self.renderer = renderer
        kwargs = {"model": model, "tensor_parallel_size": tensor_parallel_size, "dtype": dtype, "seed": seed,
                  "gpu_memory_utilization": gpu_memory_utilization, "trust_remote_code": trust_remote_code}
        if max_model_len:
            kwargs["max_model_len"] = max_model_len
        if renderer.is_vision_language:
            kwargs["limit_mm_per_prompt"] = {"image": max_images}
        self.max_images = max_images
        self.llm = vllm.LLM(**kwargs)

    def _params(self, request: Request, sampling: Sampling):
        options = {"n": sampling.k, "temperature": max(sampling.temperature, 0.0), "top_p": sampling.top_p,
                   "max_tokens": sampling.max_tokens, "seed": request.seed}
        if sampling.top_k > 0:
            options["top_k"] = sampling.top_k
        return self.vllm.SamplingParams(**options)

    def _prompt(self, request: Request) -> dict:
        if not request.images:
            # Token ids, tokenized as the hf engine does (no special tokens added: the template has them all).
            ids = self.renderer.tokenizer(request.prompt, add_special_tokens=False)["input_ids"]
            return {"prompt_token_ids": ids}
        return {"prompt": request.prompt, "multi_modal_data": {"image": request.images}}

    def generate(self, requests: list[Request], sampling: Sampling) -> list[Generation]:
        results: list[Generation | None] = [None] * len(requests)
        runnable = []
        for i, request in enumerate(requests):
            if len(request.images) > self.max_images:
                results[i] = Generation("too_many_images", [])
            else:
                runnable.append(i)
        started = time.perf_counter()
        try:
            outputs = self.llm.generate([self._prompt(requests[i]) for i in runnable],
                                        [self._params(requests[i], sampling) for i in runnable], use_tqdm=False)
            pairs = list(zip(runnable, outputs))
        except Exception as error:  # one bad prompt (e.g. too long) fails the call: retry one by one
            logger.warning("vLLM batch failed (%s); retrying its %d questions one by one", error, len(runnable))
            pairs = []
            for i in runnable:
                try:
                    pairs.append((i, self.llm.generate([self._prompt(requests[i])],
                                                       [self._params(requests[i], sampling)],
                                                       use_tqdm=False)[0]))
                except Exception as one_error:
                    results[i] = Generation(f"generation_error:{type(one_error).__name__}", [])
        seconds = (time.perf_counter() - started) / max(1, len(runnable))
        for i, output in pairs:
            prefix = opened_think(requests[i].prompt)
            completions = list(output.outputs)
            results[i] = Generation(
                "ok", [prefix + c.text for c in completions],
                truncated=sum(c.finish_reason == "length" for c in completions),
                prompt_tokens=len(output.prompt_token_ids or []),
                completion_tokens=sum(len(c.token_ids) for c in completions),
                seconds=seconds,
            )
        return results


def load_engine(name: str, model: str, renderer: Renderer, options) -> HFEngine | VLLMEngine:
    if name == "hf":
        return HFEngine(model, renderer, dtype=options.dtype, device=options.device, threads=options.threads,
                        trust_remote_code=options.trust_remote_code)
    if name == "vllm":
        return VLLMEngine(model, renderer, tensor_parallel_size=options.tensor_parallel_size, dtype=options.dtype,
                          max_model_len=options.max_model_len, gpu_memory_utilization=options.gpu_memory_utilization,
                          max_images=options.max_images, seed=options.seed,
                          trust_remote_code=options.trust_remote_code)
    raise ValueError(f"unknown engine {name!r}: choose hf or vllm")
