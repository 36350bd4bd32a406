"""FedBuff with an EMA of the server weights for evaluation, in PyTorch: the rules
are in ``common.py``; FedBuff's local SGD and server step in
``submissions/_lib/federated_torch.py``."""

import torch

from harness import spec_federated
from submissions._lib import federated_torch as fed
from submissions.fedbuff_ema import common

# The harness looks these up in this module (the framework-neutral ones are common.py's).
validate_hyperparameters = common.validate_hyperparameters
get_round_config = common.get_round_config
client_update = fed.make_client_update(common.DEFAULTS)


def init_server_state(workload, model_params, hyperparameters, rng):
    del workload, hyperparameters, rng
    ema = {'sum': {k: torch.zeros_like(w) for k, w in model_params.items()}, 'decay_power': 1.0}
    return spec_federated.ServerState(params=model_params, opt_state=ema)


def ema_step(ema, params, decay):
    total = {k: decay * ema['sum'][k] + (1 - decay) * w for k, w in params.items()}
    power = float(ema['decay_power']) * decay  # beta^t
    debiased = {k: a / (1 - power) for k, a in total.items()}
    return {'sum': total, 'decay_power': power}, debiased


def server_update(workload, server_state, updates, hyperparameters, server_version, rng):
    del workload, server_version, rng
    params = fed.buffered_params(server_state.params, updates, hyperparameters, common.DEFAULTS)
    ema, debiased = ema_step(
        server_state.opt_state, params, float(common.hp(hyperparameters, 'ema_decay'))
    )
    return spec_federated.ServerState(params=params, opt_state=ema, eval_params=debiased)
