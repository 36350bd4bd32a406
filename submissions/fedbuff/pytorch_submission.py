"""FedBuff (Nguyen et al. 2022) in PyTorch: the rules are in ``common.py``."""

from harness import spec_federated
from submissions.fedavg import pytorch_submission as fedavg
from submissions.fedbuff import common

# The framework-neutral half; the harness looks its functions up in this module.
DEFAULTS = common.DEFAULTS
hp = common.hp
validate_hyperparameters = common.validate_hyperparameters
get_round_config = common.get_round_config
init_server_state = common.init_server_state
staleness_weights = common.staleness_weights


def client_update(workload, server_params, client_extras, client_data, hyperparameters, rng):
    del client_extras, rng
    return fedavg.sgd_client_update(workload, server_params, client_data, hyperparameters, DEFAULTS)


def buffered_params(server_state, updates, hyperparameters):
    """The server weights after applying one buffer of reports."""
    mean_delta = fedavg.mean_delta(updates, common.buffer_weights(updates, hyperparameters))
    lr = float(hp(hyperparameters, 'server_learning_rate'))
    return fedavg.add_scaled(server_state.params, mean_delta, lr)


def server_update(workload, server_state, updates, hyperparameters, server_version, rng):
    del workload, server_version, rng
    return spec_federated.ServerState(params=buffered_params(server_state, updates, hyperparameters))
