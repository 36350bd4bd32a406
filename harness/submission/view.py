"""The workload as a submission sees it: only what the rules let it use.

Evaluation data, the input-queue builder, targets' internals and harness state
stay out of reach: reading anything else raises an AttributeError that names
the rule. The view is one object per trial (stable hash), so JAX submissions
can pass it as a static argument to ``jax.jit`` without recompiling.
"""

from __future__ import annotations

import math
from typing import Any, Dict, List, Optional

# AlgoPerf's workload attributes a submission may read, plus TimeTrial's.
ALLOWED = frozenset({
    'param_shapes', 'model_params_types', 'model_fn', 'loss_fn', 'output_activation_fn',
    'step_hint', 'metrics_logger', 'target_metric_name', 'validation_target_value',
    'test_target_value', 'loss_type', 'num_train_examples', 'eval_batch_size',
    'num_validation_examples', 'max_allowed_runtime_sec', 'eval_period_time_sec',
    'is_output_params', 'has_reached_validation_target', 'has_reached_test_target',
    # TimeTrial additions
    'name', 'framework', 'size', 'variant', 'default_batch_size', 'tokens_per_example',
    'target_mode',
})


class MetricsLogger:
    """``workload.metrics_logger``: what a submission reports about its training.

    Appending is cheap (on the clock, it is the submission's call); the runner
    drains the records after the step, off the clock, into the trial log, and
    stops the trial as ``diverged`` when a reported loss is not finite.
    """

    def __init__(self):
        self.pending: List[Dict[str, Any]] = []
        self.last: Dict[str, float] = {}

    def append_scalar_metrics(self, metrics: Dict[str, Any], global_step: int,
                              prefix: str = '') -> None:
        self.pending.append({'step': int(global_step),
                             **{f'{prefix}{k}': v for k, v in metrics.items()}})

    def drain(self) -> List[Dict[str, Any]]:
        records, self.pending = self.pending, []
        for r in records:
            for k, v in r.items():
                if k != 'step':
                    try:
                        self.last[k] = float(v.detach() if hasattr(v, 'detach') else v)
                    except (TypeError, ValueError):
                        pass
        return records

    def non_finite_loss(self) -> Optional[str]:
        for k, v in self.last.items():
            if 'loss' in k and not math.isfinite(v):
                return k
        return None


class SubmissionWorkload:
    """Read-only proxy over a workload, limited to ``ALLOWED`` plus the
    workload's own ``submission_attributes`` (e.g. a teacher model's API)."""

    __slots__ = ('_workload', '_allowed')

    def __init__(self, workload):
        object.__setattr__(self, '_workload', workload)
        extra = frozenset(getattr(workload, 'submission_attributes', ()))
        object.__setattr__(self, '_allowed', ALLOWED | extra)

    def __getattr__(self, name: str):
        if name in self._allowed:
            return getattr(self._workload, name)
        raise AttributeError(
            f'workload.{name} is not available to submissions: TimeTrial hands a submission '
            f'only the workload API of harness/spec.py ({", ".join(sorted(self._allowed))}); '
            'evaluation data and harness internals are off limits.')

    def __setattr__(self, name, value):
        raise AttributeError(f'a submission may not set workload.{name}: the workload is '
                             'read-only to submissions')

    def __repr__(self):
        return f'SubmissionWorkload({type(self._workload).__name__})'
