"""FedAvg (McMahan et al. 2017) in PyTorch: the rules are in ``common.py``.

Clients are trained together with ``torch.func``: a vmap over clients of the
gradient of the functional model, one Python loop over the local steps. The
other federated submissions reuse this module's local training (``local_sgd``)
and weighted averaging (``mean_delta``).
"""

import torch
from torch.func import grad_and_value, vmap

from harness import spec, spec_federated
from submissions.fedavg import common

# The framework-neutral half; the harness looks its functions up in this module.
DEFAULTS = common.DEFAULTS
hp = common.hp
validate_hyperparameters = common.validate_hyperparameters
get_round_config = common.get_round_config
init_server_state = common.init_server_state


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
    return spec_federated.ClientUpdates(deltas=deltas, metrics={'loss': losses.detach()})


def client_update(workload, server_params, client_extras, client_data, hyperparameters, rng):
    del client_extras, rng
    return sgd_client_update(workload, server_params, client_data, hyperparameters)


def weighted_mean(deltas, weights):
    """sum_i weights_i * deltas_i over the leading axis (weights already normalized)."""
    return {k: torch.tensordot(weights, d, dims=1) for k, d in deltas.items()}


def mean_delta(updates, weights):
    """The reports' deltas averaged with host ``weights`` (numpy, one per report)."""
    device = next(iter(updates.deltas.values())).device
    return weighted_mean(
        updates.deltas, torch.as_tensor(weights, dtype=torch.float32, device=device)
    )


def add_scaled(params, delta, scale):
    return {k: params[k] + scale * delta[k] for k in params}


def server_update(workload, server_state, updates, hyperparameters, server_version, rng):
    del workload, server_version, rng
    delta = mean_delta(updates, common.example_fractions(updates.num_examples))
    lr = float(hp(hyperparameters, 'server_learning_rate'))
    return spec_federated.ServerState(params=add_scaled(server_state.params, delta, lr))
