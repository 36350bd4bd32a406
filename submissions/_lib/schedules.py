"""The baselines' learning-rate schedule, written once as math.

``warmup_cosine_factor(step, step_hint, warmup_factor)``: the multiple of the
peak learning rate, a linear warmup from 0 to 1 over ``warmup_factor ·
step_hint`` steps, then a cosine decay to 0 at ``step_hint`` (and 0 after
it). PyTorch's baselines call this function through a ``LambdaLR``; JAX's
(``jax_common.lr_schedule``) write the same formula in ``jnp`` on the step
counts below, so the two schedules agree.
"""

from __future__ import annotations

import math


def warmup_steps(step_hint: int, warmup_factor: float) -> int:
    return max(int(warmup_factor * step_hint), 1)


def decay_steps(step_hint: int, warmup_factor: float) -> int:
    """Steps of the cosine decay, from the end of the warmup to ``step_hint``."""
    return max(step_hint - warmup_steps(step_hint, warmup_factor), 1)


def warmup_cosine_factor(step: int, step_hint: int, warmup_factor: float) -> float:
    """Multiplier of the peak learning rate at ``step`` (0-based: the step being taken)."""
    warm = warmup_steps(step_hint, warmup_factor)
    if step < warm:
        return (step + 1) / warm
    progress = min((step - warm) / decay_steps(step_hint, warmup_factor), 1.0)
    return 0.5 * (1.0 + math.cos(math.pi * progress))
