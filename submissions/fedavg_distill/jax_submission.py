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
"""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from harness import spec
from submissions.fedavg import jax_submission as fedavg

DEFAULTS = {
    **fedavg.DEFAULTS,
    'distill_weight': 0.5,
    'distill_temperature': 1.0,
    'teacher_max_age': 20,
}


def hp(hyperparameters, name):
    return fedavg.hp(hyperparameters, name, DEFAULTS)


def validate_hyperparameters(values):
    problems = fedavg.validate_hyperparameters(values)
    if 'distill_weight' in values and not values['distill_weight'] >= 0:
        problems.append(f'distill_weight must be >= 0, got {values["distill_weight"]!r}')
    if 'distill_temperature' in values and not values['distill_temperature'] > 0:
        problems.append(f'distill_temperature must be > 0, got {values["distill_temperature"]!r}')
    return problems


def get_round_config(workload_name, hyperparameters):
    config = fedavg.get_round_config(workload_name, hyperparameters)
    return dataclasses.replace(config, late_updates='deliver')


def no_teacher():
    return {'teacher_delta': None, 'teacher_age': 0}


def init_server_state(workload, model_params, hyperparameters, rng):
    del workload, hyperparameters, rng
    return spec.ServerState(params=model_params, client_extras=no_teacher())


def distill_loss(workload, params, teacher_params, batch, weight, temperature):
    logits, _ = workload.model_fn(params, batch, None, spec.ForwardPassMode.TRAIN, None, False)
    teacher, _ = workload.model_fn(
        teacher_params, batch, None, spec.ForwardPassMode.EVAL, None, False
    )
    teacher = jax.lax.stop_gradient(teacher)
    mask = batch['weights']
    count = jnp.maximum(mask.sum(), 1.0)
    ce = workload.loss_fn(batch['targets'], logits, mask)['summed'] / count
    log_p_teacher = jax.nn.log_softmax(teacher / temperature, axis=-1)
    log_p_student = jax.nn.log_softmax(logits / temperature, axis=-1)
    kl = (jnp.exp(log_p_teacher) * (log_p_teacher - log_p_student)).sum(-1)  # (B, T)
    return ce + weight * temperature**2 * (kl * mask).sum() / count


@functools.partial(jax.jit, static_argnums=0)
def local_distill_sgd(
    workload, params, teacher_delta, client_data, learning_rate, max_grad_norm, weight, temperature
):
    """FedAvg's local SGD (clipped steps) on the distillation objective."""
    teacher_params = jax.tree.map(jnp.add, params, teacher_delta)

    def one_client(batches):  # (local_steps, B, T)
        def step(p, batch):
            loss, grads = jax.value_and_grad(distill_loss, argnums=1)(
                workload, p, teacher_params, batch, weight, temperature
            )
            lr = learning_rate * fedavg.clip_scale(grads, max_grad_norm)
            return jax.tree.map(lambda w, g: w - lr * g, p, grads), loss

        final, losses = jax.lax.scan(step, params, batches)
        return jax.tree.map(jnp.subtract, final, params), losses.mean()

    return jax.vmap(one_client)(client_data)


def client_update(workload, server_params, client_extras, client_data, hyperparameters, rng):
    del rng
    teacher_delta = (client_extras or {}).get('teacher_delta')
    weight = float(hp(hyperparameters, 'distill_weight'))
    if teacher_delta is None or weight == 0.0:
        return fedavg.sgd_client_update(
            workload, server_params, client_data, hyperparameters, DEFAULTS
        )
    deltas, losses = local_distill_sgd(
        workload,
        server_params,
        teacher_delta,
        client_data,
        *fedavg.client_optimizer(hyperparameters, DEFAULTS),
        jnp.float32(weight),
        jnp.float32(hp(hyperparameters, 'distill_temperature')),
    )
    return spec.ClientUpdates(deltas=deltas, metrics={'loss': losses})


def server_update(workload, server_state, updates, hyperparameters, server_version, rng):
    del workload, server_version, rng
    on_time = np.asarray(updates.on_time, dtype=bool)
    n = np.asarray(updates.num_examples, dtype=np.float64)
    params = server_state.params
    if on_time.any():
        weights = np.where(on_time, n, 0.0) / n[on_time].sum()
        mean_delta = fedavg.weighted_mean(updates.deltas, jnp.asarray(weights, jnp.float32))
        lr = jnp.float32(hp(hyperparameters, 'server_learning_rate'))
        params = fedavg.add_scaled(params, mean_delta, lr)
    extras = dict(server_state.client_extras or no_teacher())
    if (~on_time).any():
        weights = np.where(on_time, 0.0, n) / n[~on_time].sum()
        extras = {
            'teacher_delta': fedavg.weighted_mean(
                updates.deltas, jnp.asarray(weights, jnp.float32)
            ),
            'teacher_age': 0,
        }
    elif extras['teacher_delta'] is not None:
        age = int(extras['teacher_age']) + 1
        extras = (
            no_teacher()
            if age > int(hp(hyperparameters, 'teacher_max_age'))
            else {'teacher_delta': extras['teacher_delta'], 'teacher_age': age}
        )
    return spec.ServerState(params=params, client_extras=extras)
