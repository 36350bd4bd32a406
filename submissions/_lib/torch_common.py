"""The PyTorch side of the baselines: one train step around any torch optimizer.

A baseline supplies ``build_optimizer(model, hyperparameters) ->
torch.optim.Optimizer`` and gets AlgoPerf's submission functions:

    init_optimizer_state = torch_common.make_init_optimizer_state(build_optimizer)
    update_params = torch_common.update_params

The learning rate follows ``schedules.warmup_cosine_factor`` through a
``LambdaLR`` (the same numbers as the JAX baselines); gradients are clipped to
``hyperparameters.grad_clip`` when given; the loss is reported to
``workload.metrics_logger`` as a tensor (converted by the harness off the
clock). Under DDP (``global_mean_loss``) the gradient is the one of the mean
loss over the global batch, and the reported loss is that mean.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Iterator, Tuple

import torch
import torch.distributed as dist

from harness import spec
from submissions._lib.schedules import warmup_cosine_factor

BuildOptimizer = Callable[[torch.nn.Module, Any], torch.optim.Optimizer]


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


def hparam(hyperparameters, name: str, default):
    return getattr(hyperparameters, name, default) if hyperparameters is not None else default


def make_init_optimizer_state(build_optimizer: BuildOptimizer):
    def init_optimizer_state(workload: spec.Workload, model_params: spec.ParameterContainer,
                             model_state: spec.ModelAuxiliaryState,
                             hyperparameters: spec.Hyperparameters,
                             rng: spec.RandomState) -> spec.OptimizerState:
        del model_state, rng
        optimizer = build_optimizer(model_params, hyperparameters)
        step_hint = workload.step_hint
        warmup_factor = hparam(hyperparameters, 'warmup_factor', 0.05)
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: warmup_cosine_factor(step, step_hint, warmup_factor))
        return {'optimizer': optimizer, 'scheduler': scheduler}

    return init_optimizer_state


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
        dropout_rate=hparam(hyperparameters, 'dropout_rate', 0.0))
    out = workload.loss_fn(label_batch=batch['targets'], logits_batch=logits,
                           mask_batch=batch.get('weights'),
                           label_smoothing=hparam(hyperparameters, 'label_smoothing', 0.0))
    loss, reported = global_mean_loss(out['summed'], out['n_valid_examples'])
    loss.backward()
    grad_clip = hparam(hyperparameters, 'grad_clip', None)
    max_norm = float('inf') if grad_clip is None else grad_clip
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=max_norm)
    optimizer.step()
    optimizer_state['scheduler'].step()
    if workload.metrics_logger is not None:
        workload.metrics_logger.append_scalar_metrics(
            {'loss': reported, 'grad_norm': grad_norm.detach()}, global_step)
    return optimizer_state, model, new_model_state


def prepare_for_eval(workload, current_param_container, current_params_types, model_state,
                     hyperparameters, loss_type, optimizer_state, eval_results, global_step,
                     rng) -> spec.UpdateReturn:
    del workload, current_params_types, hyperparameters, loss_type, eval_results, global_step, rng
    return optimizer_state, current_param_container, model_state


def data_selection(workload, input_queue: Iterator[Dict[str, Any]], optimizer_state,
                   current_param_container, model_state, hyperparameters, global_step,
                   rng) -> Dict[str, spec.Tensor]:
    del workload, optimizer_state, current_param_container, model_state, hyperparameters
    del global_step, rng
    return next(input_queue)


def get_batch_size(workload_name: str) -> int:
    """Baselines use each workload's default batch size (see spec.get_batch_size)."""
    raise ValueError(f'no batch size chosen for {workload_name!r}: use the workload default')
