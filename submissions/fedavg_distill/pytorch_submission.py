"""FedAvg whose late reports teach through distillation, in PyTorch: the rules
are in ``common.py``."""

import numpy as np
import torch
from torch.func import grad_and_value, vmap

from harness import spec, spec_federated
from submissions.fedavg import pytorch_submission as fedavg
from submissions.fedavg_distill import common

# The framework-neutral half; the harness looks its functions up in this module.
DEFAULTS = common.DEFAULTS
hp = common.hp
validate_hyperparameters = common.validate_hyperparameters
get_round_config = common.get_round_config
init_server_state = common.init_server_state


def distill_loss(workload, params, batch, weight, temperature):
    """CE + weight * T^2 * KL(teacher || student); teacher logits come in the batch."""
    logits, _ = workload.model_fn(params, batch, None, spec.ForwardPassMode.TRAIN, None, False)
    mask = batch['weights']
    count = mask.sum().clamp_min(1.0)
    ce = workload.loss_fn(batch['targets'], logits, mask)['summed'] / count
    log_p_teacher = torch.log_softmax(batch['teacher_logits'] / temperature, dim=-1)
    log_p_student = torch.log_softmax(logits / temperature, dim=-1)
    kl = (log_p_teacher.exp() * (log_p_teacher - log_p_student)).sum(-1)  # (B, T)
    return ce + weight * temperature**2 * (kl * mask).sum() / count


def local_distill_sgd(
    workload, params, teacher_delta, client_data, learning_rate, max_grad_norm, weight, temperature
):
    """FedAvg's local SGD (clipped steps) on the distillation objective."""
    teacher_params = {k: params[k] + teacher_delta[k] for k in params}
    num_clients, local_steps = client_data['inputs'].shape[:2]
    grad_fn = vmap(
        grad_and_value(lambda p, batch: distill_loss(workload, p, batch, weight, temperature))
    )
    local = {k: v.unsqueeze(0).expand(num_clients, *v.shape).clone() for k, v in params.items()}
    losses = []
    for step in range(local_steps):
        batch = {k: v[:, step] for k, v in client_data.items()}  # (C, B, T)
        flat = {'inputs': batch['inputs'].reshape(-1, batch['inputs'].shape[-1])}
        with torch.no_grad():  # the teacher is fixed: one batched forward for all clients
            teacher, _ = workload.model_fn(
                teacher_params, flat, None, spec.ForwardPassMode.EVAL, None, False
            )
        batch['teacher_logits'] = teacher.reshape(*batch['inputs'].shape, -1)
        grads, loss = grad_fn(local, batch)
        lr = learning_rate * fedavg.clip_scale(grads, max_grad_norm)  # (C,)
        local = {k: local[k] - lr.view(-1, *[1] * (g.dim() - 1)) * g for k, g in grads.items()}
        losses.append(loss)
    deltas = {k: local[k] - params[k] for k in local}
    return deltas, torch.stack(losses, dim=1).mean(dim=1)


def client_update(workload, server_params, client_extras, client_data, hyperparameters, rng):
    del rng
    teacher_delta = (client_extras or {}).get('teacher_delta')
    weight = float(hp(hyperparameters, 'distill_weight'))
    if teacher_delta is None or weight == 0.0:
        return fedavg.sgd_client_update(
            workload, server_params, client_data, hyperparameters, DEFAULTS
        )
    deltas, losses = local_distill_sgd(
        workload,
        server_params,
        teacher_delta,
        client_data,
        *fedavg.client_optimizer(hyperparameters, DEFAULTS),
        weight,
        float(hp(hyperparameters, 'distill_temperature')),
    )
    return spec_federated.ClientUpdates(deltas=deltas, metrics={'loss': losses.detach()})


def mean_delta_over(updates, mask):
    """sum_i n_i Delta_i / sum_i n_i over the reports in ``mask``."""
    return fedavg.mean_delta(updates, common.example_fractions(updates.num_examples, mask))


def server_update(workload, server_state, updates, hyperparameters, server_version, rng):
    del workload, server_version, rng
    on_time = np.asarray(updates.on_time, dtype=bool)
    params = server_state.params
    if on_time.any():
        lr = float(hp(hyperparameters, 'server_learning_rate'))
        params = fedavg.add_scaled(params, mean_delta_over(updates, on_time), lr)
    late_delta = mean_delta_over(updates, ~on_time) if (~on_time).any() else None
    extras = common.next_teacher(server_state.client_extras, late_delta, hyperparameters)
    return spec_federated.ServerState(params=params, client_extras=extras)
