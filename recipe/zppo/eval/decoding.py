"""The paper's evaluation decoding (App. B.2 "Decoding configuration"): one configuration for every benchmark and
every checkpoint, applied by ``python -m recipe.zppo.eval`` as overrides of the trainer's validation rollout.

App. B.2: "temperature=0.6, top-p=0.95, top-k=20, min-p=0, presence-penalty=1.5, repetition-penalty=1.0,
max-new-tokens=12288, max-model-len=262144, min-pixels=256×32×32, max-pixels=1280×32×32", with the Fig. 8 closer on
every prompt (the benchmark converter writes it, and resizes images into the pixel range:
``data_prep.benchmarks``).

Where each value goes in verl 0.9.1:

- temperature, top-p, top-k, n: ``actor_rollout_ref.rollout.val_kwargs.*`` (verl's validation sampling);
- max-new-tokens: ``data.max_response_length`` (the rollout's ``response_length``); max-model-len:
  ``actor_rollout_ref.rollout.max_model_len``;
- min-p, presence penalty, repetition penalty: verl's agent loop hard-codes ``repetition_penalty=1.0`` and passes
  no min-p or presence penalty, so the eval run uses ``EvalAgentLoop`` (``agent_loop.py``): verl's single-turn agent
  loop that adds them to every request's sampling parameters (vLLM and SGLang take all three; the CPU ``hf``
  rollout, ``verl_patches/hf_rollout.py``, maps min-p and repetition penalty onto ``generate`` and says once that it
  has no presence penalty). It is declared to verl through its own extension point
  (``actor_rollout_ref.rollout.agent.agent_loop_config_path``, a YAML the eval writes into OUT) and made the default
  agent loop of the run. It also marks an answer that hit the response-length limit (``response_truncated``, read
  by the scoring's judge fallback, ``scoring.py``).

Profiles: ``paper`` (everything above), ``cpu`` (the paper's sampling values, the lengths left to the CPU preset so
that CI stays small; chosen automatically with ``preset=cpu``), ``greedy`` (temperature 0, no penalties; *ours*, for
debugging).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

AGENT_NAME = "zppo_eval_agent"

# App. B.2, verbatim values.
PAPER = {
    "temperature": 0.6,
    "top_p": 0.95,
    "top_k": 20,
    "min_p": 0.0,
    "presence_penalty": 1.5,
    "repetition_penalty": 1.0,
    "max_new_tokens": 12_288,
    "max_model_len": 262_144,
    "min_pixels": 256 * 32 * 32,
    "max_pixels": 1280 * 32 * 32,
}
SAMPLING_KEYS = ("temperature", "top_p", "top_k")  # verl's val_kwargs
EXTRA_KEYS = ("min_p", "presence_penalty", "repetition_penalty")  # added by EvalAgentLoop
PROFILES = ("paper", "cpu", "greedy")


def profile_values(profile: str, temperature: float | None = None, top_p: float | None = None) -> dict[str, Any]:
    """The decoding of ``profile`` (``PROFILES``), with the user's temperature / top-p when given."""
    if profile not in PROFILES:
        raise ValueError(f"--decoding {profile!r}: one of {', '.join(PROFILES)}")
    if profile == "greedy":
        values = {"temperature": 0.0, "top_p": 1.0, "top_k": -1, "min_p": 0.0, "presence_penalty": 0.0,
                  "repetition_penalty": 1.0}
    else:
        values = {key: PAPER[key] for key in (*SAMPLING_KEYS, *EXTRA_KEYS)}
        if profile == "paper":
            values.update(max_new_tokens=PAPER["max_new_tokens"], max_model_len=PAPER["max_model_len"])
    if temperature is not None:
        values["temperature"] = float(temperature)
    if top_p is not None:
        values["top_p"] = float(top_p)
    return values


def agent_loop_yaml(values: dict[str, Any]) -> str:
    """The agent-loop config verl reads (``agent_loop_config_path``): EvalAgentLoop with the extra sampling keys."""
    extra = ", ".join(f"{key}: {float(values[key])}" for key in EXTRA_KEYS)
    return (f"- name: {AGENT_NAME}\n"
            f"  _target_: recipe.zppo.eval.agent_loop.EvalAgentLoop\n"
            f"  extra_sampling: {{{extra}}}\n")


def overrides(values: dict[str, Any], n: int, out: Path) -> list[str]:
    """Hydra overrides of the validation rollout for ``values`` (writes OUT/eval_agent_loop.yaml)."""
    path = out / "eval_agent_loop.yaml"
    path.write_text(agent_loop_yaml(values))
    do_sample = values["temperature"] > 0
    result = [
        f"actor_rollout_ref.rollout.val_kwargs.n={n}",
        f"actor_rollout_ref.rollout.val_kwargs.do_sample={str(do_sample).lower()}",
        f"actor_rollout_ref.rollout.val_kwargs.temperature={values['temperature'] if do_sample else 0}",
        f"actor_rollout_ref.rollout.val_kwargs.top_p={values['top_p'] if do_sample else 1.0}",
        f"actor_rollout_ref.rollout.val_kwargs.top_k={int(values['top_k']) if do_sample else -1}",
        f"actor_rollout_ref.rollout.agent.agent_loop_config_path={path}",
        f"actor_rollout_ref.rollout.agent.default_agent_loop={AGENT_NAME}",
    ]
    if "max_new_tokens" in values:
        result.append(f"data.max_response_length={int(values['max_new_tokens'])}")
    if "max_model_len" in values:
        result.append(f"actor_rollout_ref.rollout.max_model_len={int(values['max_model_len'])}")
    return result
