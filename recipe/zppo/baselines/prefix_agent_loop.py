"""verl agent loop for the GRPO+Prefix baseline (paper App. D.2, ``method=prefix``): a teacher prefix the student
continues.

Registered with verl's agent-loop registry as ``zppo_prefix_agent``; the trainer selects it per item (the item's
``agent_name``) only for prefix prompts, every other prompt keeps verl's single-turn loop.

For an item with ``zppo_prefix_ids`` (teacher tokens, from ``teacher_guidance.build_prefixes``):

- the rollout continues ``prompt + prefix`` (at most ``response_length - len(prefix)`` new tokens);
- the trajectory's response is ``prefix + continuation``, so the reward scores the whole answer and the actor
  computes the continuation's log-probs in the prefix's context;
- ``response_mask`` is 0 on the prefix and 1 on the continuation: the prefix tokens, which the policy did not
  sample, get no policy-gradient term, no importance ratio, no clipping and no entropy (verl applies
  ``response_mask`` to all of them), i.e. they are MASKED, never trained with an on-policy ratio by accident;
- rollout log-probs of the prefix positions are 0 (unused: masked).
"""

from __future__ import annotations

from typing import Any
from uuid import uuid4

from verl.experimental.agent_loop.agent_loop import AgentLoopBase, AgentLoopOutput, register
from verl.utils.profiler import simple_timer

AGENT_NAME = "zppo_prefix_agent"
PREFIX_IDS_KEY = "zppo_prefix_ids"


def splice_prefix(
    prefix_ids: list[int], generated_ids: list[int], generated_logprobs: list[float] | None, response_length: int
) -> tuple[list[int], list[int], list[float] | None]:
    """Response ids, mask and log-probs of ``prefix + generated``, cut to ``response_length`` (pure)."""
    ids = (list(prefix_ids) + list(generated_ids))[:response_length]
    mask = ([0] * len(prefix_ids) + [1] * len(generated_ids))[:response_length]
    logprobs = None
    if generated_logprobs is not None:
        logprobs = ([0.0] * len(prefix_ids) + list(generated_logprobs))[:response_length]
    return ids, mask, logprobs


@register(AGENT_NAME)
class PrefixAgentLoop(AgentLoopBase):
    """Single-turn generation that starts the response with given (teacher) tokens, masked out of the loss."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.response_length = self.rollout_config.response_length

    async def run(self, sampling_params: dict[str, Any], priority: int = 0, **kwargs) -> AgentLoopOutput:
        messages = list(kwargs["raw_prompt"])
        prefix_ids = [int(t) for t in (kwargs.get(PREFIX_IDS_KEY) or [])]
        multi_modal_data = await self.process_multi_modal_info(messages)
        images, videos, audios = (multi_modal_data.get(k) for k in ("images", "videos", "audios"))
        mm_processor_kwargs = self._get_mm_processor_kwargs(audios)
        self._assert_mm_supported(bool(multi_modal_data))
        prompt_ids = await self.ct_build_initial_tokens(messages, images=images, videos=videos, audios=audios)

        params = dict(sampling_params)
        params["max_tokens"] = max(1, self.response_length - len(prefix_ids))
        metrics = {}
        with simple_timer("generate_sequences", metrics):
            output = await self.server_manager.generate(
                request_id=uuid4().hex,
                prompt_ids=list(prompt_ids) + prefix_ids,
                sampling_params=params,
                image_data=images,
                audio_data=audios,
                video_data=videos,
                mm_processor_kwargs=mm_processor_kwargs,
                priority=int(priority),
            )
        metrics.setdefault("num_preempted", output.num_preempted if output.num_preempted is not None else -1)
        response_ids, response_mask, response_logprobs = splice_prefix(
            prefix_ids, output.token_ids, output.log_probs or None, self.response_length
        )
        result = AgentLoopOutput(
            prompt_ids=list(prompt_ids),
            response_ids=response_ids,
            response_mask=response_mask,
            response_logprobs=response_logprobs,
            multi_modal_data=multi_modal_data,
            mm_processor_kwargs=mm_processor_kwargs,
            num_turns=2,
            metrics=metrics,
            extra_fields=output.extra_fields,
        )
        result.extra_fields.update({"turn_scores": [], "tool_rewards": []})
        return result
