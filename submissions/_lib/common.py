"""What the shipped submissions share that needs no framework (imports neither jax nor torch).

- ``hparam``: one way to read a hyperparameter, with a default for a missing one.
- The training settings every centralized baseline reads the same way
  (``warmup_factor``, ``grad_clip``, ``label_smoothing``, ``dropout_rate``) and
  their defaults.
- ``optimizer_options``: the structural options of an optimizer of the zoo
  that a search space sets, for its constructor in either framework.
- The base optimizers a baseline may stand on (``adamw``, ``nadamw``) and their
  fixed epsilon, so that ``jax_common`` and ``torch_common`` build the same ones.
- AlgoPerf's functions that the baselines do not change: ``data_selection``
  (the next batch) and ``get_batch_size`` (each workload's default batch size).
  The baselines have no ``prepare_for_eval``: they evaluate their current
  parameters, and a submission without one lets the harness's snapshots skip the
  optimizer state (a third of the memory, for Adam), so that the time to target
  is resolved to one step on more workloads.

The learning-rate schedule's math is ``schedules.py``; hyperparameter checks are
``hparam_checks.py``.
"""

from __future__ import annotations

from typing import Any, Dict, Iterator, Tuple

#: Fraction of step_hint spent warming up, when the search space does not say.
DEFAULT_WARMUP_FACTOR = 0.05
#: The base optimizers of the adamw / nadamw baselines, which SALT can also stand on.
BASE_OPTIMIZERS = ('adamw', 'nadamw')
#: Adam's epsilon in both base optimizers (not tuned, as in AlgoPerf's baselines).
ADAM_EPS = 1e-8


def hparam(hyperparameters: Any, name: str, default: Any) -> Any:
    """``hyperparameters.name``, or ``default`` when it is missing or None.

    ``hyperparameters`` is a namedtuple from the search space, or None under
    self-tuning; a value of None means "not set" as well.
    """
    value = getattr(hyperparameters, name, None) if hyperparameters is not None else None
    return default if value is None else value


def warmup_factor(hyperparameters: Any) -> float:
    return hparam(hyperparameters, 'warmup_factor', DEFAULT_WARMUP_FACTOR)


def grad_clip(hyperparameters: Any):
    """The global gradient-norm clip, or None: no clipping."""
    return hparam(hyperparameters, 'grad_clip', None)


def label_smoothing(hyperparameters: Any) -> float:
    return hparam(hyperparameters, 'label_smoothing', 0.0)


def dropout_rate(hyperparameters: Any) -> float:
    return hparam(hyperparameters, 'dropout_rate', 0.0)


#: Keyword options of the zoo's constructors (``optim_jax`` / ``optim_torch``) that a search
#: space may set; the constructor's default (AlgoPerf's baseline's) stands for one it leaves out.
_KRONECKER_OPTIONS = ('eps', 'block_size', 'start_preconditioning_step', 'max_preconditioner_dim',
                      'nesterov', 'graft_type')
OPTIMIZER_OPTIONS: Dict[str, Tuple[str, ...]] = {
    'shampoo': _KRONECKER_OPTIONS + ('precondition_every',),
    'sketchy': _KRONECKER_OPTIONS + ('rank',),
    'sonew': ('eps',),
    'lars': ('nesterov',),
}


def optimizer_options(hyperparameters: Any, family: str) -> Dict[str, Any]:
    """The options of ``OPTIMIZER_OPTIONS[family]`` that ``hyperparameters`` sets, as keywords."""
    options = {}
    for name in OPTIMIZER_OPTIONS[family]:
        value = hparam(hyperparameters, name, None)
        if value is not None:
            options[name] = value
    return options


def data_selection(workload, input_queue: Iterator[Dict[str, Any]], optimizer_state,
                   current_param_container, model_state, hyperparameters, global_step,
                   rng) -> Dict[str, Any]:
    """The next batch of the workload's own stream."""
    del workload, optimizer_state, current_param_container, model_state, hyperparameters
    del global_step, rng
    return next(input_queue)


def get_batch_size(workload_name: str) -> int:
    """Baselines use each workload's default batch size (see spec.get_batch_size)."""
    raise ValueError(f'no batch size chosen for {workload_name!r}: use the workload default')
