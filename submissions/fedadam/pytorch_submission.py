"""FedAdam (Reddi et al. 2021) in PyTorch: the rules are in ``common.py``."""

import torch

from harness import spec_federated
from submissions.fedadam import common
from submissions.fedavg import common as fedavg_common
from submissions.fedavg import pytorch_submission as fedavg

# The framework-neutral half; the harness looks its functions up in this module.
DEFAULTS = common.DEFAULTS
hp = common.hp
validate_hyperparameters = common.validate_hyperparameters
get_round_config = common.get_round_config


def init_server_state(workload, model_params, hyperparameters, rng):
    del workload, rng
    tau = float(hp(hyperparameters, 'tau'))
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


def client_update(workload, server_params, client_extras, client_data, hyperparameters, rng):
    del client_extras, rng
    return fedavg.sgd_client_update(workload, server_params, client_data, hyperparameters, DEFAULTS)


def server_update(workload, server_state, updates, hyperparameters, server_version, rng):
    del workload, server_version, rng
    mean_delta = fedavg.mean_delta(updates, fedavg_common.example_fractions(updates.num_examples))
    params, opt_state = adam_step(
        server_state.params,
        server_state.opt_state,
        mean_delta,
        float(hp(hyperparameters, 'server_learning_rate')),
        float(hp(hyperparameters, 'beta1')),
        float(hp(hyperparameters, 'beta2')),
        float(hp(hyperparameters, 'tau')),
    )
    return spec_federated.ServerState(params=params, opt_state=opt_state)
