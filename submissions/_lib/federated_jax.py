"""The JAX half the federated baselines share: local SGD on a cohort, weighted deltas.

Clients are trained together: a ``jax.vmap`` over clients of a ``lax.scan``
over the local steps. The server side averages the reports' deltas with host
weights (``federated.py``) and moves the model by the server learning rate.

Same functions, same order as ``federated_torch``.
"""

from __future__ import annotations

import functools
from typing import Any, Mapping

import jax
import jax.numpy as jnp

from harness import spec, spec_federated
from submissions._lib import federated


def mean_token_loss(workload, params, batch):
    logits, _ = workload.model_fn(params, batch, None, spec.ForwardPassMode.TRAIN, None, False)
    out = workload.loss_fn(batch['targets'], logits, batch['weights'])
    return out['summed'] / jnp.maximum(out['n_valid_examples'], 1.0)


def clip_scale(grads, max_norm):
    """min(1, max_norm / ||grads||), or 1 when max_norm is 0 (no clipping)."""
    norm = jnp.sqrt(sum(jnp.sum(g * g) for g in jax.tree.leaves(grads)))
    return jnp.where(max_norm > 0, jnp.minimum(1.0, max_norm / (norm + 1e-12)), 1.0)


@functools.partial(jax.jit, static_argnums=(0, 1))
def local_sgd(workload, loss_of, params, client_data, learning_rate, max_grad_norm, *loss_args):
    """SGD on every client at once: vmap over clients of a scan over local steps.

    ``loss_of(workload, params, batch, *loss_args)`` is the local objective
    (``loss_args``: arrays it needs besides the batch, the same for every
    client); each step's gradient is clipped to ``max_grad_norm`` (0: not
    clipped). Returns the deltas (C, ...) and each client's mean training loss
    (C,)."""

    def one_client(batches):  # batches: (local_steps, B, T)
        def step(p, batch):
            objective = functools.partial(loss_of, workload)
            loss, grads = jax.value_and_grad(objective)(p, batch, *loss_args)
            lr = learning_rate * clip_scale(grads, max_grad_norm)
            return jax.tree.map(lambda w, g: w - lr * g, p, grads), loss

        final, losses = jax.lax.scan(step, params, batches)
        return jax.tree.map(jnp.subtract, final, params), losses.mean()

    return jax.vmap(one_client)(client_data)


def client_optimizer(hyperparameters, defaults: Mapping[str, Any]):
    """(learning rate, gradient clip) of local SGD, as device scalars."""
    return (
        jnp.float32(federated.hp(hyperparameters, 'client_learning_rate', defaults)),
        jnp.float32(federated.hp(hyperparameters, 'client_grad_clip', defaults)),
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
    return spec_federated.ClientUpdates(deltas=deltas, metrics={'loss': losses})


def make_client_update(defaults: Mapping[str, Any]):
    """The contract's ``client_update``: local SGD with the client settings of ``defaults``."""

    def client_update(workload, server_params, client_extras, client_data, hyperparameters,
                      rng):
        del client_extras, rng
        return sgd_client_update(workload, server_params, client_data, hyperparameters, defaults)

    return client_update


@jax.jit
def weighted_mean(deltas, weights):
    """sum_i weights_i * deltas_i over the leading axis (weights already normalized)."""
    return jax.tree.map(lambda d: jnp.tensordot(weights, d, axes=1), deltas)


def mean_delta(updates, weights):
    """The reports' deltas averaged with host ``weights`` (numpy, one per report)."""
    return weighted_mean(updates.deltas, jnp.asarray(weights, dtype=jnp.float32))


def example_mean_delta(updates, mask=None):
    """sum_i n_i Delta_i / sum_i n_i over the reports in ``mask`` (all when None)."""
    return mean_delta(updates, federated.example_fractions(updates.num_examples, mask))


@jax.jit
def add_scaled(params, delta, scale):
    return jax.tree.map(lambda w, d: w + scale * d, params, delta)


def server_step(params, delta, hyperparameters, defaults: Mapping[str, Any]):
    """w + eta_s * delta."""
    lr = jnp.float32(federated.hp(hyperparameters, 'server_learning_rate', defaults))
    return add_scaled(params, delta, lr)


def buffered_params(params, updates, hyperparameters, defaults: Mapping[str, Any]):
    """FedBuff's server step: the weights after applying one buffer of reports."""
    weights = federated.buffer_weights(updates, hyperparameters, defaults)
    return server_step(params, mean_delta(updates, weights), hyperparameters, defaults)
