"""App. B.2's evaluation decoding: the profiles' values, the agent-loop config verl reads, and what the CPU ``hf``
rollout applies of it (min-p and repetition penalty mapped onto ``generate``, the presence penalty said once)."""

from __future__ import annotations

import logging

import pytest
from omegaconf import OmegaConf

from recipe.zppo.eval import decoding


def test_the_paper_profile_is_app_b2():
    values = decoding.profile_values("paper")
    assert values == {"temperature": 0.6, "top_p": 0.95, "top_k": 20, "min_p": 0.0, "presence_penalty": 1.5,
                      "repetition_penalty": 1.0, "max_new_tokens": 12288, "max_model_len": 262144}
    assert decoding.PAPER["min_pixels"] == 256 * 32 * 32 and decoding.PAPER["max_pixels"] == 1280 * 32 * 32
    cpu = decoding.profile_values("cpu", temperature=1.0)
    assert cpu["temperature"] == 1.0 and cpu["top_k"] == 20 and "max_new_tokens" not in cpu
    with pytest.raises(ValueError, match="--decoding"):
        decoding.profile_values("fast")


def test_agent_loop_config_is_what_verl_instantiates():
    loops = OmegaConf.create(decoding.agent_loop_yaml(decoding.profile_values("paper")))
    (loop,) = loops
    assert loop.name == decoding.AGENT_NAME and loop._target_ == "recipe.zppo.eval.agent_loop.EvalAgentLoop"
    assert dict(loop.extra_sampling) == {"min_p": 0.0, "presence_penalty": 1.5, "repetition_penalty": 1.0}


def test_hf_rollout_maps_min_p_and_says_once_it_has_no_presence_penalty(caplog):
    from verl_patches import hf_rollout

    assert hf_rollout._sampling_key({"min_p": 0.05}) != hf_rollout._sampling_key({"min_p": 0.0})
    hf_rollout._warned_unsupported.clear()
    with caplog.at_level(logging.WARNING, logger=hf_rollout.logger.name):
        for _ in range(3):
            hf_rollout._warn_unsupported({"presence_penalty": 1.5, "min_p": 0.0})
        hf_rollout._warn_unsupported({"presence_penalty": 0.0})
    said = [r.getMessage() for r in caplog.records if "presence_penalty" in r.getMessage()]
    assert said == ["hf rollout: presence_penalty=1.5 is not applied (transformers' generate has no presence_penalty); "
                    "the other sampling keys are"]
