"""FedAvg (McMahan et al. 2017), synchronous rounds with a deadline and over-selection.

Each round dispatches ceil(M * (1 + over_selection)) clients; the round closes
at the M-th report or at the deadline (Bonawitz et al. 2019), and reports after
the close are dropped. Each client runs ``local_steps`` steps of SGD
(lr eta_c; each step's gradient clipped to a global norm, ``client_grad_clip``)
from the downloaded model and returns Delta_i = w_i - w. The server
applies w <- w + eta_s * sum_i n_i Delta_i / sum_i n_i, with n_i the client's
number of training sequences.

This module is the framework-neutral half, shared by ``jax_submission.py`` and
``pytorch_submission.py``: defaults, hyperparameter checks, the round
configuration and the server's averaging weights (numpy). The other federated
submissions build on it the same way their twins build on FedAvg's twins.
"""

import numpy as np

from harness import spec_federated

DEFAULTS = {
    'client_learning_rate': 0.5,
    # Clip each local step's gradient to this global norm (0: no clipping).
    'client_grad_clip': 1.0,
    'server_learning_rate': 1.0,
    'clients_per_round': 10,
    'over_selection': 0.3,
    'round_deadline_s': 600.0,
    # Many small local steps: SGD on the transformer gains more from steps than batch.
    'local_steps': 16,
    'client_batch_size': 2,
}


def hp(hyperparameters, name, defaults=DEFAULTS):
    """A hyperparameter, or its default when absent (self-tuning passes None)."""
    value = getattr(hyperparameters, name, None) if hyperparameters is not None else None
    return defaults[name] if value is None else value


def positive_int_problems(values, names):
    """Messages for those of ``names`` in ``values`` that are not integers >= 1."""
    return [
        f'{name} must be an integer >= 1, got {values[name]!r}'
        for name in names
        if name in values and (not isinstance(values[name], int) or values[name] < 1)
    ]


def bound_problems(values, names, *, minimum, inclusive):
    """Messages for those of ``names`` in ``values`` below ``minimum`` (or equal to it,
    unless ``inclusive``). NaN fails either way."""
    sign = '>=' if inclusive else '>'
    return [
        f'{name} must be {sign} {minimum:g}, got {values[name]!r}'
        for name in names
        if name in values
        and not (values[name] >= minimum if inclusive else values[name] > minimum)
    ]


def validate_hyperparameters(values):
    """Problems with a point of the search space (checked by `timetrial check`)."""
    problems = positive_int_problems(
        values, ('clients_per_round', 'local_steps', 'client_batch_size')
    )
    problems += bound_problems(values, ('client_learning_rate', 'server_learning_rate'),
                               minimum=0, inclusive=False)
    return problems


def get_round_config(workload_name, hyperparameters):
    del workload_name
    return spec_federated.RoundConfig(
        mode=spec_federated.SYNC_MODE,
        local_steps=int(hp(hyperparameters, 'local_steps')),
        client_batch_size=int(hp(hyperparameters, 'client_batch_size')),
        clients_per_round=int(hp(hyperparameters, 'clients_per_round')),
        over_selection=float(hp(hyperparameters, 'over_selection')),
        round_deadline_s=float(hp(hyperparameters, 'round_deadline_s')),
        late_updates='drop',
    )


def init_server_state(workload, model_params, hyperparameters, rng):
    del workload, hyperparameters, rng
    return spec_federated.ServerState(params=model_params)


def example_fractions(num_examples, mask=None):
    """n_i / sum_j n_j over the reports in ``mask`` (all when None), 0 elsewhere.

    float64 on the host; each twin casts to float32 on its device."""
    n = np.asarray(num_examples, dtype=np.float64)
    if mask is None:
        return n / n.sum()
    return np.where(mask, n, 0.0) / n[mask].sum()
