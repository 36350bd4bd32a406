"""FedAdam (Reddi et al. 2021) in PyTorch: the rules are in ``common.py``; FedAvg's
local SGD and weighted mean in ``submissions/_lib/federated_torch.py``."""

import torch

from harness import spec_federated
from submissions._lib import federated_torch as fed
from submissions.fedadam import common

# The harness looks these up in this module (the framework-neutral ones are common.py's).
validate_hyperparameters = common.validate_hyperparameters
get_round_config = common.get_round_config
client_update = fed.make_client_update(common.DEFAULTS)


def init_server_state(workload, model_params, hyperparameters, rng):
    del workload, rng
    tau = float(common.hp(hyperparameters, 'tau'))
    opt_state = {
        'm': {k: torch.zeros_like(w) for k, w in model_params.items()},
        'v': {k: torch.full_like(w, tau * tau) for k, w in model_params.items()},
    }
    return spec_federated.ServerState(params=model_params, opt_state=opt_state)


def adam_step(params, opt_state, delta, lr, beta1, beta2, tau):
    m = {k: beta1 * opt_state['m'][k] + (1 - beta1) * d for k, d in delta.items()}
    v = {k: beta2 * opt_state['v'][k] + (1 - beta2) * d * d for k, d in delta.items()}
    params = {k: w + lr * m[k] / (torch.sqrt(v[k]) + tau) for k, w in params.items()}
    return params, {'m': m, 'v': v}


def server_update(workload, server_state, updates, hyperparameters, server_version, rng):
    del workload, server_version, rng
    mean_delta = fed.example_mean_delta(updates)
    params, opt_state = adam_step(
        server_state.params,
        server_state.opt_state,
        mean_delta,
        float(common.hp(hyperparameters, 'server_learning_rate')),
        float(common.hp(hyperparameters, 'beta1')),
        float(common.hp(hyperparameters, 'beta2')),
        float(common.hp(hyperparameters, 'tau')),
    )
    return spec_federated.ServerState(params=params, opt_state=opt_state)
