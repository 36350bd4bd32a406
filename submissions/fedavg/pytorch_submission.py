"""FedAvg (McMahan et al. 2017) in PyTorch: the rules are in ``common.py``; local SGD and
the weighted mean of deltas in ``submissions/_lib/federated_torch.py``."""

from harness import spec_federated
from submissions._lib import federated_torch as fed
from submissions.fedavg import common

# The harness looks these up in this module (the framework-neutral ones are common.py's).
validate_hyperparameters = common.validate_hyperparameters
get_round_config = common.get_round_config
client_update = fed.make_client_update(common.DEFAULTS)
init_server_state = common.init_server_state


def server_update(workload, server_state, updates, hyperparameters, server_version, rng):
    del workload, server_version, rng
    delta = fed.example_mean_delta(updates)
    params = fed.server_step(server_state.params, delta, hyperparameters, common.DEFAULTS)
    return spec_federated.ServerState(params=params)
