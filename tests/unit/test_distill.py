"""Distillation baselines (App. D.2): the method files, one update per step under every preset, the start-up checks
(recipe/zppo/baselines/distill.py) and off-policy distillation's batch building (baselines/off_policy_distill.py).

The JSD math is in tests/unit/test_jsd.py; the end-to-end runs are in tests/e2e/test_cpu_distill.py.
"""

from __future__ import annotations

from concurrent.futures import Future

import pytest
from hydra import compose, initialize_config_module

from recipe.zppo.baselines.distill import DISTILL_METHODS, prepare_distill
from recipe.zppo.baselines.distill_loss import STUDENT_SAMPLES, TEACHER_SAMPLES
from recipe.zppo.baselines.off_policy_distill import TeacherAnswer, TeacherRollouts, build_trajectories
from recipe.zppo.config.schema import load_zppo_config
from recipe.zppo.teacher.client import Completion, Reply
from recipe.zppo.trainer.preflight import ConfigError

SERVED = "zppo.teacher.server.model=/served/teacher"


def _compose(*overrides: str):
    with initialize_config_module("recipe.zppo.config", version_base=None):
        return compose("zppo_trainer", overrides=list(overrides))


# ------------------------------------------------------------------------------------------- method files


@pytest.mark.parametrize("preset", ["cpu", "paper", None])
@pytest.mark.parametrize("method", DISTILL_METHODS)
def test_one_update_per_step_under_every_preset(method, preset):
    config = _compose(f"method={method}", *([f"preset={preset}"] if preset else []))
    zppo = load_zppo_config(config)
    assert zppo.update.num_mini_batches == 1
    assert int(config.actor_rollout_ref.actor.get("ppo_epochs", 1)) == 1
    # The rule is the method's, not a default: the paper preset's I = 4 still reaches the RL methods.
    if preset == "paper":
        assert load_zppo_config(_compose("method=grpo_buffer", "preset=paper")).update.num_mini_batches == 4


def test_command_line_cannot_give_distillation_several_updates(tiny_text_model, capsys):
    config = _compose("method=on_policy_distill", "preset=paper", "zppo.update.num_mini_batches=4",
                      f"distillation.teacher_models.teacher_model.model_path={tiny_text_model}")
    assert load_zppo_config(config).update.num_mini_batches == 1
    prepare_distill(config)  # and the run says so before it starts
    assert "zppo.update.num_mini_batches=4 does not apply to distillation" in capsys.readouterr().out
    prepare_distill(_compose("method=on_policy_distill", "preset=cpu",
                             f"distillation.teacher_models.teacher_model.model_path={tiny_text_model}"))
    assert "num_mini_batches" not in capsys.readouterr().out


@pytest.mark.parametrize("method, mode, loss, buffer", [
    ("on_policy_distill", "on_policy", STUDENT_SAMPLES, False),
    ("on_policy_distill_buffer", "on_policy", STUDENT_SAMPLES, True),
    ("off_policy_distill", "off_policy", TEACHER_SAMPLES, False),
    ("off_policy_distill_buffer", "off_policy", TEACHER_SAMPLES, True),
])
def test_method_files(method, mode, loss, buffer):
    config = _compose(f"method={method}", "preset=cpu")
    zppo = load_zppo_config(config)
    assert zppo.distill == mode and config.zppo_method.name == method
    assert config.distillation.enabled
    assert config.distillation.distillation_loss.loss_mode == loss
    assert not config.distillation.distillation_loss.use_policy_gradient
    assert not config.distillation.distillation_loss.use_task_rewards
    assert (zppo.enable and zppo.replay.enable) == buffer
    assert not zppo.needs_candidates  # no BCQ/NCQ
    assert zppo.needs_teacher_service == (mode == "off_policy")  # fresh teacher rollouts for every prompt


def test_the_loss_modes_are_in_verls_registry():
    from verl.trainer.distillation.losses import get_distillation_loss_settings
    from verl.workers.config import DistillationLossConfig

    for name in (STUDENT_SAMPLES, TEACHER_SAMPLES):
        assert get_distillation_loss_settings(name).use_estimator
        DistillationLossConfig(loss_mode=name, use_policy_gradient=False, use_task_rewards=False)


