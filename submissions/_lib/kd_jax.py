"""Distillation from a small teacher in JAX: SALT, SALT_DS and KD-only (math: ``kd.py``).

A submission is a mode and three lines::

    init_optimizer_state = kd_jax.make_init_optimizer_state('salt')
    update_params = kd_jax.update_params
    data_selection = kd_jax.data_selection

The teacher runs outside the jitted train step (each call is timed by the
workload) and its output enters the step as an argument; the step is jitted
once per teacher form (none, full logits, top-k), and ω and τ are traced
numbers, so a decaying ω never recompiles; SALT's switch to plain steps after
n_KD compiles the plain step once (the harness logs it as a recompile).
Underneath is the base optimizer ``optimizer``, AdamW or NAdamW
(``jax_common.adam_tx``), with the baselines' warmup + cosine schedule and
gradient clipping.

Same functions, same order as ``kd_torch``.
"""

from __future__ import annotations

import functools
from typing import Any, Dict, Iterator, Optional, Tuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from harness import spec
from submissions._lib import common, jax_common, kd

#: Where the student's embedding table is in the flax parameters (its rows: the vocabulary).
EMBEDDING = ('embed', 'embedding')

Teacher = Optional[Tuple[jax.Array, Optional[jax.Array]]]


# ---- the loss -------------------------------------------------------------------------------


def token_losses(
    logits: jax.Array, targets: jax.Array, teacher: Teacher, kd_weight, temperature
) -> Tuple[jax.Array, jax.Array, jax.Array]:
    """(mixed loss, CE with the labels, CE with the teacher), each (B, T).

    ``teacher``: None (plain next-token loss), (logits (B, T, V), None), or
    (log-probabilities (B, T, k), token ids (B, T, k)) of a top-k teacher.
    """
    z = logits.astype(jnp.float32)  # (B, T, V)
    lse = jax.nn.logsumexp(z, axis=-1)
    z_y = jnp.take_along_axis(z, targets[..., None].astype(jnp.int32), -1)[..., 0]
    label_ce = lse - z_y
    if teacher is None:
        return label_ce, label_ce, jnp.zeros_like(label_ce)
    values, indices = teacher
    p_t = jax.nn.softmax(values.astype(jnp.float32) / temperature, axis=-1)  # renormalized
    z_t = z if indices is None else jnp.take_along_axis(z, indices.astype(jnp.int32), -1)
    teacher_ce = lse - jnp.sum(p_t * z_t, axis=-1)
    return (1.0 - kd_weight) * label_ce + kd_weight * teacher_ce, label_ce, teacher_ce


# ---- optimizer and train step ---------------------------------------------------------------


def make_init_optimizer_state(mode: str):
    def init_optimizer_state(
        workload: spec.Workload,
        model_params: spec.ParameterContainer,
        model_state: spec.ModelAuxiliaryState,
        hyperparameters: spec.Hyperparameters,
        rng: spec.RandomState,
    ) -> spec.OptimizerState:
        del model_state, rng
        settings = kd.trial_settings(workload, hyperparameters, mode, EMBEDDING)
        tx = jax_common.adam_tx(
            hyperparameters, jax_common.lr_schedule(workload, hyperparameters), settings.optimizer
        )
        return jax_common.placed(tx.init(model_params)), tx.update, settings

    return init_optimizer_state


# dropout_rate is static: a model may branch on it in Python (lm skips dropout at rate 0).
@functools.partial(jax.jit, static_argnums=(0, 1, 11), donate_argnums=(2, 3, 4))
def _train_step(
    workload,
    update_fn,
    model_state,
    optimizer_state,
    params,
    batch,
    teacher,
    kd_weight,
    temperature,
    rng,
    grad_clip,
    dropout_rate,
):
    def loss_fn(p):
        logits, new_model_state = workload.model_fn(
            p,
            batch,
            model_state,
            spec.ForwardPassMode.TRAIN,
            rng,
            update_batch_norm=True,
            dropout_rate=dropout_rate,
        )
        mixed, label_ce, teacher_ce = token_losses(
            logits, batch['targets'], teacher, kd_weight, temperature
        )
        mask = batch.get('weights')
        mask = jnp.ones_like(mixed) if mask is None else mask.astype(jnp.float32)
        n_valid = mask.sum()
        aux = (
            new_model_state,
            (label_ce * mask).sum() / n_valid,
            (teacher_ce * mask).sum() / n_valid,
        )
        return (mixed * mask).sum() / n_valid, aux

    (loss, (new_model_state, label_ce, teacher_ce)), grads = jax.value_and_grad(
        loss_fn, has_aux=True
    )(params)
    grads, grad_norm = jax_common.clip_grads(grads, grad_clip)
    updates, new_optimizer_state = update_fn(grads, optimizer_state, params)
    return (
        new_optimizer_state,
        optax.apply_updates(params, updates),
        new_model_state,
        loss,
        grad_norm,
        label_ce,
        teacher_ce,
    )


