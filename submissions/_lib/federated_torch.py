"""The PyTorch half the federated baselines share: local SGD on a cohort, weighted deltas.

Clients are trained together with ``torch.func``: a vmap over clients of the
gradient of the functional model, one Python loop over the local steps. The
server side averages the reports' deltas with host weights (``federated.py``)
and moves the model by the server learning rate.

Same functions, same order as ``federated_jax``.
"""

from __future__ import annotations

from typing import Any, Mapping

import torch
from torch.func import grad_and_value, vmap

from harness import spec, spec_federated
from submissions._lib import federated


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


def local_sgd(workload, loss_of, params, client_data, learning_rate, max_grad_norm, *loss_args,
              extend_batch=None):
    """SGD on every client at once; returns deltas (C, ...) and mean losses (C,).

    ``loss_of(workload, params, batch, *loss_args)`` is the local objective;
    each step's gradient is clipped to ``max_grad_norm`` (0: not clipped).
    ``extend_batch(batch) -> batch``, when given, adds to each step's (C, B, T)
    batch what the objective needs and vmap should not compute per client (a
    fixed teacher's logits, in one batched forward)."""
    num_clients, local_steps = client_data['inputs'].shape[:2]
    grad_fn = vmap(grad_and_value(lambda p, batch: loss_of(workload, p, batch, *loss_args)))
    local = {k: v.unsqueeze(0).expand(num_clients, *v.shape).clone() for k, v in params.items()}
    losses = []
    for step in range(local_steps):
        batch = {k: v[:, step] for k, v in client_data.items()}  # (C, B, T)
        if extend_batch is not None:
            batch = extend_batch(batch)
        grads, loss = grad_fn(local, batch)
        lr = learning_rate * clip_scale(grads, max_grad_norm)  # (C,)
        local = {k: local[k] - lr.view(-1, *[1] * (g.dim() - 1)) * g for k, g in grads.items()}
        losses.append(loss)
    deltas = {k: local[k] - params[k] for k in local}
    return deltas, torch.stack(losses, dim=1).mean(dim=1)


def client_optimizer(hyperparameters, defaults: Mapping[str, Any]):
    """(learning rate, gradient clip) of local SGD."""
    return (
        float(federated.hp(hyperparameters, 'client_learning_rate', defaults)),
        float(federated.hp(hyperparameters, 'client_grad_clip', defaults)),
    )


def sgd_client_update(workload, server_params, client_data, hyperparameters,
                      defaults: Mapping[str, Any]):
    """Local SGD on a cohort, packaged as the contract's ClientUpdates."""
    deltas, losses = local_sgd(
        workload,
        mean_token_loss,
        server_params,
        client_data,
        *client_optimizer(hyperparameters, defaults),
    )
    return spec_federated.ClientUpdates(deltas=deltas, metrics={'loss': losses.detach()})


def make_client_update(defaults: Mapping[str, Any]):
    """The contract's ``client_update``: local SGD with the client settings of ``defaults``."""

    def client_update(workload, server_params, client_extras, client_data, hyperparameters,
                      rng):
        del client_extras, rng
        return sgd_client_update(workload, server_params, client_data, hyperparameters, defaults)

    return client_update


def weighted_mean(deltas, weights):
    """sum_i weights_i * deltas_i over the leading axis (weights already normalized)."""
    return {k: torch.tensordot(weights, d, dims=1) for k, d in deltas.items()}


def mean_delta(updates, weights):
    """The reports' deltas averaged with host ``weights`` (numpy, one per report)."""
    device = next(iter(updates.deltas.values())).device
    return weighted_mean(
        updates.deltas, torch.as_tensor(weights, dtype=torch.float32, device=device)
    )


def example_mean_delta(updates, mask=None):
    """sum_i n_i Delta_i / sum_i n_i over the reports in ``mask`` (all when None)."""
    return mean_delta(updates, federated.example_fractions(updates.num_examples, mask))


def add_scaled(params, delta, scale):
    return {k: params[k] + scale * delta[k] for k in params}


def server_step(params, delta, hyperparameters, defaults: Mapping[str, Any]):
    """w + eta_s * delta."""
    lr = float(federated.hp(hyperparameters, 'server_learning_rate', defaults))
    return add_scaled(params, delta, lr)


def buffered_params(params, updates, hyperparameters, defaults: Mapping[str, Any]):
    """FedBuff's server step: the weights after applying one buffer of reports."""
    weights = federated.buffer_weights(updates, hyperparameters, defaults)
    return server_step(params, mean_delta(updates, weights), hyperparameters, defaults)