def test_registered_loss_reads_verls_batch_layout():
    """The registered function on a padded micro-batch as verl hands it over: per-token JSD on the response."""
    import torch
    from tensordict import TensorDict
    from verl.trainer.distillation.losses import get_distillation_loss_fn

    from recipe.zppo.algo.jsd import jsd_teacher_samples

    prompts = torch.tensor([[1, 2], [3, 4]])
    responses = torch.tensor([[5, 6, 7], [8, 9, 0]])
    attention = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 1, 0]])
    student = torch.tensor([[-0.5, -1.0, -2.0], [-0.1, -3.0, 0.0]])  # padded response positions: 0
    teacher = torch.tensor([[-1.5, -0.2, -2.0], [-0.3, -0.4, 0.0]])

    def per_sequence(per_response):  # verl's padding-free layout: a value per token of prompt + response, shifted
        return [torch.tensor([9.0] + row[:length].tolist() + [9.0]) for row, length in zip(per_response, (3, 2))]

    def flat(per_response):
        return torch.cat(per_sequence(per_response))

    data = TensorDict({"prompts": prompts, "responses": responses, "attention_mask": attention,
                       "response_mask": torch.tensor([[1, 1, 1], [1, 1, 0]]),
                       "teacher_logprobs": torch.nested.as_nested_tensor(
                           [t.unsqueeze(-1) for t in per_sequence(teacher)], layout=torch.jagged)}, batch_size=2)
    losses, metrics = get_distillation_loss_fn(TEACHER_SAMPLES)(None, None, {"log_probs": flat(student)}, data)
    assert torch.allclose(losses, jsd_teacher_samples(student, teacher))
    assert "distillation/log_ratio" in metrics


# ------------------------------------------------------------------------------------------- start-up checks


@pytest.mark.parametrize("method", DISTILL_METHODS)
def test_distillation_needs_a_teacher(method):
    config = _compose(f"method={method}", "preset=cpu", SERVED)
    with pytest.raises(ConfigError, match="distillation.teacher_models.teacher_model.model_path is not set"):
        prepare_distill(config)
    config = _compose(f"method={method}", "preset=cpu", SERVED,
                      "distillation.teacher_models.teacher_model.model_path=/no/such/dir")
    with pytest.raises(ConfigError, match="teacher_model.model_path=/no/such/dir: no such model folder"):
        prepare_distill(config)


@pytest.mark.parametrize("method", ["off_policy_distill", "off_policy_distill_buffer"])
def test_off_policy_distillation_needs_the_served_teacher(method, tiny_text_model):
    config = _compose(f"method={method}", "preset=cpu", "zppo.teacher.server.model=''",
                      f"distillation.teacher_models.teacher_model.model_path={tiny_text_model}")
    with pytest.raises(ConfigError, match="zppo.teacher.server.model"):
        prepare_distill(config)


def test_the_jsd_must_match_the_side_that_sampled(tiny_text_model):
    teacher = f"distillation.teacher_models.teacher_model.model_path={tiny_text_model}"
    config = _compose("method=off_policy_distill", "preset=cpu", SERVED, teacher,
                      f"distillation.distillation_loss.loss_mode={STUDENT_SAMPLES}")
    with pytest.raises(ConfigError, match=f"use {TEACHER_SAMPLES}"):
        prepare_distill(config)
    config = _compose("method=on_policy_distill", "preset=cpu", teacher, "actor_rollout_ref.actor.ppo_epochs=2")
    with pytest.raises(ConfigError, match="ppo_epochs=2"):
        prepare_distill(config)


def test_local_cpu_cluster_gets_the_teachers_gpu(tiny_text_model):
    config = _compose("method=on_policy_distill", "preset=cpu",
                      f"distillation.teacher_models.teacher_model.model_path={tiny_text_model}")
    assert config.ray_kwargs.ray_init.num_gpus == 1
    prepare_distill(config)
    assert config.ray_kwargs.ray_init.num_gpus == 2  # student pool + teacher pool
    grpo = _compose("method=grpo", "preset=cpu")
    prepare_distill(grpo)
    assert grpo.ray_kwargs.ray_init.num_gpus == 1


# ------------------------------------------------------------------------------------------- off-policy batch


def _encode(text: str) -> list[int]:
    return [ord(c) for c in text]


