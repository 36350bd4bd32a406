"""FedAdam (Reddi et al. 2021) in JAX: the rules are in ``common.py``; FedAvg's local
SGD and weighted mean in ``submissions/_lib/federated_jax.py``."""

import jax
import jax.numpy as jnp

from harness import spec_federated
from submissions._lib import federated_jax as fed
from submissions.fedadam import common

# The harness looks these up in this module (the framework-neutral ones are common.py's).
validate_hyperparameters = common.validate_hyperparameters
get_round_config = common.get_round_config
client_update = fed.make_client_update(common.DEFAULTS)


def init_server_state(workload, model_params, hyperparameters, rng):
    del workload, rng
    tau = float(common.hp(hyperparameters, 'tau'))
    opt_state = {
        'm': jax.tree.map(jnp.zeros_like, model_params),
        'v': jax.tree.map(lambda w: jnp.full_like(w, tau * tau), model_params),
    }
    return spec_federated.ServerState(params=model_params, opt_state=opt_state)


@jax.jit
def adam_step(params, opt_state, delta, lr, beta1, beta2, tau):
    m = jax.tree.map(lambda m, d: beta1 * m + (1 - beta1) * d, opt_state['m'], delta)
    v = jax.tree.map(lambda v, d: beta2 * v + (1 - beta2) * d * d, opt_state['v'], delta)
    params = jax.tree.map(lambda w, m, v: w + lr * m / (jnp.sqrt(v) + tau), params, m, v)
    return params, {'m': m, 'v': v}


def server_update(workload, server_state, updates, hyperparameters, server_version, rng):
    del workload, server_version, rng
    mean_delta = fed.example_mean_delta(updates)
    f32 = jnp.float32
    params, opt_state = adam_step(
        server_state.params,
        server_state.opt_state,
        mean_delta,
        f32(common.hp(hyperparameters, 'server_learning_rate')),
        f32(common.hp(hyperparameters, 'beta1')),
        f32(common.hp(hyperparameters, 'beta2')),
        f32(common.hp(hyperparameters, 'tau')),
    )
    return spec_federated.ServerState(params=params, opt_state=opt_state)
