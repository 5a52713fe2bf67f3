"""The single-token JSD estimators (recipe/zppo/algo/jsd.py) against the exact JSD over a small vocabulary."""

from __future__ import annotations

import math

import pytest
import torch

from recipe.zppo.algo.jsd import exact_jsd, jsd_from_ratio, jsd_student_samples, jsd_teacher_samples

VOCAB = 7


def _logits(seed: int, scale: float = 2.0) -> torch.Tensor:
    return torch.randn(VOCAB, generator=torch.Generator().manual_seed(seed)) * scale


def _monte_carlo(estimator, sampler_logits, student_logits, teacher_logits, samples=200_000, seed=0):
    tokens = torch.multinomial(torch.softmax(sampler_logits, -1), samples, replacement=True,
                               generator=torch.Generator().manual_seed(seed))
    log_s = torch.log_softmax(student_logits, -1)[tokens]
    log_t = torch.log_softmax(teacher_logits, -1)[tokens]
    values = estimator(log_s, log_t)
    return values.mean().item(), values.std().item() / math.sqrt(samples)


def test_exact_jsd_properties():
    s, t = _logits(1), _logits(2)
    value = exact_jsd(s, t).item()
    assert 0 < value < math.log(2)
    assert exact_jsd(s, s).item() == pytest.approx(0.0, abs=1e-6)
    assert abs(exact_jsd(t, s).item() - value) < 1e-6  # symmetric


def test_student_sample_estimator_converges_to_the_exact_jsd():
    for seed in range(3):
        s, t = _logits(10 + seed), _logits(20 + seed)
        exact = exact_jsd(s, t).item()
        mean, stderr = _monte_carlo(jsd_student_samples, s, s, t, seed=seed)
        assert abs(mean - exact) < 5 * stderr + 1e-4, (mean, exact, stderr)


def test_teacher_sample_estimator_converges_to_the_exact_jsd():
    for seed in range(3):
        s, t = _logits(30 + seed), _logits(40 + seed)
        exact = exact_jsd(s, t).item()
        mean, stderr = _monte_carlo(jsd_teacher_samples, t, s, t, seed=seed)
        assert abs(mean - exact) < 5 * stderr + 1e-4, (mean, exact, stderr)


def test_the_wrong_sampler_is_biased():
    # The two estimators are not interchangeable: the student-sample formula on teacher tokens misses the JSD.
    s, t = _logits(50, scale=3.0), _logits(51, scale=3.0)
    exact = exact_jsd(s, t).item()
    mean, stderr = _monte_carlo(jsd_student_samples, t, s, t)
    assert abs(mean - exact) > 10 * stderr + 1e-3


def test_estimates_are_non_negative_and_finite_on_extreme_log_probs():
    log_s = torch.tensor([0.0, -1e4, -80.0, -1e-9, 0.0, -30.0, -1e30])
    log_t = torch.tensor([-1e4, 0.0, -1e-9, -80.0, 0.0, -30.0, 0.0])
    for fn in (jsd_student_samples, jsd_teacher_samples):
        values = fn(log_s, log_t)
        assert torch.isfinite(values).all(), values
        assert (values >= -1e-7).all(), values
    assert jsd_from_ratio(torch.zeros(3)).abs().max().item() < 1e-7  # equal probabilities: 0


def test_gradients_are_finite_and_the_surrogate_value_is_the_estimate():
    log_s = torch.tensor([-0.1, -5.0, -60.0, -2.0], requires_grad=True)
    log_t = torch.tensor([-3.0, -0.2, -0.5, -2.0])
    surrogate = jsd_student_samples(log_s, log_t)
    assert torch.allclose(surrogate, jsd_from_ratio(log_t - log_s.detach()))
    surrogate.sum().backward()
    assert torch.isfinite(log_s.grad).all()


def _update_lowers(estimator, on_policy: bool) -> tuple[float, float, float, float]:
    """A tiny 'student' (a logits table over 4 contexts) trained with Adam for a few steps on the estimator."""
    contexts = 4
    teacher = torch.randn(contexts, VOCAB, generator=torch.Generator().manual_seed(3)) * 2
    student = torch.nn.Parameter(torch.randn(contexts, VOCAB, generator=torch.Generator().manual_seed(4)) * 2)
    optimiser = torch.optim.Adam([student], lr=0.05)
    gen = torch.Generator().manual_seed(5)
    fixed = torch.multinomial(torch.softmax(teacher, -1), 256, replacement=True, generator=gen)  # (contexts, 256)

    def loss_of(tokens):
        log_s = torch.log_softmax(student, -1).gather(1, tokens)
        log_t = torch.log_softmax(teacher, -1).gather(1, tokens)
        return estimator(log_s, log_t).mean()

    exact_before = exact_jsd(student.detach(), teacher).mean().item()
    loss_before = loss_of(fixed).item()
    for _ in range(30):
        tokens = fixed
        if on_policy:  # Algorithm 3: the student's own samples, drawn again every step
            tokens = torch.multinomial(torch.softmax(student.detach(), -1), 256, replacement=True, generator=gen)
        optimiser.zero_grad()
        loss_of(tokens).backward()
        optimiser.step()
    return loss_before, loss_of(fixed).item(), exact_before, exact_jsd(student.detach(), teacher).mean().item()


def test_teacher_sample_loss_decreases_on_a_fixed_batch():
    loss_before, loss_after, exact_before, exact_after = _update_lowers(jsd_teacher_samples, on_policy=False)
    assert loss_after < 0.7 * loss_before, (loss_before, loss_after)
    assert exact_after < 0.7 * exact_before, (exact_before, exact_after)


def test_student_sample_loss_lowers_the_exact_jsd():
    _, _, exact_before, exact_after = _update_lowers(jsd_student_samples, on_policy=True)
    assert exact_after < 0.7 * exact_before, (exact_before, exact_after)