def test_correct_teacher_rollouts_become_the_rows():
    answers = {
        "q1": [TeacherAnswer("a \\boxed{5}", 3, 4), TeacherAnswer("b \\boxed{4}"), TeacherAnswer(None),
               TeacherAnswer("c \\boxed{5}")],
        "q2": [TeacherAnswer("x \\boxed{1}"), TeacherAnswer("y \\boxed{1}")],  # all wrong: no row
        "q3": [TeacherAnswer("a long answer \\boxed{7}"), TeacherAnswer("\\boxed{7}")],
    }
    truth = {"q1": "5", "q2": "2", "q3": "7"}
    rows, report = build_trajectories(answers, 4, lambda q, text: text.endswith("{" + truth[q] + "}"),
                                      _encode, eos_token_id=0, max_response_length=12)
    assert [(r.question_id, r.text) for r in rows] == [("q1", "a \\boxed{5}"), ("q1", "c \\boxed{5}"),
                                                      ("q3", "\\boxed{7}")]
    assert all(list(r.token_ids) == _encode(r.text) + [0] for r in rows)  # the student's tokens + EOS
    assert report.per_question == {"q1": 2, "q2": 0, "q3": 1}
    metrics = report.metrics()
    assert metrics["zppo/distill/rollouts_requested"] == 12
    assert metrics["zppo/distill/rollouts_answered"] == 7
    assert metrics["zppo/distill/rollouts_correct"] == 4
    assert metrics["zppo/distill/over_length"] == 1  # the long correct answer: skipped, never cut
    assert metrics["zppo/distill/trajectories"] == 3
    assert metrics["zppo/distill/questions_without_correct"] == 1
    assert (report.prompt_tokens, report.completion_tokens) == (3, 4)


def test_no_correct_rollout_gives_no_rows():
    rows, report = build_trajectories({"q": [TeacherAnswer("wrong")]}, 1, lambda q, t: False, _encode, None, 99)
    assert rows == [] and report.questions_without_correct == 1


class _Client:
    """Answers every request at once with a fresh, numbered text."""

    def __init__(self):
        self.requests = []

    def submit(self, messages, **kwargs):
        self.requests.append((messages, kwargs))
        future = Future()
        future.set_result(Reply(Completion(f"answer {len(self.requests)}", "stop", 5, 2), None, 0.0))
        return future


def test_teacher_rollouts_are_fresh_every_step():
    client = _Client()
    rollouts = TeacherRollouts(client, 4, {"max_tokens": 8, "temperature": 1.0, "top_p": 1.0, "thinking": True})
    rollouts.start("q1", [{"role": "user", "content": "?"}], [])
    rollouts.start("q1", [{"role": "user", "content": "?"}], [])  # once per question and step
    rollouts.start("q2", [{"role": "user", "content": "!"}], [])
    first = rollouts.collect(timeout_s=1.0)
    assert len(client.requests) == 8 and {len(v) for v in first.values()} == {4}
    assert client.requests[0][1] == {"images": [], "max_tokens": 8, "temperature": 1.0, "top_p": 1.0,
                                     "thinking": True}
    rollouts.start("q1", [{"role": "user", "content": "?"}], [])  # the next step: new requests, new answers
    second = rollouts.collect(timeout_s=1.0)
    assert len(client.requests) == 12
    assert {a.text for a in second["q1"]}.isdisjoint({a.text for a in first["q1"]})


def test_off_policy_distillation_has_no_rollout_log_probs_to_check(tiny_text_model):
    teacher = f"distillation.teacher_models.teacher_model.model_path={tiny_text_model}"
    config = _compose("method=off_policy_distill", "preset=cpu", SERVED, teacher)
    assert config.actor_rollout_ref.rollout.calculate_log_probs  # the CPU preset's weight-sync check
    prepare_distill(config)
    assert not config.actor_rollout_ref.rollout.calculate_log_probs  # the trained tokens are the teacher's
    on_policy = _compose("method=on_policy_distill", "preset=cpu", teacher)
    prepare_distill(on_policy)
    assert on_policy.actor_rollout_ref.rollout.calculate_log_probs  # on-policy: the student's own tokens
    bypass = _compose("method=off_policy_distill", "preset=cpu", SERVED, teacher,
                      "algorithm.rollout_correction.bypass_mode=true")
    with pytest.raises(ConfigError, match="bypass_mode"):
        prepare_distill(bypass)
