"""FedAvg (McMahan et al. 2017), synchronous rounds with a deadline and over-selection.

Each round dispatches ceil(M * (1 + over_selection)) clients; the round closes
at the M-th report or at the deadline (Bonawitz et al. 2019), and reports after
the close are dropped. Each client runs ``local_steps`` steps of SGD
(lr eta_c; each step's gradient clipped to a global norm, ``client_grad_clip``)
from the downloaded model and returns Delta_i = w_i - w. The server
applies w <- w + eta_s * sum_i n_i Delta_i / sum_i n_i, with n_i the client's
number of training sequences.

The other federated submissions reuse this module's local training
(``local_sgd``) and weighted averaging (``weighted_mean``).
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np

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
    return spec.ClientUpdates(deltas=deltas, metrics={'loss': losses})


def client_update(workload, server_params, client_extras, client_data, hyperparameters, rng):
    del client_extras, rng
    return sgd_client_update(workload, server_params, client_data, hyperparameters)


@jax.jit
def weighted_mean(deltas, weights):
    """sum_i weights_i * deltas_i over the leading axis (weights already normalized)."""
    return jax.tree.map(lambda d: jnp.tensordot(weights, d, axes=1), deltas)


@jax.jit
def add_scaled(params, delta, scale):
    return jax.tree.map(lambda w, d: w + scale * d, params, delta)


def example_weights(updates):
    n = np.asarray(updates.num_examples, dtype=np.float64)
    return jnp.asarray(n / n.sum(), dtype=jnp.float32)


def server_update(workload, server_state, updates, hyperparameters, server_version, rng):
    del workload, server_version, rng
    mean_delta = weighted_mean(updates.deltas, example_weights(updates))
    lr = jnp.float32(hp(hyperparameters, 'server_learning_rate'))
    return spec.ServerState(params=add_scaled(server_state.params, mean_delta, lr))
