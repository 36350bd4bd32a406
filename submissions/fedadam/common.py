"""FedAdam (Reddi et al. 2021, "Adaptive Federated Optimization"): FedAvg's
rounds and local SGD, with Adam on the server.

The server treats the example-weighted mean of the client deltas, Delta, as a
negative pseudo-gradient and applies, per coordinate,
    m <- beta1 m + (1 - beta1) Delta
    v <- beta2 v + (1 - beta2) Delta^2
    w <- w + eta_s m / (sqrt(v) + tau)
with m_0 = 0 and v_0 = tau^2 and no bias correction, as in Reddi et al.'s
Algorithm 2 (tau, the adaptivity, plays Adam's epsilon).

The framework-neutral half, shared by both twins; rounds and checks are FedAvg's.
"""

from submissions.fedavg import common as fedavg

DEFAULTS = {
    **fedavg.DEFAULTS,
    'server_learning_rate': 0.01,
    'beta1': 0.9,
    'beta2': 0.99,
    'tau': 1e-3,
}


def hp(hyperparameters, name):
    return fedavg.hp(hyperparameters, name, DEFAULTS)


validate_hyperparameters = fedavg.validate_hyperparameters
get_round_config = fedavg.get_round_config
