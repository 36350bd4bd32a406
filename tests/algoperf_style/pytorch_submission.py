"""A submission written for MLCommons AlgoPerf v0.6 (PyTorch), unmodified in its use of the API.

NAdamW with LinearLR warmup then CosineAnnealingLR (SequentialLR), DDP-aware
through ``pytorch_setup()``, ValueError for unknown workloads.
"""

import math
from typing import Any, Dict, Iterator, List, Optional, Tuple

import torch
import torch.distributed.nn as dist_nn
from torch.optim.lr_scheduler import CosineAnnealingLR, LinearLR, SequentialLR

from algoperf import spec
from algoperf.pytorch_utils import pytorch_setup

USE_PYTORCH_DDP = pytorch_setup()[0]


class NAdamW(torch.optim.Optimizer):
    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            beta1, beta2 = group['betas']
            for p in group['params']:
                if p.grad is None:
                    continue
                state = self.state[p]
                if len(state) == 0:
                    state['step'] = torch.tensor(0.0)
                    state['exp_avg'] = torch.zeros_like(p)
                    state['exp_avg_sq'] = torch.zeros_like(p)
                state['step'] += 1
                step = state['step'].item()
                grad, exp_avg, exp_avg_sq = p.grad, state['exp_avg'], state['exp_avg_sq']
                p.mul_(1 - group['lr'] * group['weight_decay'])
                exp_avg.lerp_(grad, 1 - beta1)
                exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                exp_avg.mul_(beta1).add_(grad, alpha=1 - beta1)  # Nesterov look-ahead
                step_size = group['lr'] / (1 - beta1**step)
                denom = (exp_avg_sq.sqrt() / math.sqrt(1 - beta2**step)).add_(group['eps'])
                p.addcdiv_(exp_avg, denom, value=-step_size)
                exp_avg.sub_(grad, alpha=1 - beta1).div_(beta1)


def init_optimizer_state(workload: spec.Workload, model_params: spec.ParameterContainer,
                         model_state: spec.ModelAuxiliaryState,
                         hyperparameters: spec.Hyperparameters,
                         rng: spec.RandomState) -> spec.OptimizerState:
    del model_state, rng
    optimizer = NAdamW(model_params.parameters(), lr=hyperparameters.learning_rate,
                       betas=(1.0 - hyperparameters.one_minus_beta1, hyperparameters.beta2),
                       eps=1e-8, weight_decay=hyperparameters.weight_decay)
    warmup_steps = int(hyperparameters.warmup_factor * workload.step_hint)
    warmup = LinearLR(optimizer, start_factor=1e-10, end_factor=1.0, total_iters=warmup_steps)
    cosine = CosineAnnealingLR(optimizer, T_max=max(workload.step_hint - warmup_steps, 1))
    scheduler = SequentialLR(optimizer, schedulers=[warmup, cosine], milestones=[warmup_steps])
    return {'optimizer': optimizer, 'scheduler': scheduler}


def update_params(workload: spec.Workload, current_param_container: spec.ParameterContainer,
                  current_params_types: spec.ParameterTypeTree,
                  model_state: spec.ModelAuxiliaryState,
                  hyperparameters: spec.Hyperparameters, batch: Dict[str, spec.Tensor],
                  loss_type: spec.LossType, optimizer_state: spec.OptimizerState,
                  eval_results: List[Tuple[int, float]], global_step: int,
                  rng: spec.RandomState,
                  train_state: Optional[Dict[str, Any]] = None) -> spec.UpdateReturn:
    del current_params_types, loss_type, train_state, eval_results
    current_model = current_param_container
    current_model.train()
    optimizer_state['optimizer'].zero_grad()
    logits_batch, new_model_state = workload.model_fn(
        params=current_model, augmented_and_preprocessed_input_batch=batch,
        model_state=model_state, mode=spec.ForwardPassMode.TRAIN, rng=rng,
        update_batch_norm=True, dropout_rate=hyperparameters.dropout_rate)
    loss_dict = workload.loss_fn(label_batch=batch['targets'], logits_batch=logits_batch,
                                 mask_batch=batch.get('weights'),
                                 label_smoothing=getattr(hyperparameters, 'label_smoothing', 0.0))
    summed_loss, n_valid_examples = loss_dict['summed'], loss_dict['n_valid_examples']
    if USE_PYTORCH_DDP:
        summed_loss = dist_nn.all_reduce(summed_loss)
        n_valid_examples = dist_nn.all_reduce(n_valid_examples)
    loss = summed_loss / n_valid_examples
    loss.backward()
    grad_clip = getattr(hyperparameters, 'grad_clip', None)
    if grad_clip is not None:
        torch.nn.utils.clip_grad_norm_(current_model.parameters(), max_norm=grad_clip)
    optimizer_state['optimizer'].step()
    optimizer_state['scheduler'].step()
    if global_step <= 100 or global_step % 500 == 0:
        if workload.metrics_logger is not None:
            workload.metrics_logger.append_scalar_metrics({'loss': loss.item()}, global_step)
    return (optimizer_state, current_param_container, new_model_state)


def prepare_for_eval(workload, current_param_container, current_params_types, model_state,
                     hyperparameters, loss_type, optimizer_state, eval_results, global_step,
                     rng) -> spec.UpdateReturn:
    del workload, hyperparameters, current_params_types, loss_type, eval_results, global_step, rng
    return (optimizer_state, current_param_container, model_state)


def get_batch_size(workload_name):
    if workload_name == 'criteo1tb':
        return 262_144
    elif workload_name == 'finewebedu_lm':
        return 64
    else:
        raise ValueError(f'Unsupported workload name: {workload_name}.')


def data_selection(workload: spec.Workload, input_queue: Iterator[Dict[str, spec.Tensor]],
                   optimizer_state: spec.OptimizerState,
                   current_param_container: spec.ParameterContainer,
                   model_state: spec.ModelAuxiliaryState, hyperparameters: spec.Hyperparameters,
                   global_step: int, rng: spec.RandomState) -> Dict[str, spec.Tensor]:
    del workload, optimizer_state, current_param_container, model_state, hyperparameters
    del global_step, rng
    return next(input_queue)
