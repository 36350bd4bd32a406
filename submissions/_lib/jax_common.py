"""The JAX side of the baselines: one jitted train step around any optax optimizer.

A baseline supplies ``build_tx(workload, hyperparameters, learning_rate) ->
optax.GradientTransformation`` (``learning_rate`` is an optax schedule from
``schedules.warmup_cosine_factor``) and gets AlgoPerf's submission functions:

    init_optimizer_state = jax_common.make_init_optimizer_state(build_tx)
    update_params = jax_common.update_params

The train step averages the loss over valid examples, clips the global grad
norm to ``hyperparameters.grad_clip`` when given, applies the optimizer, and
reports the loss to ``workload.metrics_logger`` (the harness stops a trial on a
non-finite loss). It is jitted once per trial: the workload view and the
optimizer's update function are static arguments whose identity does not
change between steps, so nothing recompiles after the first step.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Dict, Iterator

import jax
import jax.numpy as jnp
import optax

from harness import spec

BuildTx = Callable[[Any, Any, optax.Schedule], optax.GradientTransformation]


def hparam(hyperparameters, name: str, default):
    return getattr(hyperparameters, name, default) if hyperparameters is not None else default


def lr_schedule(workload, hyperparameters) -> optax.Schedule:
    peak = hyperparameters.learning_rate
    step_hint = workload.step_hint
    warmup_factor = hparam(hyperparameters, 'warmup_factor', 0.05)
    warm = max(int(warmup_factor * step_hint), 1)
    decay = max(step_hint - warm, 1)

    def schedule(count):
        # jnp version of schedules.warmup_cosine_factor (count = steps taken so far).
        count = jnp.asarray(count, jnp.float32)
        warm_lr = (count + 1.0) / warm
        progress = jnp.clip((count - warm) / decay, 0.0, 1.0)
        cos_lr = 0.5 * (1.0 + jnp.cos(jnp.pi * progress))
        return peak * jnp.where(count < warm, warm_lr, cos_lr)

    return schedule


def _replicated():
    mesh = jax.sharding.Mesh(jax.devices(), ('batch',))
    return jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())


def make_init_optimizer_state(build_tx: BuildTx):
    def init_optimizer_state(workload: spec.Workload, model_params: spec.ParameterContainer,
                             model_state: spec.ModelAuxiliaryState,
                             hyperparameters: spec.Hyperparameters,
                             rng: spec.RandomState) -> spec.OptimizerState:
        del model_state, rng
        tx = build_tx(workload, hyperparameters, lr_schedule(workload, hyperparameters))
        # Placed like the (replicated) parameters: a state left on the default
        # device would change placement after the first step and recompile it.
        # One buffer per leaf: an optimizer may put the same zeros in two slots,
        # and the train step donates its state (a buffer cannot be donated twice).
        state = jax.device_put(tx.init(model_params), _replicated())
        return jax.tree.map(lambda x: x.copy() if isinstance(x, jax.Array) else x, state), \
            tx.update

    return init_optimizer_state


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
    grad_norm = optax.tree.norm(grads)
    if grad_clip is not None:
        scale = jnp.minimum(1.0, grad_clip / (grad_norm + 1e-6))
        grads = jax.tree.map(lambda g: g * scale, grads)
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
        hparam(hyperparameters, 'grad_clip', None), hparam(hyperparameters, 'label_smoothing', 0.0),
        hparam(hyperparameters, 'dropout_rate', 0.0))
    if workload.metrics_logger is not None:
        # Device arrays: the harness converts them after the step, off the clock.
        workload.metrics_logger.append_scalar_metrics(
            {'loss': loss, 'grad_norm': grad_norm}, global_step)
    return (new_opt_state, update_fn), new_params, new_model_state


def prepare_for_eval(workload, current_param_container, current_params_types, model_state,
                     hyperparameters, loss_type, optimizer_state, eval_results, global_step,
                     rng) -> spec.UpdateReturn:
    del workload, current_params_types, hyperparameters, loss_type, eval_results, global_step, rng
    return optimizer_state, current_param_container, model_state


def data_selection(workload, input_queue: Iterator[Dict[str, Any]], optimizer_state,
                   current_param_container, model_state, hyperparameters, global_step,
                   rng) -> Dict[str, spec.Tensor]:
    del workload, optimizer_state, current_param_container, model_state, hyperparameters
    del global_step, rng
    return next(input_queue)


def get_batch_size(workload_name: str) -> int:
    """Baselines use each workload's default batch size (see spec.get_batch_size)."""
    raise ValueError(f'no batch size chosen for {workload_name!r}: use the workload default')
