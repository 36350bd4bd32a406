"""FedBuff (Nguyen et al. 2022): asynchronous, buffered, staleness-weighted.

The PyTorch twin of ``jax_submission.py`` (same rules; see its docstring).
"""

import numpy as np
import torch

from harness import spec
from submissions.fedavg import pytorch_submission as fedavg

DEFAULTS = {
    **fedavg.DEFAULTS,
    'concurrency': 20,
    'buffer_size': 10,
    'staleness_exponent': 0.5,
    'async_slot_timeout_s': 600.0,
}


def hp(hyperparameters, name):
    return fedavg.hp(hyperparameters, name, DEFAULTS)


def validate_hyperparameters(values):
    problems = fedavg.validate_hyperparameters(values)
    for name in ('concurrency', 'buffer_size'):
        if name in values and (not isinstance(values[name], int) or values[name] < 1):
            problems.append(f'{name} must be an integer >= 1, got {values[name]!r}')
    if 'staleness_exponent' in values and not values['staleness_exponent'] >= 0:
        problems.append(f'staleness_exponent must be >= 0, got {values["staleness_exponent"]!r}')
    return problems


def get_round_config(workload_name, hyperparameters):
    del workload_name
    return spec.RoundConfig(
        mode=spec.ASYNC_MODE,
        local_steps=int(hp(hyperparameters, 'local_steps')),
        client_batch_size=int(hp(hyperparameters, 'client_batch_size')),
        concurrency=int(hp(hyperparameters, 'concurrency')),
        buffer_size=int(hp(hyperparameters, 'buffer_size')),
        async_slot_timeout_s=float(hp(hyperparameters, 'async_slot_timeout_s')),
    )


def init_server_state(workload, model_params, hyperparameters, rng):
    del workload, hyperparameters, rng
    return spec.ServerState(params=model_params)


def staleness_weights(staleness, exponent, count):
    """s(tau_i) / K for each report: the weights of FedBuff's buffered mean."""
    s = (1.0 + np.asarray(staleness, dtype=np.float64)) ** -float(exponent)
    return s / count


def client_update(workload, server_params, client_extras, client_data, hyperparameters, rng):
    del client_extras, rng
    return fedavg.sgd_client_update(workload, server_params, client_data, hyperparameters, DEFAULTS)


def buffered_params(server_state, updates, hyperparameters):
    """The server weights after applying one buffer of reports."""
    device = next(iter(server_state.params.values())).device
    weights = staleness_weights(
        updates.staleness, hp(hyperparameters, 'staleness_exponent'), len(updates)
    )
    mean_delta = fedavg.weighted_mean(
        updates.deltas, torch.as_tensor(weights, dtype=torch.float32, device=device)
    )
    lr = float(hp(hyperparameters, 'server_learning_rate'))
    return fedavg.add_scaled(server_state.params, mean_delta, lr)


def server_update(workload, server_state, updates, hyperparameters, server_version, rng):
    del workload, server_version, rng
    return spec.ServerState(params=buffered_params(server_state, updates, hyperparameters))
