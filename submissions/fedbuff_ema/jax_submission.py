"""FedBuff with an EMA of the server weights for evaluation, in JAX: the rules are
in ``common.py``; FedBuff's local SGD and server step in
``submissions/_lib/federated_jax.py``."""

import jax
import jax.numpy as jnp

from harness import spec_federated
from submissions._lib import federated_jax as fed
from submissions.fedbuff_ema import common

# The harness looks these up in this module (the framework-neutral ones are common.py's).
validate_hyperparameters = common.validate_hyperparameters
get_round_config = common.get_round_config
client_update = fed.make_client_update(common.DEFAULTS)


def init_server_state(workload, model_params, hyperparameters, rng):
    del workload, hyperparameters, rng
    ema = {'sum': jax.tree.map(jnp.zeros_like, model_params), 'decay_power': jnp.float32(1.0)}
    return spec_federated.ServerState(params=model_params, opt_state=ema)


@jax.jit
def ema_step(ema, params, decay):
    total = jax.tree.map(lambda a, w: decay * a + (1 - decay) * w, ema['sum'], params)
    power = ema['decay_power'] * decay  # beta^t
    debiased = jax.tree.map(lambda a: a / (1 - power), total)
    return {'sum': total, 'decay_power': power}, debiased


def server_update(workload, server_state, updates, hyperparameters, server_version, rng):
    del workload, server_version, rng
    params = fed.buffered_params(server_state.params, updates, hyperparameters, common.DEFAULTS)
    ema, debiased = ema_step(
        server_state.opt_state, params, jnp.float32(common.hp(hyperparameters, 'ema_decay'))
    )
    return spec_federated.ServerState(params=params, opt_state=ema, eval_params=debiased)
