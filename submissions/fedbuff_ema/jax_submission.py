"""FedBuff with an exponential moving average of the server weights for evaluation.

Training is exactly FedBuff's (``submissions/fedbuff``): clients download the
raw server weights w_t. After every server update the server also keeps
    a_t = beta a_{t-1} + (1 - beta) w_t,   a_0 = 0,
and the harness evaluates the bias-corrected average a_t / (1 - beta^t)
(``ServerState.eval_params``), so the evaluated model starts at w_1 rather
than at the initialization. The averaging smooths the noise that stale,
staleness-down-weighted updates add. This is the averaging family the
straggler paper (arXiv:2403.09086, FeAST-on-MSG) builds on; its exact rule is
unconfirmed, and this is the plain EMA-of-weights baseline.
"""

import jax
import jax.numpy as jnp

from harness import spec
from submissions.fedavg import jax_submission as fedavg
from submissions.fedbuff import jax_submission as fedbuff

DEFAULTS = {**fedbuff.DEFAULTS, 'ema_decay': 0.95}


def hp(hyperparameters, name):
    return fedavg.hp(hyperparameters, name, DEFAULTS)


def validate_hyperparameters(values):
    problems = fedbuff.validate_hyperparameters(values)
    if 'ema_decay' in values and not 0.0 <= values['ema_decay'] < 1.0:
        problems.append(f'ema_decay must be in [0, 1), got {values["ema_decay"]!r}')
    return problems


get_round_config = fedbuff.get_round_config
client_update = fedbuff.client_update


def init_server_state(workload, model_params, hyperparameters, rng):
    del workload, hyperparameters, rng
    ema = {'sum': jax.tree.map(jnp.zeros_like, model_params), 'decay_power': jnp.float32(1.0)}
    return spec.ServerState(params=model_params, opt_state=ema)


@jax.jit
def ema_step(ema, params, decay):
    total = jax.tree.map(lambda a, w: decay * a + (1 - decay) * w, ema['sum'], params)
    power = ema['decay_power'] * decay  # beta^t
    debiased = jax.tree.map(lambda a: a / (1 - power), total)
    return {'sum': total, 'decay_power': power}, debiased


def server_update(workload, server_state, updates, hyperparameters, server_version, rng):
    del workload, server_version, rng
    params = fedbuff.buffered_params(server_state, updates, hyperparameters)
    ema, debiased = ema_step(
        server_state.opt_state, params, jnp.float32(hp(hyperparameters, 'ema_decay'))
    )
    return spec.ServerState(params=params, opt_state=ema, eval_params=debiased)
