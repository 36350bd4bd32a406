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

The framework-neutral half, shared by both twins; rounds are FedBuff's.
"""

from submissions.fedavg import common as fedavg
from submissions.fedbuff import common as fedbuff

DEFAULTS = {**fedbuff.DEFAULTS, 'ema_decay': 0.95}


def hp(hyperparameters, name):
    return fedavg.hp(hyperparameters, name, DEFAULTS)


def validate_hyperparameters(values):
    problems = fedbuff.validate_hyperparameters(values)
    if 'ema_decay' in values and not 0.0 <= values['ema_decay'] < 1.0:
        problems.append(f'ema_decay must be in [0, 1), got {values["ema_decay"]!r}')
    return problems


get_round_config = fedbuff.get_round_config
