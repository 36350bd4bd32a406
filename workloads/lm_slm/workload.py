"""The lm_slm workload, framework-free: lm plus a frozen teacher and its accounting.

Everything of the student task is ``lm``'s (model, data under ``<data_dir>/lm/``,
sizes, budgets and validation targets: the variants change only the teacher,
so they keep lm's target). The additions:

- ``teacher_logits(batch)`` -> float32 logits (B, T, V) of the teacher, and
  ``teacher_topk(batch, k)`` -> (values, indices), each (B, T, k): the
  teacher's *log-probabilities* (log-softmax at temperature 1 over the whole
  vocabulary) of its k most likely next tokens, most likely first. Log-probabilities
  rather than raw logits because they say more (the teacher's loss on a token
  in its top-k is ``-value``) and renormalizing a truncated distribution at any
  temperature gives the same result from either. ``batch`` is a batch dict
  (its ``'inputs'`` are used) or the input token array itself.
- Each call waits for its inputs, runs the teacher, waits for the result
  (``block_until_ready`` / ``torch.cuda.synchronize``) and adds the time between
  to ``teacher_time_s`` (clock ``teacher_clock``, ``time.perf_counter`` unless a
  test replaces it). A submission calls them from ``update_params`` or
  ``data_selection``, so the time is also inside the submission's clock;
  ``teacher_time_s`` says how much of it was the teacher. ``teacher_sequences``
  counts the sequences the teacher saw, ``teacher_flops`` their forward FLOPs.
- The teacher is frozen: no gradient flows into it (JAX: a closed-over constant
  outside the caller's trace; PyTorch: ``requires_grad=False``, ``no_grad``), its
  parameters are not among the attributes a submission's workload view exposes
  (``submission_attributes`` lists the two functions only), and it is rebuilt
  from its checksummed checkpoint for every trial.
- ``teacher_training_cost()`` -> {time_s, flops, ...}: the one-off cost of
  training the teacher, from its ``teacher.json`` (the harness copies it into
  meta.json; scoring reports it and amortizes it).

The teacher is loaded in ``init_model_fn`` (off the clock: model construction);
its first call compiles, on the clock, as any first call does.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, Dict, Optional

from harness import spec
from harness.errors import DataNotPreparedError, UserInputError
from workloads.lm import data as lm_data
from workloads.lm import workload as lm
from workloads.lm_slm import teacher as teacher_lib

NAME = 'lm_slm'
VARIANTS = ('quarter_teacher', 'undertrained_teacher')


def check_size_variant(size: Optional[str], variant: Optional[str]) -> None:
    problems = []
    if size not in lm.SIZES:
        problems.append(f"unknown size {size!r}; known sizes: {', '.join(lm.SIZES)}")
    if variant is not None and variant not in VARIANTS:
        problems.append(
            f"unknown variant {variant!r}; known variants: {', '.join(VARIANTS)} "
            '(or none for the half-size teacher)'
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
    ``_teacher_inputs(batch_or_inputs)`` and ``_wait(tree)``.
    """

    name = NAME
    variants = VARIANTS
    submission_attributes = ('teacher_logits', 'teacher_topk')
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
        # lm's constructor refuses every variant: build the student as lm, then set ours.
        super().__init__(size, None, budget or self.default_budget(size, variant), *args, **kwargs)
        self.variant = variant
        self.teacher_name = teacher_lib.TEACHER_OF_VARIANT[variant]
        self.teacher_clock = time.perf_counter
        self.teacher_time_s = 0.0
        self.teacher_sequences = 0
        self.teacher_flops = 0.0
        self._teacher_meta: Optional[Dict[str, Any]] = None
        self._teacher_data_dir: Optional[str] = None
        self._teacher_config: Optional[lm.LmConfig] = None

    def default_budget(self, size: Optional[str], variant: Optional[str]) -> spec.Budget:
        """lm's budget and target: the student's task is lm's, whichever the teacher."""
        check_size_variant(size, variant)
        return lm.BUDGETS[size]

    # ---- data and teacher checks (off the clock) ----

    def check_data(self, data_dir: str) -> None:
        """lm's data check, then the teacher's: prepared, and fitting student and data."""
        super().check_data(data_dir)
        meta = teacher_lib.load_meta(data_dir, self.size, self.teacher_name)
        teacher_lib.check_compatible(meta, self.config, lm_data.load_meta(data_dir), data_dir)
        self._teacher_meta = meta
        self._teacher_data_dir = str(data_dir)

    def teacher_training_cost(self) -> Optional[Dict[str, Any]]:
        """{time_s, flops, steps, tokens, name, device, framework} of training the teacher.

        None before ``check_data`` has read the teacher.
        """
        if self._teacher_meta is None:
            return None
        training = self._teacher_meta.get('training', {})
        return {
            'time_s': training.get('time_s'),
            'flops': training.get('flops'),
            'steps': training.get('steps'),
            'tokens': training.get('tokens'),
            'name': self.teacher_name,
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

    def teacher_accounting(self) -> Dict[str, float]:
        """What the teacher cost so far; the harness saves it with each checkpoint."""
        return {
            'teacher_time_s': float(self.teacher_time_s),
            'teacher_sequences': int(self.teacher_sequences),
            'teacher_flops': float(self.teacher_flops),
        }

    def restore_teacher_accounting(self, saved: Optional[Dict[str, float]]) -> None:
        """Continue the counts of an interrupted trial (None or {}: keep zeros)."""
        saved = saved or {}
        self.teacher_time_s = float(saved.get('teacher_time_s', 0.0))
        self.teacher_sequences = int(saved.get('teacher_sequences', 0))
        self.teacher_flops = float(saved.get('teacher_flops', 0.0))

    @property
    def teacher_config(self) -> Optional[lm.LmConfig]:
        return self._teacher_config

    # ---- teacher access (on the submission's clock) ----

    def teacher_logits(self, batch) -> spec.Tensor:
        """The teacher's float32 logits (B, T, V) for ``batch['inputs']`` (or an input array)."""
        return self._timed(batch, lambda inputs: self._teacher_logits_impl(inputs))

    def teacher_topk(self, batch, k: int):
        """(log-probabilities, token ids), each (B, T, k), of the teacher's k likeliest tokens."""
        vocab = self.config.vocab_size
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= vocab:
            raise UserInputError(
                f'teacher_topk: k = {k!r} is invalid: it must be an integer from 1 to the '
                f'vocabulary size ({vocab}). Lower the top-k hyperparameter.'
            )
        return self._timed(batch, lambda inputs: self._teacher_topk_impl(inputs, k))

    def _timed(self, batch, run):
        if self._teacher_config is None:
            raise RuntimeError('lm_slm: the teacher is loaded by init_model_fn; call it first.')
        inputs = self._teacher_inputs(batch['inputs'] if isinstance(batch, Mapping) else batch)
        self._wait(inputs)  # Work queued before the call is not the teacher's.
        start = self.teacher_clock()
        out = run(inputs)
        self._wait(out)
        self.teacher_time_s += self.teacher_clock() - start
        n_sequences, seq_len = (int(n) for n in inputs.shape[:2])
        self.teacher_sequences += n_sequences
        self.teacher_flops += n_sequences * teacher_lib.teacher_forward_flops(
            self._teacher_config, seq_len
        )
        return out
