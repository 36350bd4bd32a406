"""FedAvg (McMahan et al. 2017), synchronous rounds with a deadline and over-selection.

The PyTorch twin of ``jax_submission.py`` (same rules; see its docstring).
Clients are trained together with ``torch.func``: a vmap over clients of the
gradient of the functional model, one Python loop over the local steps.
"""

import torch
from torch.func import grad_and_value, vmap

from harness import spec

DEFAULTS = {
    'client_learning_rate': 0.5,
    # Clip each local step's gradient to this global norm (0: no clipping).
    'client_grad_clip': 1.0,
    'server_learning_rate': 1.0,
    'clients_per_round': 10,
    'over_selection': 0.3,
    'round_deadline_s': 600.0,
    # Many small local steps: SGD on the transformer gains more from steps than batch.
    'local_steps': 16,
    'client_batch_size': 2,
}


def hp(hyperparameters, name, defaults=DEFAULTS):
    """A hyperparameter, or its default when absent (self-tuning passes None)."""
    value = getattr(hyperparameters, name, None) if hyperparameters is not None else None
    return defaults[name] if value is None else value


def validate_hyperparameters(values):
    """Problems with a point of the search space (checked by `timetrial check`)."""
    problems = []
    for name in ('clients_per_round', 'local_steps', 'client_batch_size'):
        if name in values and (not isinstance(values[name], int) or values[name] < 1):
            problems.append(f'{name} must be an integer >= 1, got {values[name]!r}')
    for name in ('client_learning_rate', 'server_learning_rate'):
        if name in values and not values[name] > 0:
            problems.append(f'{name} must be > 0, got {values[name]!r}')
    return problems


def get_round_config(workload_name, hyperparameters):
    del workload_name
    return spec.RoundConfig(
        mode=spec.SYNC_MODE,
        local_steps=int(hp(hyperparameters, 'local_steps')),
        client_batch_size=int(hp(hyperparameters, 'client_batch_size')),
        clients_per_round=int(hp(hyperparameters, 'clients_per_round')),
        over_selection=float(hp(hyperparameters, 'over_selection')),
        round_deadline_s=float(hp(hyperparameters, 'round_deadline_s')),
        late_updates='drop',
    )


def init_server_state(workload, model_params, hyperparameters, rng):
    del workload, hyperparameters, rng
    return spec.ServerState(params=model_params)


def mean_token_loss(workload, params, batch):
    logits, _ = workload.model_fn(params, batch, None, spec.ForwardPassMode.TRAIN, None, False)
    out = workload.loss_fn(batch['targets'], logits, batch['weights'])
    return out['summed'] / out['n_valid_examples'].clamp_min(1.0)


def clip_scale(grads, max_norm):
    """Per client: min(1, max_norm / ||grads||), or 1 when max_norm is 0; shape (C,)."""
    squares = [g.reshape(g.shape[0], -1).pow(2).sum(dim=1) for g in grads.values()]
    norm = torch.stack(squares).sum(dim=0).sqrt()
    if max_norm <= 0:
        return torch.ones_like(norm)
    return torch.clamp(max_norm / (norm + 1e-12), max=1.0)


def local_sgd(workload, loss_of, params, client_data, learning_rate, max_grad_norm):
    """SGD on every client at once; returns deltas (C, ...) and mean losses (C,).

    ``loss_of(workload, params, batch)`` is the local objective; each step's
    gradient is clipped to ``max_grad_norm`` (0: not clipped)."""
    num_clients, local_steps = client_data['inputs'].shape[:2]
    grad_fn = vmap(grad_and_value(lambda p, batch: loss_of(workload, p, batch)))
    local = {k: v.unsqueeze(0).expand(num_clients, *v.shape).clone() for k, v in params.items()}
    losses = []
    for step in range(local_steps):
        batch = {k: v[:, step] for k, v in client_data.items()}  # (C, B, T)
        grads, loss = grad_fn(local, batch)
        lr = learning_rate * clip_scale(grads, max_grad_norm)  # (C,)
        local = {k: local[k] - lr.view(-1, *[1] * (g.dim() - 1)) * g for k, g in grads.items()}
        losses.append(loss)
    deltas = {k: local[k] - params[k] for k in local}
    return deltas, torch.stack(losses, dim=1).mean(dim=1)


def client_optimizer(hyperparameters, defaults=DEFAULTS):
    """(learning rate, gradient clip) of local SGD."""
    return (
        float(hp(hyperparameters, 'client_learning_rate', defaults)),
        float(hp(hyperparameters, 'client_grad_clip', defaults)),
    )


def sgd_client_update(workload, server_params, client_data, hyperparameters, defaults=DEFAULTS):
    """Local SGD on a cohort, packaged as the contract's ClientUpdates."""
    deltas, losses = local_sgd(
        workload,
        mean_token_loss,
        server_params,
        client_data,
        *client_optimizer(hyperparameters, defaults),
    )
    return spec.ClientUpdates(deltas=deltas, metrics={'loss': losses.detach()})


def client_update(workload, server_params, client_extras, client_data, hyperparameters, rng):
    del client_extras, rng
    return sgd_client_update(workload, server_params, client_data, hyperparameters)


def weighted_mean(deltas, weights):
    """sum_i weights_i * deltas_i over the leading axis (weights already normalized)."""
    return {k: torch.tensordot(weights, d, dims=1) for k, d in deltas.items()}


def add_scaled(params, delta, scale):
    return {k: params[k] + scale * delta[k] for k in params}


def example_weights(updates, device):
    n = torch.as_tensor(updates.num_examples, dtype=torch.float64)
    return (n / n.sum()).to(device=device, dtype=torch.float32)


def server_update(workload, server_state, updates, hyperparameters, server_version, rng):
    del workload, server_version, rng
    device = next(iter(server_state.params.values())).device
    mean_delta = weighted_mean(updates.deltas, example_weights(updates, device))
    lr = float(hp(hyperparameters, 'server_learning_rate'))
    return spec.ServerState(params=add_scaled(server_state.params, mean_delta, lr))
