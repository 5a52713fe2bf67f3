"""The evaluation's agent loop (App. B.2 decoding, see ``decoding.py``): verl's single-turn loop that adds min-p and the
presence / repetition penalties to every request and marks an answer that used the whole response length.

Declared to verl by the YAML ``decoding.agent_loop_yaml`` writes (``actor_rollout_ref.rollout.agent.
agent_loop_config_path``), which verl instantiates with ``extra_sampling``; imported only inside the run's workers.
"""

from __future__ import annotations

from typing import Any

from verl.experimental.agent_loop.single_turn_agent_loop import SingleTurnAgentLoop


class EvalAgentLoop(SingleTurnAgentLoop):
    """verl's single-turn agent loop plus App. B.2's min-p / presence / repetition penalties on every request, and
    ``response_truncated`` (the answer used the whole response length) for the scoring."""

    def __init__(self, *args, extra_sampling: dict | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.extra_sampling = {key: float(value) for key, value in dict(extra_sampling or {}).items()}

    async def run(self, sampling_params: dict[str, Any], *args, **kwargs):
        params = dict(sampling_params)
        if float(params.get("temperature", 0) or 0) > 0:  # greedy stays greedy: penalties change greedy output too
            params.update(self.extra_sampling)
        else:
            params["repetition_penalty"] = self.extra_sampling.get("repetition_penalty", 1.0)
        output = await super().run(params, *args, **kwargs)
        # verl 0.9.1 scores inside the agent loop (``_compute_score``) and hands the loop's extra fields to the reward
        # as ``extra_info`` (the "tool_extra_fields" of its reward manager): the scoring reads this flag there.
        output.extra_fields["response_truncated"] = bool(len(output.response_ids) >= self.response_length)
        return output
