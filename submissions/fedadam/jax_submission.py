"""FedAdam (Reddi et al. 2021) in JAX: the rules are in ``common.py``."""

import jax
import jax.numpy as jnp

from harness import spec_federated
from submissions.fedadam import common
from submissions.fedavg import common as fedavg_common
from submissions.fedavg import jax_submission as fedavg

# The framework-neutral half; the harness looks its functions up in this module.
DEFAULTS = common.DEFAULTS
hp = common.hp
validate_hyperparameters = common.validate_hyperparameters
get_round_config = common.get_round_config


def init_server_state(workload, model_params, hyperparameters, rng):
    del workload, rng
    tau = float(hp(hyperparameters, 'tau'))
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


def client_update(workload, server_params, client_extras, client_data, hyperparameters, rng):
    del client_extras, rng
    return fedavg.sgd_client_update(workload, server_params, client_data, hyperparameters, DEFAULTS)


def server_update(workload, server_state, updates, hyperparameters, server_version, rng):
    del workload, server_version, rng
    mean_delta = fedavg.mean_delta(updates, fedavg_common.example_fractions(updates.num_examples))
    f32 = jnp.float32
    params, opt_state = adam_step(
        server_state.params,
        server_state.opt_state,
        mean_delta,
        f32(hp(hyperparameters, 'server_learning_rate')),
        f32(hp(hyperparameters, 'beta1')),
        f32(hp(hyperparameters, 'beta2')),
        f32(hp(hyperparameters, 'tau')),
    )
    return spec_federated.ServerState(params=params, opt_state=opt_state)
