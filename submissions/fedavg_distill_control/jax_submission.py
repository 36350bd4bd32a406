"""Control for ``fedavg_distill``, in JAX: the same policy, with distillation off.

Everything is ``fedavg_distill``'s -- rounds, late reports delivered to the
next server update (``late_updates='deliver'``), the teacher the server builds
from them and sends with the model -- except that clients give the teacher
weight 0 (``distill_weight`` is fixed at 0, whatever the hyperparameters say),
so they train exactly as FedAvg's clients and late reports change nothing.
Clients download the same bytes as ``fedavg_distill``'s, so on the
work-dependent simulated clock this entrant dispatches the same clients at the
same times and hands the server the same reports (under the self-tuning
ruleset, where both run their defaults: the same event digest). What
``fedavg_distill`` gains over this control comes from distillation, not from a
different sample of clients.
"""

from submissions._lib import fed_distill_jax as distill

# Checks of a search-space point (`timetrial check`): fedavg_distill's.
validate_hyperparameters = distill.validate_hyperparameters


class WithoutDistillation:
    """The hyperparameters as the submission sees them, with distill_weight 0."""

    def __init__(self, hyperparameters):
        self._hyperparameters = hyperparameters

    def __getattr__(self, name):
        if name == 'distill_weight':
            return 0.0
        if self._hyperparameters is None:  # self-tuning: the defaults apply
            raise AttributeError(name)
        return getattr(self._hyperparameters, name)


def get_round_config(workload_name, hyperparameters):
    return distill.get_round_config(workload_name, WithoutDistillation(hyperparameters))


def init_server_state(workload, model_params, hyperparameters, rng):
    return distill.init_server_state(
        workload, model_params, WithoutDistillation(hyperparameters), rng
    )


def client_update(workload, server_params, client_extras, client_data, hyperparameters, rng):
    return distill.client_update(
        workload,
        server_params,
        client_extras,
        client_data,
        WithoutDistillation(hyperparameters),
        rng,
    )


def server_update(workload, server_state, updates, hyperparameters, server_version, rng):
    return distill.server_update(
        workload, server_state, updates, WithoutDistillation(hyperparameters), server_version, rng
    )