def update_params(
    workload: spec.Workload,
    current_param_container: spec.ParameterContainer,
    current_params_types: spec.ParameterTypeTree,
    model_state: spec.ModelAuxiliaryState,
    hyperparameters: spec.Hyperparameters,
    batch: Dict[str, spec.Tensor],
    loss_type: spec.LossType,
    optimizer_state: spec.OptimizerState,
    eval_results,
    global_step: int,
    rng: spec.RandomState,
    train_state=None,
) -> spec.UpdateReturn:
    del current_params_types, loss_type, eval_results, train_state
    opt_state, update_fn, settings = optimizer_state
    kd_weight = kd.kd_weight_at(global_step, settings)
    teacher = kd.teacher_targets(workload, batch, settings) if kd_weight > 0.0 else None
    new_opt_state, new_params, new_model_state, loss, grad_norm, label_ce, teacher_ce = _train_step(
        workload,
        update_fn,
        model_state,
        opt_state,
        current_param_container,
        kd.student_batch(batch),
        teacher,
        kd_weight,
        settings.temperature,
        rng,
        common.grad_clip(hyperparameters),
        float(common.dropout_rate(hyperparameters)),
    )
    if workload.metrics_logger is not None:
        metrics = {
            'loss': loss,
            'grad_norm': grad_norm,
            'kd_weight': kd_weight,
            'kd_stage': kd.kd_stage(global_step, settings),
            'label_loss': label_ce,
        }
        if teacher is not None:
            metrics['teacher_ce'] = teacher_ce
        workload.metrics_logger.append_scalar_metrics(metrics, global_step)
    return (new_opt_state, update_fn, settings), new_params, new_model_state


# ---- data selection (SALT_DS) ---------------------------------------------------------------


def masked_median(x: jax.Array, valid: jax.Array) -> jax.Array:
    """Row medians (the mean of the two middle values) of x over ``valid``; NaN if none."""
    count = valid.sum(-1)
    ordered = jnp.sort(jnp.where(valid, x, jnp.inf), axis=-1)
    last = x.shape[-1] - 1
    lower = jnp.take_along_axis(ordered, jnp.clip((count - 1) // 2, 0, last)[:, None], -1)[:, 0]
    upper = jnp.take_along_axis(ordered, jnp.clip(count // 2, 0, last)[:, None], -1)[:, 0]
    return jnp.where(count > 0, 0.5 * (lower + upper), jnp.nan)


@jax.jit
def sequence_scores(
    values: jax.Array, indices: jax.Array, targets: jax.Array, mask: Optional[jax.Array]
) -> jax.Array:
    """(P,) SALT_DS scores: median teacher loss over tokens whose target is in the top-k."""
    hit = indices == targets[..., None].astype(indices.dtype)  # (P, T, k)
    valid = hit.any(-1)
    if mask is not None:
        valid = valid & (mask > 0)
    loss = -jnp.sum(jnp.where(hit, values, 0.0), axis=-1)  # (P, T)
    return masked_median(loss, valid)


@functools.partial(jax.jit, static_argnums=1)
def _top_log_probs(logits: jax.Array, k: int) -> Tuple[jax.Array, jax.Array]:
    return jax.lax.top_k(jax.nn.log_softmax(logits, axis=-1), k)


def data_selection(
    workload,
    input_queue: Iterator[Dict[str, Any]],
    optimizer_state,
    current_param_container,
    model_state,
    hyperparameters,
    global_step,
    rng,
) -> Dict[str, spec.Tensor]:
    """The next batch; under SALT_DS while ω > 0, the teacher-selected band of a larger pool."""
    del current_param_container, model_state, hyperparameters, rng
    settings = optimizer_state[2]
    if not kd.uses_selection(global_step, settings):
        return next(input_queue)
    draws = [next(input_queue) for _ in range(settings.pool_factor)]
    batch_size = int(draws[0]['inputs'].shape[0])
    pool = {key: jnp.concatenate([d[key] for d in draws]) for key in draws[0]}
    # One teacher pass serves both scoring and the KD loss of the kept rows.
    select_k = settings.select_top_k
    if settings.top_k:
        values, indices = workload.teacher_topk(pool, max(select_k, settings.top_k))
        scored = values[..., :select_k], indices[..., :select_k]
    else:
        logits = workload.teacher_logits(pool)
        scored = _top_log_probs(logits, select_k)
    scores = sequence_scores(*scored, pool['targets'], pool.get('weights'))
    keep = jnp.asarray(
        kd.band_indices(
            np.asarray(scores), batch_size, settings.low_percentile, settings.high_percentile
        )
    )
    batch = {key: jnp.take(value, keep, axis=0) for key, value in pool.items()}
    if settings.top_k:
        batch[kd.TOPK_VALUES] = jnp.take(values[..., : settings.top_k], keep, axis=0)
        batch[kd.TOPK_INDICES] = jnp.take(indices[..., : settings.top_k], keep, axis=0)
    else:
        batch[kd.LOGITS] = jnp.take(logits, keep, axis=0)
    return batch
