"""Learning-rate schedules shared by both frameworks, written once as math.

``warmup_cosine(step, peak, step_hint, warmup_factor)``: linear warmup from 0
to ``peak`` over ``warmup_factor · step_hint`` steps, then cosine decay to 0 at
``step_hint`` (and 0 after it). Both frameworks' baselines use this function,
so their schedules agree exactly.
"""

from __future__ import annotations

import math


def warmup_steps(step_hint: int, warmup_factor: float) -> int:
    return max(int(warmup_factor * step_hint), 1)


def warmup_cosine_factor(step: int, step_hint: int, warmup_factor: float) -> float:
    """Multiplier of the peak learning rate at ``step`` (0-based: the step being taken)."""
    warm = warmup_steps(step_hint, warmup_factor)
    if step < warm:
        return (step + 1) / warm
    decay_steps = max(step_hint - warm, 1)
    progress = min((step - warm) / decay_steps, 1.0)
    return 0.5 * (1.0 + math.cos(math.pi * progress))
