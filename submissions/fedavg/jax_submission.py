"""FedAvg (McMahan et al. 2017) in JAX: the rules are in ``common.py``.

Clients are trained together: a ``jax.vmap`` over clients of a ``lax.scan``
over the local steps. The other federated submissions reuse this module's
local training (``local_sgd``) and weighted averaging (``mean_delta``).
"""

import functools

import jax
import jax.numpy as jnp

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
    return out['summed'] / jnp.maximum(out['n_valid_examples'], 1.0)


def clip_scale(grads, max_norm):
    """min(1, max_norm / ||grads||), or 1 when max_norm is 0 (no clipping)."""
    norm = jnp.sqrt(sum(jnp.sum(g * g) for g in jax.tree.leaves(grads)))
    return jnp.where(max_norm > 0, jnp.minimum(1.0, max_norm / (norm + 1e-12)), 1.0)


@functools.partial(jax.jit, static_argnums=(0, 1))
def local_sgd(workload, loss_of, params, client_data, learning_rate, max_grad_norm):
    """SGD on every client at once: vmap over clients of a scan over local steps.

    ``loss_of(workload, params, batch)`` is the local objective; each step's
    gradient is clipped to ``max_grad_norm`` (0: not clipped). Returns the
    deltas (C, ...) and each client's mean training loss (C,)."""

    def one_client(batches):  # batches: (local_steps, B, T)
        def step(p, batch):
            loss, grads = jax.value_and_grad(functools.partial(loss_of, workload))(p, batch)
            lr = learning_rate * clip_scale(grads, max_grad_norm)
            return jax.tree.map(lambda w, g: w - lr * g, p, grads), loss

        final, losses = jax.lax.scan(step, params, batches)
        return jax.tree.map(jnp.subtract, final, params), losses.mean()

    return jax.vmap(one_client)(client_data)


def client_optimizer(hyperparameters, defaults=DEFAULTS):
    """(learning rate, gradient clip) of local SGD, as device scalars."""
    return (
        jnp.float32(hp(hyperparameters, 'client_learning_rate', defaults)),
        jnp.float32(hp(hyperparameters, 'client_grad_clip', defaults)),
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
    return spec_federated.ClientUpdates(deltas=deltas, metrics={'loss': losses})


def client_update(workload, server_params, client_extras, client_data, hyperparameters, rng):
    del client_extras, rng
    return sgd_client_update(workload, server_params, client_data, hyperparameters)


@jax.jit
def weighted_mean(deltas, weights):
    """sum_i weights_i * deltas_i over the leading axis (weights already normalized)."""
    return jax.tree.map(lambda d: jnp.tensordot(weights, d, axes=1), deltas)


def mean_delta(updates, weights):
    """The reports' deltas averaged with host ``weights`` (numpy, one per report)."""
    return weighted_mean(updates.deltas, jnp.asarray(weights, dtype=jnp.float32))


@jax.jit
def add_scaled(params, delta, scale):
    return jax.tree.map(lambda w, d: w + scale * d, params, delta)


def server_update(workload, server_state, updates, hyperparameters, server_version, rng):
    del workload, server_version, rng
    delta = mean_delta(updates, common.example_fractions(updates.num_examples))
    lr = jnp.float32(hp(hyperparameters, 'server_learning_rate'))
    return spec_federated.ServerState(params=add_scaled(server_state.params, delta, lr))
