"""A direction, then decoupled weight decay, then the learning rate (optax).

theta <- theta - lr * (update + weight_decay * theta): the form of AdamW that
Shampoo, Sketchy and SONew use here. Every hyperparameter is checked first, and
every problem reported at once.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

import optax

from submissions._lib.hparam_checks import raise_for_problems


def with_decoupled_weight_decay(
    name: str,
    direction: Callable[..., optax.GradientTransformation],
    learning_rate: optax.ScalarOrSchedule,
    weight_decay: float,
    weight_decay_mask: Optional[Any],
    **hparams: Any,
) -> optax.GradientTransformation:
    """``direction(**hparams)`` chained with weight decay and the learning rate."""
    checked = dict(weight_decay=weight_decay, **hparams)
    if not callable(learning_rate):  # a schedule is the submission's own to check
        checked['learning_rate'] = learning_rate
    raise_for_problems(name, checked)
    return optax.chain(
        direction(**hparams),
        optax.add_decayed_weights(weight_decay, weight_decay_mask),
        optax.scale_by_learning_rate(learning_rate),
    )
