"""FedAvg whose late reports teach through distillation, in JAX (``fedavg_distill`` and
its control): the rules are in ``fed_distill.py``; FedAvg's local SGD and weighted
mean in ``federated_jax.py``."""

import jax
import jax.numpy as jnp
import numpy as np

from harness import spec, spec_federated
from submissions._lib import federated_jax as fed
from submissions._lib import fed_distill as common

# The harness looks these up in this module (the framework-neutral ones are common.py's).
validate_hyperparameters = common.validate_hyperparameters
get_round_config = common.get_round_config
init_server_state = common.init_server_state


def distill_loss(workload, params, batch, teacher_params, weight, temperature):
    """CE + weight * T^2 * KL(teacher || student), the teacher run in EVAL mode."""
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


def client_update(workload, server_params, client_extras, client_data, hyperparameters, rng):
    """FedAvg's local SGD, on the distillation objective while a teacher exists."""
    del rng
    teacher_delta = (client_extras or {}).get('teacher_delta')
    weight = float(common.hp(hyperparameters, 'distill_weight'))
    if teacher_delta is None or weight == 0.0:
        return fed.sgd_client_update(
            workload, server_params, client_data, hyperparameters, common.DEFAULTS
        )
    teacher_params = jax.tree.map(jnp.add, server_params, teacher_delta)
    deltas, losses = fed.local_sgd(
        workload,
        distill_loss,
        server_params,
        client_data,
        *fed.client_optimizer(hyperparameters, common.DEFAULTS),
        teacher_params,
        jnp.float32(weight),
        jnp.float32(common.hp(hyperparameters, 'distill_temperature')),
    )
    return spec_federated.ClientUpdates(deltas=deltas, metrics={'loss': losses})


def server_update(workload, server_state, updates, hyperparameters, server_version, rng):
    del workload, server_version, rng
    on_time = np.asarray(updates.on_time, dtype=bool)
    params = server_state.params
    if on_time.any():
        delta = fed.example_mean_delta(updates, on_time)
        params = fed.server_step(params, delta, hyperparameters, common.DEFAULTS)
    late_delta = fed.example_mean_delta(updates, ~on_time) if (~on_time).any() else None
    extras = common.next_teacher(server_state.client_extras, late_delta, hyperparameters)
    return spec_federated.ServerState(params=params, client_extras=extras)
