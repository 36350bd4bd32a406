"""What the federated baselines share, framework-free: defaults, checks, round
configurations and the server's averaging weights (numpy).

See docs/methods.md, section Federated baselines. Each baseline's ``common.py``
adds its own defaults and rules to these and picks a round configuration;
``federated_jax`` / ``federated_torch`` hold the shared framework halves (local
SGD on a cohort, the weighted mean of deltas). No baseline imports another.
"""

from __future__ import annotations

from typing import Any, Dict, Mapping

import numpy as np

from harness import spec_federated
from submissions._lib import common, hparam_checks
from submissions._lib.hparam_checks import POSITIVE, integer, number

#: Local training and the server step, in every baseline.
CLIENT_DEFAULTS: Dict[str, Any] = {
    'client_learning_rate': 0.5,
    # Clip each local step's gradient to this global norm (0: no clipping).
    'client_grad_clip': 1.0,
    'server_learning_rate': 1.0,
    # Many small local steps: SGD on the transformer gains more from steps than batch.
    'local_steps': 16,
    'client_batch_size': 2,
}
#: Synchronous rounds (FedAvg): M reports close a round, or the deadline does.
SYNC_DEFAULTS: Dict[str, Any] = {
    **CLIENT_DEFAULTS,
    'clients_per_round': 10,
    'over_selection': 0.3,
    'round_deadline_s': 600.0,
}
#: Asynchronous buffers (FedBuff): ``concurrency`` clients at once, K reports per update.
ASYNC_DEFAULTS: Dict[str, Any] = {
    **CLIENT_DEFAULTS,
    'concurrency': 20,
    'buffer_size': 10,
    'staleness_exponent': 0.5,
    'async_slot_timeout_s': 600.0,
}

CLIENT_RULES = {
    'client_learning_rate': POSITIVE,
    'server_learning_rate': POSITIVE,
    'local_steps': integer(1, 'local minibatches per report, e.g. 16'),
    'client_batch_size': integer(1, 'sequences per local minibatch, e.g. 2'),
}
SYNC_RULES = {
    **CLIENT_RULES,
    'clients_per_round': integer(1, 'the reports that close a round, e.g. 10'),
}
ASYNC_RULES = {
    **CLIENT_RULES,
    'concurrency': integer(1, 'clients training at once, e.g. 20'),
    'buffer_size': integer(1, 'reports per server update, e.g. 10'),
    'staleness_exponent': number(0, hint='s(tau) = (1 + tau)^-exponent; 0: no down-weighting'),
}


def hp(hyperparameters: Any, name: str, defaults: Mapping[str, Any]) -> Any:
    """A hyperparameter, or its default when absent (self-tuning passes None)."""
    return common.hparam(hyperparameters, name, defaults[name])


def validate(rules: hparam_checks.RuleTable, values: Mapping[str, Any]):
    """Problems with a point of the search space (checked by `timetrial check`)."""
    return hparam_checks.problems(rules, values)


def sync_round_config(hyperparameters: Any, defaults: Mapping[str, Any],
                      late_updates: str = 'drop') -> spec_federated.RoundConfig:
    """FedAvg's rounds: a deadline and over-selection; late reports dropped or delivered."""
    return spec_federated.RoundConfig(
        mode=spec_federated.SYNC_MODE,
        local_steps=int(hp(hyperparameters, 'local_steps', defaults)),
        client_batch_size=int(hp(hyperparameters, 'client_batch_size', defaults)),
        clients_per_round=int(hp(hyperparameters, 'clients_per_round', defaults)),
        over_selection=float(hp(hyperparameters, 'over_selection', defaults)),
        round_deadline_s=float(hp(hyperparameters, 'round_deadline_s', defaults)),
        late_updates=late_updates,
    )


def async_round_config(hyperparameters: Any, defaults: Mapping[str, Any]) -> spec_federated.RoundConfig:
    """FedBuff's buffers: a client slot freed after ``async_slot_timeout_s``."""
    return spec_federated.RoundConfig(
        mode=spec_federated.ASYNC_MODE,
        local_steps=int(hp(hyperparameters, 'local_steps', defaults)),
        client_batch_size=int(hp(hyperparameters, 'client_batch_size', defaults)),
        concurrency=int(hp(hyperparameters, 'concurrency', defaults)),
        buffer_size=int(hp(hyperparameters, 'buffer_size', defaults)),
        async_slot_timeout_s=float(hp(hyperparameters, 'async_slot_timeout_s', defaults)),
    )


def init_server_state(workload, model_params, hyperparameters, rng):
    """The server keeps the model and nothing else."""
    del workload, hyperparameters, rng
    return spec_federated.ServerState(params=model_params)


def example_fractions(num_examples, mask=None) -> np.ndarray:
    """n_i / sum_j n_j over the reports in ``mask`` (all when None), 0 elsewhere.

    float64 on the host; each framework casts to float32 on its device."""
    n = np.asarray(num_examples, dtype=np.float64)
    if mask is None:
        return n / n.sum()
    return np.where(mask, n, 0.0) / n[mask].sum()


def staleness_weights(staleness, exponent, count) -> np.ndarray:
    """s(tau_i) / K for each report, s(tau) = (1 + tau)^-exponent: FedBuff's buffered mean."""
    s = (1.0 + np.asarray(staleness, dtype=np.float64)) ** -float(exponent)
    return s / count


def buffer_weights(updates, hyperparameters, defaults: Mapping[str, Any]) -> np.ndarray:
    """FedBuff's weights for one buffer of reports (numpy, one per report)."""
    exponent = hp(hyperparameters, 'staleness_exponent', defaults)
    return staleness_weights(updates.staleness, exponent, len(updates))
