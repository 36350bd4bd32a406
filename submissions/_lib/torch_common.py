"""The PyTorch side of the baselines: one train step around any torch optimizer.

A baseline supplies ``build_optimizer(model, hyperparameters) ->
torch.optim.Optimizer`` and gets AlgoPerf's submission functions:

    init_optimizer_state = torch_common.make_init_optimizer_state(build_optimizer)
    update_params = torch_common.update_params

(``data_selection`` and ``get_batch_size`` need no
framework: ``common.py``). The learning rate follows
``schedules.warmup_cosine_factor`` through a ``LambdaLR`` (the same numbers as
the JAX baselines); gradients are clipped to ``hyperparameters.grad_clip`` when
given; the loss is reported to ``workload.metrics_logger`` as a tensor
(converted by the harness off the clock). Under DDP (``global_mean_loss``) the
gradient is the one of the mean loss over the global batch, and the reported
loss is that mean.

Same functions, same order as ``jax_common``; the DDP helpers, which JAX does
not need, come last.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Tuple

import torch
import torch.distributed as dist

from harness import spec
from submissions._lib import common
from submissions._lib.schedules import warmup_cosine_factor
from submissions._lib.torch_nadamw import NAdamW

BuildOptimizer = Callable[[torch.nn.Module, Any], torch.optim.Optimizer]


def lr_scheduler(optimizer: torch.optim.Optimizer, workload, hyperparameters):
    """A ``LambdaLR`` taking ``optimizer`` along ``schedules.warmup_cosine_factor``."""
    step_hint = workload.step_hint
    factor = common.warmup_factor(hyperparameters)
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: warmup_cosine_factor(step, step_hint, factor))


def adam_optimizer(model, hyperparameters, optimizer: str) -> torch.optim.Optimizer:
    """AdamW or NAdamW (``common.BASE_OPTIMIZERS``) as the adamw / nadamw baselines set them.

    torch.optim.NAdam is Dozat's momentum-decay variant, a different method;
    ``torch_nadamw.NAdamW`` matches optax.nadamw.
    """
    cls = {'adamw': torch.optim.AdamW, 'nadamw': NAdamW}[optimizer]
    # fused AdamW: one kernel for the whole update (CPU and CUDA), as optax's jitted one is.
    fused = {'fused': True} if cls is torch.optim.AdamW else {}
    return cls(model.parameters(), lr=hyperparameters.learning_rate,
               betas=(1.0 - hyperparameters.one_minus_beta1, hyperparameters.beta2),
               eps=common.ADAM_EPS, weight_decay=hyperparameters.weight_decay, **fused)


def make_init_optimizer_state(build_optimizer: BuildOptimizer):
    def init_optimizer_state(workload: spec.Workload, model_params: spec.ParameterContainer,
                             model_state: spec.ModelAuxiliaryState,
                             hyperparameters: spec.Hyperparameters,
                             rng: spec.RandomState) -> spec.OptimizerState:
        del model_state, rng
        optimizer = build_optimizer(model_params, hyperparameters)
        return {'optimizer': optimizer,
                'scheduler': lr_scheduler(optimizer, workload, hyperparameters)}

    return init_optimizer_state


def clip_grads(model: torch.nn.Module, grad_clip) -> torch.Tensor:
    """Clip the gradients to a global norm of ``grad_clip`` (None: leave them); their norm."""
    max_norm = float('inf') if grad_clip is None else grad_clip
    return torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=max_norm)


def update_params(workload: spec.Workload, current_param_container: spec.ParameterContainer,
                  current_params_types: spec.ParameterTypeTree,
                  model_state: spec.ModelAuxiliaryState,
                  hyperparameters: spec.Hyperparameters, batch: Dict[str, spec.Tensor],
                  loss_type: spec.LossType, optimizer_state: spec.OptimizerState,
                  eval_results, global_step: int, rng: spec.RandomState,
                  train_state=None) -> spec.UpdateReturn:
    del current_params_types, loss_type, eval_results, train_state
    model = current_param_container
    optimizer = optimizer_state['optimizer']
    optimizer.zero_grad(set_to_none=True)
    logits, new_model_state = workload.model_fn(
        params=model, augmented_and_preprocessed_input_batch=batch, model_state=model_state,
        mode=spec.ForwardPassMode.TRAIN, rng=rng, update_batch_norm=True,
        dropout_rate=common.dropout_rate(hyperparameters))
    out = workload.loss_fn(label_batch=batch['targets'], logits_batch=logits,
                           mask_batch=batch.get('weights'),
                           label_smoothing=common.label_smoothing(hyperparameters))
    loss, reported = global_mean_loss(out['summed'], out['n_valid_examples'])
    loss.backward()
    grad_norm = clip_grads(model, common.grad_clip(hyperparameters))
    optimizer.step()
    optimizer_state['scheduler'].step()
    if workload.metrics_logger is not None:
        workload.metrics_logger.append_scalar_metrics(
            {'loss': reported, 'grad_norm': grad_norm.detach()}, global_step)
    return optimizer_state, model, new_model_state


# ---- DDP ------------------------------------------------------------------------------------


def is_ddp() -> bool:
    """True in a rank of a multi-process (DDP) trial."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def global_mean_loss(summed: torch.Tensor, n_valid) -> Tuple[torch.Tensor, torch.Tensor]:
    """(loss to differentiate, mean loss to report) over the global batch.

    In one process both are ``summed / n_valid``. Under DDP ``summed`` is this
    rank's share; DDP averages gradients over the W ranks, so differentiating
    ``W · summed_rank / n_valid_global`` gives the gradient of the global mean —
    with plain (non-differentiable) all-reduces of two detached scalars.
    """
    n_valid = torch.as_tensor(n_valid, device=summed.device, dtype=summed.dtype)
    if not is_ddp():
        loss = summed / n_valid
        return loss, loss.detach()
    n_global = n_valid.detach().clone()
    summed_global = summed.detach().clone()
    dist.all_reduce(n_global)
    dist.all_reduce(summed_global)
    return summed * dist.get_world_size() / n_global, summed_global / n_global
