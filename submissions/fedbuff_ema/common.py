"""FedBuff with an exponential moving average of the server weights for evaluation.

Training is exactly FedBuff's (``submissions/fedbuff``): clients download the
raw server weights w_t. After every server update the server also keeps
    a_t = beta a_{t-1} + (1 - beta) w_t,   a_0 = 0,
and the harness evaluates the bias-corrected average a_t / (1 - beta^t)
(``ServerState.eval_params``), so the evaluated model starts at w_1 rather
than at the initialization. The averaging smooths the noise that stale,
staleness-down-weighted updates add. This is the averaging family the
straggler paper (arXiv:2403.09086, FeAST-on-MSG) builds on; its exact rule is
unconfirmed, and this is the plain EMA-of-weights baseline.

See docs/methods.md, section Federated baselines. The framework-neutral half,
shared by both twins; rounds, local training and the server step are FedBuff's
(``submissions/_lib/federated*.py``).
"""

from submissions._lib import federated
from submissions._lib.hparam_checks import BETA

DEFAULTS = {**federated.ASYNC_DEFAULTS, 'ema_decay': 0.95}
RULES = {**federated.ASYNC_RULES, 'ema_decay': BETA}


def hp(hyperparameters, name):
    return federated.hp(hyperparameters, name, DEFAULTS)


def validate_hyperparameters(values):
    return federated.validate(RULES, values)


def get_round_config(workload_name, hyperparameters):
    del workload_name
    return federated.async_round_config(hyperparameters, DEFAULTS)
