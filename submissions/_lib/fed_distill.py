"""FedAvg whose late reports teach through distillation (stale-teacher regularization).

Rounds are FedAvg's (deadline + over-selection), but a report that arrives
after its round closed is delivered to the next server update
(``late_updates='deliver'``) instead of being dropped. What is implemented
(the straggler paper, arXiv:2403.09086, builds FARe-DUST on distillation
from stale models; its exact rules are unconfirmed):

- On-time reports: FedAvg, w <- w + eta_s * sum_i n_i Delta_i / sum_i n_i.
- Late reports are not added to the weights (a stale delta added to a model
  that has moved on can hurt). They become the *teacher*: the server keeps
  delta_T = sum_j n_j Delta_j / sum_j n_j over the late reports of the latest
  update that had any (replacing the previous teacher), and sends it to the
  clients with the model. The teacher is the current model moved by the late
  delta, w + delta_T, so the late clients' data speaks through the current
  model's predictions. A teacher expires after ``teacher_max_age`` server
  updates without new late reports.
- Client objective while a teacher exists, per valid target character t:
      CE(y_t, f_w(x)_t) + lambda * T^2 * KL(softmax(f_{w_s + delta_T}(x)_t / T)
                                             || softmax(f_w(x)_t / T))
  averaged over characters; w the client's weights as they train, w_s the
  downloaded server weights, lambda = ``distill_weight``, T =
  ``distill_temperature``. Without a teacher it is FedAvg's local SGD.

See docs/methods.md, section Federated baselines. The framework-neutral half,
shared by both twins: defaults, checks, the round configuration (FedAvg's, in
``submissions/_lib/federated.py``, with late reports delivered) and the
teacher's bookkeeping.
"""

from harness import spec_federated
from submissions._lib import federated
from submissions._lib.hparam_checks import POSITIVE, integer, number

DEFAULTS = {
    **federated.SYNC_DEFAULTS,
    'distill_weight': 0.5,
    'distill_temperature': 1.0,
    'teacher_max_age': 20,
}
RULES = {
    **federated.SYNC_RULES,
    'distill_weight': number(0, hint='lambda; 0: plain FedAvg'),
    'distill_temperature': POSITIVE,
    'teacher_max_age': integer(0, 'server updates a teacher lasts without new late reports'),
}


def hp(hyperparameters, name):
    return federated.hp(hyperparameters, name, DEFAULTS)


def validate_hyperparameters(values):
    return federated.validate(RULES, values)


def get_round_config(workload_name, hyperparameters):
    del workload_name
    return federated.sync_round_config(hyperparameters, DEFAULTS, late_updates='deliver')


def no_teacher():
    return {'teacher_delta': None, 'teacher_age': 0}


def init_server_state(workload, model_params, hyperparameters, rng):
    del workload, hyperparameters, rng
    return spec_federated.ServerState(params=model_params, client_extras=no_teacher())


def next_teacher(client_extras, late_delta, hyperparameters):
    """The client extras after a server update.

    ``late_delta``: the example-weighted mean delta of the update's late
    reports, which becomes the new teacher, or None when none was late (the
    current teacher then ages by one update, and expires past
    ``teacher_max_age``)."""
    if late_delta is not None:
        return {'teacher_delta': late_delta, 'teacher_age': 0}
    extras = dict(client_extras or no_teacher())
    if extras['teacher_delta'] is None:
        return extras
    age = int(extras['teacher_age']) + 1
    if age > int(hp(hyperparameters, 'teacher_max_age')):
        return no_teacher()
    return {'teacher_delta': extras['teacher_delta'], 'teacher_age': age}
