"""Per-token Jensen-Shannon divergence from ONE sampled token (the distillation baselines' loss, App. D.2).

The paper's off- and on-policy distillation minimise the per-token JSD between the student's and the teacher's
next-token distributions (beta = 0.5, mixture m = (p_s + p_t) / 2):

    JSD(p_s, p_t) = 0.5 KL(p_s || m) + 0.5 KL(p_t || m).

A teacher served by verl's ``hf`` engine (and vLLM's prompt log-probs without top-k) gives only the log-prob of
the token that is there, so the divergence is estimated from that token, exactly in expectation under the
distribution that sampled it (*ours*: the paper does not say how its JSD was computed). With d = log p_t(y) -
log p_s(y):

- token sampled by the STUDENT (on-policy, Algorithm 3), r = p_t / p_s = exp(d):
  ``JSD = E_s[ f(r) ]``, f(r) = 0.5 log(2 / (1 + r)) + 0.5 r log(2r / (1 + r));
- token sampled by the TEACHER (off-policy, Algorithm 2), q = p_s / p_t = exp(-d): ``JSD = E_t[ f(q) ]`` (the same
  f: JSD is symmetric).

f is convex with f(1) = f'(1) = 0, so every single-token estimate is >= 0, and it is at most log(2) plus a term
linear in the ratio; the log-ratio is clamped to +-``LOG_RATIO_CLAMP`` so extreme log-probs stay finite.

Gradients (the per-token *local* objective, prefix held fixed as in sequence distillation):

- teacher samples do not depend on the student: d JSD = E_t[ d f(q) ], so the loss is f(q), differentiated directly
  (:func:`jsd_teacher_samples`);
- student samples do: d E_s[f(r)] = E_s[ f(r) d log p_s(y) + d f(r) ], so the loss is the surrogate
  f(r) + stop_grad(f(r)) * (log p_s - stop_grad(log p_s)) (:func:`jsd_student_samples`): its value is the
  estimate, its gradient the unbiased one (a score-function term plus the direct term).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

LOG2 = math.log(2.0)
# ours: |log p_t - log p_s| above 20 (a ratio of 5e8) is treated as 20: exp() stays finite in fp32/bf16 math.
LOG_RATIO_CLAMP = 20.0


def jsd_from_ratio(log_ratio: torch.Tensor) -> torch.Tensor:
    """f(exp(log_ratio)) = 0.5 log(2/(1+r)) + 0.5 r log(2r/(1+r)), in a numerically stable form.

    log(2/(1+r)) = log 2 - softplus(d) and log(2r/(1+r)) = log 2 - softplus(-d), with d = log r (clamped)."""
    d = log_ratio.clamp(-LOG_RATIO_CLAMP, LOG_RATIO_CLAMP)
    return 0.5 * (LOG2 - F.softplus(d)) + 0.5 * torch.exp(d) * (LOG2 - F.softplus(-d))


def jsd_teacher_samples(student_log_probs: torch.Tensor, teacher_log_probs: torch.Tensor) -> torch.Tensor:
    """Per-token JSD estimate on tokens the TEACHER sampled (off-policy distillation): f(p_s/p_t).
    Differentiable in ``student_log_probs``; the teacher's are constants."""
    return jsd_from_ratio(student_log_probs - teacher_log_probs.detach())


def jsd_student_samples(student_log_probs: torch.Tensor, teacher_log_probs: torch.Tensor) -> torch.Tensor:
    """Per-token JSD surrogate on tokens the STUDENT sampled (on-policy distillation): value f(p_t/p_s), gradient
    E_s[f d log p_s + d f] (score-function term added, see the module docstring)."""
    value = jsd_from_ratio(teacher_log_probs.detach() - student_log_probs)
    score = student_log_probs - student_log_probs.detach()  # 0 in value, d log p_s in gradient
    return value + value.detach() * score


def exact_jsd(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
    """The exact JSD over a full vocabulary (last dimension), for tests and diagnostics."""
    log_s = torch.log_softmax(student_logits, dim=-1)
    log_t = torch.log_softmax(teacher_logits, dim=-1)
    log_m = torch.logsumexp(torch.stack([log_s, log_t]), dim=0) - LOG2
    kl_s = (log_s.exp() * (log_s - log_m)).sum(-1)
    kl_t = (log_t.exp() * (log_t - log_m)).sum(-1)
    return 0.5 * kl_s + 0.5 * kl_t
