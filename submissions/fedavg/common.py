"""FedAvg (McMahan et al. 2017), synchronous rounds with a deadline and over-selection.

Each round dispatches ceil(M * (1 + over_selection)) clients; the round closes
at the M-th report or at the deadline (Bonawitz et al. 2019), and reports after
the close are dropped. Each client runs ``local_steps`` steps of SGD
(lr eta_c; each step's gradient clipped to a global norm, ``client_grad_clip``)
from the downloaded model and returns Delta_i = w_i - w. The server
applies w <- w + eta_s * sum_i n_i Delta_i / sum_i n_i, with n_i the client's
number of training sequences.

See docs/methods.md, section Federated baselines. This module is the
framework-neutral half, shared by ``jax_submission.py`` and
``pytorch_submission.py``: defaults, hyperparameter checks and the round
configuration, all FedAvg's own in ``submissions/_lib/federated.py``, which
the other federated baselines build on too.
"""

from submissions._lib import federated

DEFAULTS = federated.SYNC_DEFAULTS
RULES = federated.SYNC_RULES


def validate_hyperparameters(values):
    """Problems with a point of the search space (checked by `timetrial check`)."""
    return federated.validate(RULES, values)


def get_round_config(workload_name, hyperparameters):
    del workload_name
    return federated.sync_round_config(hyperparameters, DEFAULTS)


init_server_state = federated.init_server_state
