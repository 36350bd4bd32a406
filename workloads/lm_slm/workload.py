"""The lm_slm workload, framework-free: lm plus a frozen teacher and its accounting.

Everything of the student task is ``lm``'s (model, data under ``<data_dir>/lm/``,
sizes, schedules (step_hint) and validation targets: the variants change only the
teacher, so they keep lm's target); only the tiny budget is shorter (``BUDGET_S``).
The additions:

- ``teacher_logits(batch)`` -> float32 logits (B, T, V) of the teacher, and
  ``teacher_topk(batch, k)`` -> (values, indices), each (B, T, k): the
  teacher's *log-probabilities* (log-softmax at temperature 1 over the whole
  vocabulary) of its k most likely next tokens, most likely first. Log-probabilities
  rather than raw logits because they say more (the teacher's loss on a token
  in its top-k is ``-value``) and renormalizing a truncated distribution at any
  temperature gives the same result from either. ``batch`` is a batch dict
  (its ``'inputs'`` are used) or the input token array itself.
- Both are ``teacher_calls``: the submission's view of the workload times every
  call (device synchronized before each clock read) into a timer only the
  harness holds (``harness.submission.view``); ``teacher_time_s`` reads that
  timer. A submission calls them from ``update_params`` or ``data_selection``,
  so the time is also inside the submission's clock; ``teacher_time_s`` says how
  much of it was the teacher. The workload counts ``teacher_sequences`` and
  their forward ``teacher_flops`` itself.
- The teacher is frozen: no gradient flows into it (JAX: a closed-over constant
  outside the caller's trace; PyTorch: ``requires_grad=False``, ``no_grad``), its
  parameters are not among the attributes a submission's workload view exposes
  (``submission_attributes`` lists the two functions only), and it is rebuilt
  from its checksummed checkpoint for every trial.
- The teacher's regime is checked by ``check_data`` (``teacher.check_regime``):
  the base workload's teacher must end at least ``teacher.WEAK_MARGIN_NATS``
  above the trial's target; only the ``strong_teacher`` control may beat it.
- ``reference_steps_to_target``: the calibrated one when the budget has it,
  else ``REFERENCE_STEPS_TO_TARGET`` (SALT's distillation phase is a fraction of it).
- ``teacher_training_cost()`` -> the teacher's one-off training (time, FLOPs,
  tokens, epochs) and where it ended (validation loss, margin to the target),
  from its ``teacher.json``; the harness copies it into meta.json.

The teacher is loaded in ``init_model_fn`` (off the clock: model construction);
its first call compiles, on the clock, as any first call does.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Dict, Optional

from harness import spec
from harness.errors import DataNotPreparedError, UserInputError
from workloads.lm import data as lm_data
from workloads.lm import workload as lm
from workloads.lm_slm import teacher as teacher_lib

NAME = 'lm_slm'
VARIANTS = ('weaker_teacher', 'undertrained_teacher', 'strong_teacher')

#: Steps the reference baseline needs to lm's shipped target, where no calibration says.
#: tiny: ``workloads/lm/workload.py``'s measurement (AdamW, lr 2e-3, batch 16: 4.86 at step
#: 300, 4.73 at 400, target 4.75 at about 390) and the 2026-11 salt suite's nadamw runs
#: (465, 343, 361). small: the rough H100 note there (4.0 near step 220), uncalibrated.
REFERENCE_STEPS_TO_TARGET = {'tiny': 390, 'small': 220}
#: lm's budget of each size, but at tiny 120 s of submission time instead of lm's 150 s: the
#: salt suite's 30 trials then fit in 90 minutes on 2 CPU cores even when none meets its
#: target on a busy machine (measured: ~1.7 s per evaluation and ~30 s of start-up and
#: evaluation per trial there). 120 s is still ~2.7x the baseline's ~45 s to the target on a
#: quiet CPU. Target, evaluation period and step_hint (the baselines' schedule) stay lm's.
BUDGET_S = {'tiny': 120.0, 'small': None}


def check_size_variant(size: Optional[str], variant: Optional[str]) -> None:
    problems = []
    if size not in lm.SIZES:
        problems.append(f"unknown size {size!r}; known sizes: {', '.join(lm.SIZES)}")
    if variant is not None and variant not in VARIANTS:
        problems.append(
            f"unknown variant {variant!r}; known variants: {', '.join(VARIANTS)} "
            '(or none for the default, weak teacher)'
        )
    if problems:
        raise UserInputError(f"Workload 'lm_slm': {'; '.join(problems)}.")


class FixedConfig:
    """Put before an lm framework workload class: lm's model at a config of our choosing
    (a teacher's) rather than the one of its size."""

    def __init__(self, size: str, config: lm.LmConfig):
        super().__init__(size=size)
        self._fixed_config = config

    @property
    def config(self) -> lm.LmConfig:
        return self._fixed_config


class LmSlmMixin:
    """Put before an lm framework workload class: ``class X(LmSlmMixin, LmJaxWorkload)``.

    The framework class provides ``_load_teacher(config, weights)``,
    ``_teacher_logits_impl(inputs)``, ``_teacher_topk_impl(inputs, k)``,
    and ``_teacher_inputs(batch_or_inputs)``.
    """

    name = NAME
    variants = VARIANTS
    submission_attributes = ('teacher_logits', 'teacher_topk')
    #: Both run the teacher: the submission's view times them (harness.submission.view).
    teacher_calls = ('teacher_logits', 'teacher_topk')
    #: Whose calibrated budget and target this workload takes: the student's task is lm's.
    budget_workload = 'lm'

    def __init__(
        self,
        size: Optional[str] = None,
        variant: Optional[str] = None,
        budget: Optional[spec.Budget] = None,
        *args,
        **kwargs,
    ) -> None:
        size = size or lm.SIZES_ORDER[0]
        check_size_variant(size, variant)
        budget = budget or self.default_budget(size, variant)
        if budget.reference_steps_to_target is None:
            budget = dataclasses.replace(
                budget, reference_steps_to_target=REFERENCE_STEPS_TO_TARGET[size]
            )
        # lm's constructor refuses every variant: build the student as lm, then set ours.
        super().__init__(size, None, budget, *args, **kwargs)
        self.variant = variant
        self.teacher_name = teacher_lib.TEACHER_OF_VARIANT[variant]
        self._call_timer = None
        self.teacher_sequences = 0
        self.teacher_flops = 0.0
        self._teacher_meta: Optional[Dict[str, Any]] = None
        self._teacher_data_dir: Optional[str] = None
        self._teacher_config: Optional[lm.LmConfig] = None

    def default_budget(self, size: Optional[str], variant: Optional[str]) -> spec.Budget:
        """lm's target, schedule and evaluation period (the student's task is lm's, whichever
        the teacher), ``BUDGET_S`` and the shipped reference steps to that target."""
        check_size_variant(size, variant)
        budget = lm.BUDGETS[size]
        return dataclasses.replace(
            budget,
            max_allowed_runtime_sec=BUDGET_S[size] or budget.max_allowed_runtime_sec,
            reference_steps_to_target=REFERENCE_STEPS_TO_TARGET[size],
        )

    # ---- data and teacher checks (off the clock) ----

    def check_data(self, data_dir: str) -> None:
        """lm's data check, then the teacher's: prepared, fitting student and data, and in
        its regime against this trial's target (weaker by the margin, unless the control)."""
        super().check_data(data_dir)
        meta = teacher_lib.load_meta(data_dir, self.size, self.teacher_name)
        teacher_lib.check_compatible(meta, self.config, lm_data.load_meta(data_dir), data_dir)
        teacher_lib.check_regime(meta, self.validation_target_value, self.variant, data_dir)
        self._teacher_meta = meta
        self._teacher_data_dir = str(data_dir)

    def teacher_training_cost(self) -> Optional[Dict[str, Any]]:
        """The teacher's one-off training and where it ended, for meta.json.

        ``time_s``, ``flops`` (off the clock: scoring amortizes them), ``steps``,
        ``tokens``, ``epochs``, ``max_epochs``, ``split``; ``validation_loss`` at the end
        of training, the student's ``target`` and ``margin_nats`` (loss − target: > 0 is
        a teacher weaker than the target); ``name``, ``role`` (weak | strong_control),
        ``device``, ``framework``, ``weights_sha256``. None before ``check_data``.
        """
        if self._teacher_meta is None:
            return None
        training = self._teacher_meta.get('training', {})
        loss = training.get('validation_loss')
        target = self.validation_target_value
        return {
            'time_s': training.get('time_s'),
            'flops': training.get('flops'),
            'steps': training.get('steps'),
            'tokens': training.get('tokens'),
            'epochs': training.get('epochs'),
            'max_epochs': training.get('max_epochs'),
            'split': training.get('split'),
            'validation_loss': loss,
            'target': target,
            'margin_nats': None if loss is None else float(loss) - float(target),
            'name': self.teacher_name,
            'role': self._teacher_meta.get('role', 'weak'),
            'device': training.get('device'),
            'framework': training.get('framework'),
            'weights_sha256': self._teacher_meta.get('weights_sha256'),
        }

    def init_model_fn(self, rng: spec.RandomState) -> spec.ModelInitState:
        """The student (lm's init), then the teacher from its checkpoint (both off the clock)."""
        out = super().init_model_fn(rng)
        self._load_teacher_checkpoint()
        return out

    def _load_teacher_checkpoint(self) -> None:
        """Read and verify the checkpoint; hand it to the framework (init_model_fn calls this)."""
        if self._teacher_meta is None:
            raise DataNotPreparedError(
                'lm_slm: call check_data(data_dir) before init_model_fn, so the workload '
                f'finds its teacher (prepared by `{teacher_lib.PREPARE_COMMAND}`).'
            )
        weights = teacher_lib.load_weights(
            self._teacher_data_dir, self.size, self.teacher_name, self._teacher_meta
        )
        self._teacher_config = teacher_lib.config_from_meta(self._teacher_meta)
        self._load_teacher(self._teacher_config, weights)

    def attach_call_timer(self, timer) -> None:
        """The harness's timer of the teacher calls (the submission view attaches it)."""
        self._call_timer = timer

    @property
    def teacher_time_s(self) -> float:
        """Seconds of teacher calls, as the harness's timer measured them (0 without one)."""
        return 0.0 if self._call_timer is None else float(self._call_timer.time_s)

    def teacher_accounting(self) -> Dict[str, float]:
        """What the teacher cost so far; the harness saves it with each checkpoint."""
        timer = {} if self._call_timer is None else self._call_timer.state_dict()
        return {
            'teacher_time_s': float(timer.get('teacher_time_s', 0.0)),
            'teacher_calls': int(timer.get('teacher_calls', 0)),
            'teacher_sequences': int(self.teacher_sequences),
            'teacher_flops': float(self.teacher_flops),
        }

    def restore_teacher_accounting(self, saved: Optional[Dict[str, float]]) -> None:
        """Continue the counts of an interrupted trial (None or {}: keep zeros)."""
        saved = saved or {}
        if self._call_timer is not None:
            self._call_timer.load_state_dict(saved)
        self.teacher_sequences = int(saved.get('teacher_sequences', 0))
        self.teacher_flops = float(saved.get('teacher_flops', 0.0))

    @property
    def teacher_config(self) -> Optional[lm.LmConfig]:
        return self._teacher_config

    # ---- teacher access (on the submission's clock) ----

    def teacher_logits(self, batch) -> spec.Tensor:
        """The teacher's float32 logits (B, T, V) for ``batch['inputs']`` (or an input array)."""
        return self._counted(batch, lambda inputs: self._teacher_logits_impl(inputs))

    def teacher_topk(self, batch, k: int):
        """(log-probabilities, token ids), each (B, T, k), of the teacher's k likeliest tokens."""
        vocab = self.config.vocab_size
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= vocab:
            raise UserInputError(
                f'teacher_topk: k = {k!r} is invalid: it must be an integer from 1 to the '
                f'vocabulary size ({vocab}). Lower the top-k hyperparameter.'
            )
        return self._counted(batch, lambda inputs: self._teacher_topk_impl(inputs, k))

    def _counted(self, batch, run):
        """Run the teacher on the batch's inputs; count its sequences and FLOPs (the
        time is the view's to measure)."""
        if self._teacher_config is None:
            raise RuntimeError('lm_slm: the teacher is loaded by init_model_fn; call it first.')
        inputs = self._teacher_inputs(batch['inputs'] if isinstance(batch, Mapping) else batch)
        out = run(inputs)
        n_sequences, seq_len = (int(n) for n in inputs.shape[:2])
        self.teacher_sequences += n_sequences
        self.teacher_flops += n_sequences * teacher_lib.teacher_forward_flops(
            self._teacher_config, seq_len
        )
        return out
