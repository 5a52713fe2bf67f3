"""verl agent loop for off-policy distillation (Algorithm 2, ``method=off_policy_distill``): a given response.

Registered with verl's agent-loop registry as ``zppo_teacher_forced_agent``; the trainer names it for the items of
a correct teacher rollout (``baselines/off_policy_distill.py``). The student generates nothing: the trajectory's
response IS the teacher's tokens (``zppo_forced_response_ids``, the student's tokenizer), ``response_mask`` is 1 on
all of them (they are the loss's tokens). verl's agent-loop worker then does what it does for every trajectory:
the reward scores it, and, with ``distillation.enabled``, the distillation teacher pool rescores it (the teacher's
log-prob of each of these tokens), which is what the JSD-on-teacher-samples loss reads.
"""

from __future__ import annotations

from typing import Any

from verl.experimental.agent_loop.agent_loop import AgentLoopBase, AgentLoopOutput, register

AGENT_NAME = "zppo_teacher_forced_agent"
FORCED_IDS_KEY = "zppo_forced_response_ids"


@register(AGENT_NAME)
class TeacherForcedAgentLoop(AgentLoopBase):
    """Single turn whose response is given (teacher tokens): no generation, every token in the loss."""

    async def run(self, sampling_params: dict[str, Any], priority: int = 0, **kwargs) -> AgentLoopOutput:
        messages = list(kwargs["raw_prompt"])
        response_ids = [int(t) for t in (kwargs.get(FORCED_IDS_KEY) or [])]
        if not response_ids:
            raise ValueError(f"{AGENT_NAME}: the item has no {FORCED_IDS_KEY}")
        multi_modal_data = await self.process_multi_modal_info(messages)
        images, videos, audios = (multi_modal_data.get(k) for k in ("images", "videos", "audios"))
        mm_processor_kwargs = self._get_mm_processor_kwargs(audios)
        self._assert_mm_supported(bool(multi_modal_data))
        prompt_ids = await self.ct_build_initial_tokens(messages, images=images, videos=videos, audios=audios)
        # No student weights made these tokens; they are tagged with the step's rollout weight version (the step's
        # number - 1, as the step's student rollouts) so that verl's staleness metrics read 0 for them.
        version = int(kwargs.get("global_steps", 1)) - 1
        result = AgentLoopOutput(
            prompt_ids=list(prompt_ids),
            response_ids=response_ids,
            response_mask=[1] * len(response_ids),
            response_logprobs=None,
            multi_modal_data=multi_modal_data,
            mm_processor_kwargs=mm_processor_kwargs,
            num_turns=2,
            metrics={},
            extra_fields={"global_steps": version + 1, "min_global_steps": version, "max_global_steps": version},
        )
        result.extra_fields.update({"turn_scores": [], "tool_rewards": []})
        return result
