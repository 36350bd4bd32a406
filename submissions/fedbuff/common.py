"""FedBuff (Nguyen et al. 2022): asynchronous, buffered, staleness-weighted.

``concurrency`` clients train at once, each from the model version it
downloaded; every report joins a buffer and a new client starts. A client
not back after ``async_slot_timeout_s`` (the FedAvg deadline, 10 minutes)
gives its slot to a new client, but its report still counts when it comes,
hours later, with its staleness: without this, stragglers would end up
holding every slot. When
``buffer_size`` (K) reports are in, the server applies
    w <- w + eta_s * (1/K) sum_i s(tau_i) Delta_i,   s(tau) = (1 + tau)^-alpha
with tau_i the report's staleness (server updates since its download) and
alpha = ``staleness_exponent`` (0.5: FedBuff's 1/sqrt(1 + tau)). As in the
paper, the sum is divided by K, not by sum_i s(tau_i): stale reports shrink
the step rather than being renormalized. Local training is FedAvg's SGD.

The framework-neutral half, shared by both twins: defaults, checks, the round
configuration and the staleness weights (numpy).
"""

import numpy as np

from harness import spec_federated
from submissions.fedavg import common as fedavg

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
    problems += fedavg.positive_int_problems(values, ('concurrency', 'buffer_size'))
    problems += fedavg.bound_problems(values, ('staleness_exponent',), minimum=0, inclusive=True)
    return problems


def get_round_config(workload_name, hyperparameters):
    del workload_name
    return spec_federated.RoundConfig(
        mode=spec_federated.ASYNC_MODE,
        local_steps=int(hp(hyperparameters, 'local_steps')),
        client_batch_size=int(hp(hyperparameters, 'client_batch_size')),
        concurrency=int(hp(hyperparameters, 'concurrency')),
        buffer_size=int(hp(hyperparameters, 'buffer_size')),
        async_slot_timeout_s=float(hp(hyperparameters, 'async_slot_timeout_s')),
    )


init_server_state = fedavg.init_server_state


def staleness_weights(staleness, exponent, count):
    """s(tau_i) / K for each report: the weights of FedBuff's buffered mean."""
    s = (1.0 + np.asarray(staleness, dtype=np.float64)) ** -float(exponent)
    return s / count


def buffer_weights(updates, hyperparameters):
    """FedBuff's weights for one buffer of reports (numpy, one per report)."""
    return staleness_weights(
        updates.staleness, hp(hyperparameters, 'staleness_exponent'), len(updates)
    )
