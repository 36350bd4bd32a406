"""FedAdam (Reddi et al. 2021, "Adaptive Federated Optimization"): FedAvg's
rounds and local SGD, with Adam on the server.

The server treats the example-weighted mean of the client deltas, Delta, as a
negative pseudo-gradient and applies, per coordinate,
    m <- beta1 m + (1 - beta1) Delta
    v <- beta2 v + (1 - beta2) Delta^2
    w <- w + eta_s m / (sqrt(v) + tau)
with m_0 = 0 and v_0 = tau^2 and no bias correction, as in Reddi et al.'s
Algorithm 2 (tau, the adaptivity, plays Adam's epsilon).

See docs/methods.md, section Federated baselines. The framework-neutral half,
shared by both twins; rounds, local training and checks are FedAvg's
(``submissions/_lib/federated*.py``), plus the server Adam's own.
"""

from submissions._lib import federated
from submissions._lib.hparam_checks import BETA, POSITIVE

DEFAULTS = {
    **federated.SYNC_DEFAULTS,
    'server_learning_rate': 0.01,
    'beta1': 0.9,
    'beta2': 0.99,
    'tau': 1e-3,
}
RULES = {**federated.SYNC_RULES, 'beta1': BETA, 'beta2': BETA, 'tau': POSITIVE}


def hp(hyperparameters, name):
    return federated.hp(hyperparameters, name, DEFAULTS)


def validate_hyperparameters(values):
    return federated.validate(RULES, values)


def get_round_config(workload_name, hyperparameters):
    del workload_name
    return federated.sync_round_config(hyperparameters, DEFAULTS)
