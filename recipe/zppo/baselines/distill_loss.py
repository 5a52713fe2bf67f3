"""The distillation baselines' per-token JSD loss in verl's distillation-loss registry (App. D.2, Algorithms 2-3).

Two ``distillation.distillation_loss.loss_mode`` names (registered by ``trainer/registration.py`` in every process):

- ``jsd_student_samples`` (on-policy distillation: the tokens are the student's samples);
- ``jsd_teacher_samples`` (off-policy distillation: the tokens are a correct teacher rollout's).

Both are single-sample estimators (``use_estimator=True``): verl's teacher pool returns the teacher's log-prob of
each token of the sequence (the ``hf`` CPU engine gives nothing else), and ``algo/jsd.py`` turns the pair of
log-probs into a per-token JSD estimate that is exact in expectation under the distribution that sampled the token.
Both are used with ``use_policy_gradient: false``: verl aggregates the per-token values with the actor's
``loss_agg_mode`` over ``response_mask`` and backpropagates them (the on-policy one carries its own score-function
term, see algo/jsd.py). A full-vocabulary or top-k JSD would need the teacher's top-k log-probs (verl asks for them
from vLLM/SGLang teachers only) and verl 0.9.1's top-k path hard-codes forward KL, so it is not used (*ours*).
"""

from __future__ import annotations

from typing import Any

from ..algo.jsd import jsd_student_samples, jsd_teacher_samples

STUDENT_SAMPLES = "jsd_student_samples"
TEACHER_SAMPLES = "jsd_teacher_samples"
LOSS_MODES = (STUDENT_SAMPLES, TEACHER_SAMPLES)


def _per_token(estimator, model_output: dict, data) -> tuple[Any, dict]:
    from verl.utils.metric import AggregationType, Metric
    from verl.workers.utils.padding import no_padding_2_padding

    student = no_padding_2_padding(model_output["log_probs"], data)
    teacher = no_padding_2_padding(data["teacher_logprobs"], data).squeeze(-1)
    mask = data["response_mask"]
    mask = (mask.bool().to_padded_tensor(False) if mask.is_nested else mask.bool())
    assert teacher.shape == student.shape == mask.shape, (teacher.shape, student.shape, mask.shape)
    losses = estimator(student, teacher.to(student.dtype))
    valid = (teacher - student).detach()[mask]
    metrics = {
        # the mean per-token log-ratio log p_teacher - log p_student (0 when the two agree on the tokens)
        "distillation/log_ratio": Metric(AggregationType.MEAN, valid.mean() if valid.numel() else valid.sum()),
    }
    return losses, metrics


def register() -> None:
    """Add the two loss modes to verl's DISTILLATION_LOSS_REGISTRY (once per process)."""
    from verl.trainer.distillation import losses

    if STUDENT_SAMPLES in losses.DISTILLATION_LOSS_REGISTRY:
        return

    @losses.register_distillation_loss(losses.DistillationLossSettings(names=[STUDENT_SAMPLES], use_estimator=True))
    def jsd_on_student_samples(config, distillation_config, model_output, data):
        return _per_token(jsd_student_samples, model_output, data)

    @losses.register_distillation_loss(losses.DistillationLossSettings(names=[TEACHER_SAMPLES], use_estimator=True))
    def jsd_on_teacher_samples(config, distillation_config, model_output, data):
        return _per_token(jsd_teacher_samples, model_output, data)
