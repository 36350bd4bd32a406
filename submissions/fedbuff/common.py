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

See docs/methods.md, section Federated baselines. The framework-neutral half,
shared by both twins: defaults, checks and the round configuration (all in
``submissions/_lib/federated.py``, with the staleness weights).
"""

from submissions._lib import federated

DEFAULTS = federated.ASYNC_DEFAULTS
RULES = federated.ASYNC_RULES


def validate_hyperparameters(values):
    return federated.validate(RULES, values)


def get_round_config(workload_name, hyperparameters):
    del workload_name
    return federated.async_round_config(hyperparameters, DEFAULTS)


init_server_state = federated.init_server_state
