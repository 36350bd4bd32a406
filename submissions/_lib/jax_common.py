"""The JAX side of the baselines: one jitted train step around any optax optimizer.

A baseline supplies ``build_tx(workload, hyperparameters, learning_rate) ->
optax.GradientTransformation`` (``learning_rate`` is the optax schedule of
``lr_schedule``) and gets AlgoPerf's submission functions:

    init_optimizer_state = jax_common.make_init_optimizer_state(build_tx)
    update_params = jax_common.update_params

(``data_selection`` and ``get_batch_size`` need no
framework: ``common.py``). The train step averages the loss over valid
examples, clips the global grad norm to ``hyperparameters.grad_clip`` when
given, applies the optimizer, and reports the loss to
``workload.metrics_logger`` (the harness stops a trial on a non-finite loss).
It is jitted once per trial: the workload view and the optimizer's update
function are static arguments whose identity does not change between steps, so
nothing recompiles after the first step.

Same functions, same order as ``torch_common``.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Dict

import jax
import jax.numpy as jnp
import optax

from harness import spec
from submissions._lib import common, schedules

BuildTx = Callable[[Any, Any, optax.Schedule], optax.GradientTransformation]


def lr_schedule(workload, hyperparameters) -> optax.Schedule:
    """``schedules.warmup_cosine_factor`` times the peak learning rate, in jnp."""
    peak = hyperparameters.learning_rate
    factor = common.warmup_factor(hyperparameters)
    warm = schedules.warmup_steps(workload.step_hint, factor)
    decay = schedules.decay_steps(workload.step_hint, factor)

    def schedule(count):
        # count = steps taken so far, i.e. the 0-based step being taken.
        count = jnp.asarray(count, jnp.float32)
        warm_lr = (count + 1.0) / warm
        progress = jnp.clip((count - warm) / decay, 0.0, 1.0)
        cos_lr = 0.5 * (1.0 + jnp.cos(jnp.pi * progress))
        return peak * jnp.where(count < warm, warm_lr, cos_lr)

    return schedule


def adam_tx(hyperparameters, learning_rate, optimizer: str) -> optax.GradientTransformation:
    """AdamW or NAdamW (``common.BASE_OPTIMIZERS``) as the adamw / nadamw baselines set them."""
    make = {'adamw': optax.adamw, 'nadamw': optax.nadamw}[optimizer]
    return make(
        learning_rate=learning_rate,
        b1=1.0 - hyperparameters.one_minus_beta1,
        b2=hyperparameters.beta2,
        eps=common.ADAM_EPS,
        weight_decay=hyperparameters.weight_decay,
    )


def _replicated():
    mesh = jax.sharding.Mesh(jax.devices(), ('batch',))
    return jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())


def placed(optimizer_state):
    """The optimizer state placed like the (replicated) parameters, one buffer per leaf.

    A state left on the default device would change placement after the first
    step and recompile it. An optimizer may put the same zeros in two slots,
    and the train steps donate their state (a buffer cannot be donated twice).
    """
    state = jax.device_put(optimizer_state, _replicated())
    return jax.tree.map(lambda x: x.copy() if isinstance(x, jax.Array) else x, state)


def make_init_optimizer_state(build_tx: BuildTx):
    def init_optimizer_state(workload: spec.Workload, model_params: spec.ParameterContainer,
                             model_state: spec.ModelAuxiliaryState,
                             hyperparameters: spec.Hyperparameters,
                             rng: spec.RandomState) -> spec.OptimizerState:
        del model_state, rng
        tx = build_tx(workload, hyperparameters, lr_schedule(workload, hyperparameters))
        return placed(tx.init(model_params)), tx.update

    return init_optimizer_state


def clip_grads(grads, grad_clip):
    """(grads scaled to a global norm of at most ``grad_clip`` (None: as they are), their norm)."""
    grad_norm = optax.tree.norm(grads)
    if grad_clip is not None:
        scale = jnp.minimum(1.0, grad_clip / (grad_norm + 1e-6))
        grads = jax.tree.map(lambda g: g * scale, grads)
    return grads, grad_norm


@functools.partial(jax.jit, static_argnums=(0, 1), donate_argnums=(2, 3, 4))
def _train_step(workload, update_fn, model_state, optimizer_state, params, batch, rng,
                grad_clip, label_smoothing, dropout_rate):
    def loss_fn(p):
        logits, new_model_state = workload.model_fn(
            p, batch, model_state, spec.ForwardPassMode.TRAIN, rng, update_batch_norm=True,
            dropout_rate=dropout_rate)
        out = workload.loss_fn(label_batch=batch['targets'], logits_batch=logits,
                               mask_batch=batch.get('weights'), label_smoothing=label_smoothing)
        return out['summed'] / out['n_valid_examples'], new_model_state

    (loss, new_model_state), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
    grads, grad_norm = clip_grads(grads, grad_clip)
    updates, new_optimizer_state = update_fn(grads, optimizer_state, params)
    return new_optimizer_state, optax.apply_updates(params, updates), new_model_state, loss, \
        grad_norm


def update_params(workload: spec.Workload, current_param_container: spec.ParameterContainer,
                  current_params_types: spec.ParameterTypeTree,
                  model_state: spec.ModelAuxiliaryState,
                  hyperparameters: spec.Hyperparameters, batch: Dict[str, spec.Tensor],
                  loss_type: spec.LossType, optimizer_state: spec.OptimizerState,
                  eval_results, global_step: int, rng: spec.RandomState,
                  train_state=None) -> spec.UpdateReturn:
    del current_params_types, loss_type, eval_results, train_state
    opt_state, update_fn = optimizer_state
    new_opt_state, new_params, new_model_state, loss, grad_norm = _train_step(
        workload, update_fn, model_state, opt_state, current_param_container, batch, rng,
        common.grad_clip(hyperparameters), common.label_smoothing(hyperparameters),
        common.dropout_rate(hyperparameters))
    if workload.metrics_logger is not None:
        # Device arrays: the harness converts them after the step, off the clock.
        workload.metrics_logger.append_scalar_metrics(
            {'loss': loss, 'grad_norm': grad_norm}, global_step)
    return (new_opt_state, update_fn), new_params, new_model_state
