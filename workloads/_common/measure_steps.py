"""The training step of the workloads' measurement scripts (``workloads/*/measure.py``).

Those scripts train a workload with a plain AdamW loop to measure what its
targets and budgets should be; they differ in optimizer settings and schedule,
not in the step. The step reports the mean loss as a float, so the device has
finished it (the scripts time steps).
"""

from __future__ import annotations

import importlib
import math
from typing import Any, Callable, Optional, Tuple

from harness import spec

Step = Callable[[dict], float]


def make_workload(info: spec.WorkloadInfo, framework: str, size: Optional[str] = None,
                  variant: Optional[str] = None) -> spec.Workload:
    """The workload class ``info`` names for ``framework`` (the scripts run without the
    harness's registry: a workload depends on the contract only)."""
    module, _, name = info.classes[framework].partition(':')
    cls = getattr(importlib.import_module(module), name)
    return cls(size=size or info.sizes[0], variant=variant, budget=None)


def warmup_cosine_lr(step: int, peak_lr: float, total_steps: int, warmup_steps: int) -> float:
    """Learning rate of ``step`` (0-based): linear warmup to ``peak_lr`` over
    ``warmup_steps``, then cosine decay to 0 at ``total_steps`` (0 after it)."""
    if step < warmup_steps:
        return peak_lr * (step + 1) / warmup_steps
    progress = min((step - warmup_steps) / max(total_steps - warmup_steps, 1), 1.0)
    return peak_lr * 0.5 * (1.0 + math.cos(math.pi * progress))


def _mean_loss(workload, params, batch):
    logits, _ = workload.model_fn(params, batch, None, spec.ForwardPassMode.TRAIN, None, True)
    out = workload.loss_fn(batch['targets'], logits)
    return out['summed'] / out['n_valid_examples']


def jax_step(workload, tx, params, opt_state) -> Tuple[Step, Callable[[], Any]]:
    """(step(batch) -> loss, current params) for an optax transformation ``tx``."""
    import jax
    import optax

    @jax.jit
    def step_fn(p, o, batch):
        value, grads = jax.value_and_grad(lambda q: _mean_loss(workload, q, batch))(p)
        updates, o = tx.update(grads, o, p)
        return optax.apply_updates(p, updates), o, value

    state = {'params': params, 'opt': opt_state}

    def step(batch):
        state['params'], state['opt'], value = step_fn(state['params'], state['opt'], batch)
        return float(jax.block_until_ready(value))

    return step, lambda: state['params']


def torch_step(workload, model, opt, lr_at: Callable[[int], float]) -> Tuple[Step, Callable[[], Any]]:
    """(step(batch) -> loss, the model) for a torch optimizer; ``lr_at(step)`` sets the lr."""
    import torch

    counter = {'step': 0}

    def step(batch):
        for group in opt.param_groups:
            group['lr'] = lr_at(counter['step'])
        opt.zero_grad(set_to_none=True)
        value = _mean_loss(workload, model, batch)
        value.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        counter['step'] += 1
        return value.item()  # waits for the device

    return step, lambda: model
