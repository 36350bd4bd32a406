"""FedAvg whose late reports teach through distillation, in JAX: the rules
are in ``common.py``."""

import functools

import jax
import jax.numpy as jnp
import numpy as np

from harness import spec, spec_federated
from submissions.fedavg import jax_submission as fedavg
from submissions.fedavg_distill import common

# The framework-neutral half; the harness looks its functions up in this module.
DEFAULTS = common.DEFAULTS
hp = common.hp
validate_hyperparameters = common.validate_hyperparameters
get_round_config = common.get_round_config
init_server_state = common.init_server_state


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
    return spec_federated.ClientUpdates(deltas=deltas, metrics={'loss': losses})


def mean_delta_over(updates, mask):
    """sum_i n_i Delta_i / sum_i n_i over the reports in ``mask``."""
    return fedavg.mean_delta(updates, common.example_fractions(updates.num_examples, mask))


def server_update(workload, server_state, updates, hyperparameters, server_version, rng):
    del workload, server_version, rng
    on_time = np.asarray(updates.on_time, dtype=bool)
    params = server_state.params
    if on_time.any():
        lr = jnp.float32(hp(hyperparameters, 'server_learning_rate'))
        params = fedavg.add_scaled(params, mean_delta_over(updates, on_time), lr)
    late_delta = mean_delta_over(updates, ~on_time) if (~on_time).any() else None
    extras = common.next_teacher(server_state.client_extras, late_delta, hyperparameters)
    return spec_federated.ServerState(params=params, client_extras=extras)
