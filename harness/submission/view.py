"""The workload as a submission sees it: only what the rules let it use, and no way behind it.

Evaluation data, the input-queue builder, targets' internals and harness state
stay out of reach: reading anything else raises an AttributeError that names
the rule. The view is one object per trial (stable hash), so JAX submissions
can pass it as a static argument to ``jax.jit`` without recompiling.

No way behind the view, at run time:

- The view keeps no reference in attributes, slots or closures: what it wraps
  (the workload, the names it allows, the teacher timer) lives in ``_STATE``, a
  table of this module, under a number the view holds (its only slot).
  ``view._workload``, ``object.__getattribute__(view, ...)``, ``vars(view)``,
  ``view.__dict__`` and slot descriptors find nothing but that number. No weak
  reference to a view can be made (a weak reference's callback would lead to
  whatever table holds it).
- Every function it hands out (``model_fn``, ``loss_fn``, the teacher's calls,
  ...) is a ``WorkloadCall``, a slotted object holding the same number and the
  attribute's name (checked against the allowed names at every call), not a
  bound method, ``functools.partial`` or closure: ``__self__``, ``__closure__``,
  ``__wrapped__``, ``__func__`` and ``__dict__`` lead nowhere.
- Neither can be pickled or copied (``__reduce_ex__``, ``__copy__`` raise),
  changed (``__setattr__``/``__delattr__`` raise) or initialized a second time.
- Calls the workload lists in ``teacher_calls`` are timed here, by the harness:
  the device is synchronized (the backend's ``sync``) before each clock read, and
  the seconds go to a ``CallTimer`` in ``_STATE`` (``call_timer(view)``: the
  runner takes it when it builds the view), which no object a submission holds
  refers to. The workload counts nothing itself that the harness trusts.

What no object in the process can hide is reached only by walking from a
function to its module (``__globals__``), from the interpreter to every object
(``gc``, ``ctypes``, ``sys.modules``) or up the callers' frames (``sys._getframe``,
``inspect``, tracebacks, trace hooks): the static rules check
(``harness.rules``) refuses those in a submission's source.
"""

from __future__ import annotations

import itertools
import math
import time
from typing import Any, Callable, Dict, FrozenSet, List, Optional

# AlgoPerf's workload attributes a submission may read, plus TimeTrial's.
ALLOWED = frozenset({
    'param_shapes', 'model_params_types', 'model_fn', 'loss_fn', 'output_activation_fn',
    'step_hint', 'metrics_logger', 'target_metric_name', 'validation_target_value',
    'test_target_value', 'loss_type', 'num_train_examples', 'eval_batch_size',
    'num_validation_examples', 'max_allowed_runtime_sec', 'eval_period_time_sec',
    'is_output_params', 'has_reached_validation_target', 'has_reached_test_target',
    # TimeTrial additions
    'name', 'framework', 'size', 'variant', 'default_batch_size', 'tokens_per_example',
    'target_mode', 'reference_steps_to_target',
})

Clock = Callable[[], float]
Sync = Callable[..., None]


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
                        # A non-numeric report (a string, a vector) stays in the log
                        # records; only numbers are kept as the latest value.
                        continue
        return records

    def non_finite_loss(self) -> Optional[str]:
        for k, v in self.last.items():
            if 'loss' in k and not math.isfinite(v):
                return k
        return None


class CallTimer:
    """Seconds and number of a workload's teacher calls, as the harness measured them.

    ``timed`` waits for the call's inputs (work queued before it is not the
    teacher's), reads the clock, calls, waits for the outputs, reads the clock:
    the runner's own rule for its clock. The runner saves ``state_dict()`` with
    each checkpoint and loads it on resume.
    """

    def __init__(self, clock: Clock = time.perf_counter, sync: Optional[Sync] = None):
        self.time_s = 0.0
        self.calls = 0
        self._clock = clock
        self._sync = sync or _no_sync

    def timed(self, fn: Callable[..., Any], args: tuple, kwargs: Dict[str, Any]) -> Any:
        self._sync(args, kwargs)
        start = self._clock()
        out = fn(*args, **kwargs)
        self._sync(out)
        self.time_s += self._clock() - start
        self.calls += 1
        return out

    def state_dict(self) -> Dict[str, Any]:
        return {'teacher_time_s': float(self.time_s), 'teacher_calls': int(self.calls)}

    def load_state_dict(self, saved: Optional[Dict[str, Any]]) -> None:
        """Continue an interrupted trial's counts (None or {}: zeros)."""
        saved = saved or {}
        self.time_s = float(saved.get('teacher_time_s', 0.0))
        self.calls = int(saved.get('teacher_calls', 0))


def _no_sync(*trees) -> None:
    """Test doubles without a framework: nothing runs asynchronously."""


def _backend_sync(framework: str) -> Sync:
    """The trial backend's device synchronization for ``framework`` (the runner's own)."""
    if framework not in ('jax', 'pytorch'):
        return _no_sync
    from harness.trial.backends import get_backend

    return get_backend(framework).sync


class _ViewState:
    __slots__ = ('workload', 'allowed', 'teacher_calls', 'timer', 'calls')

    def __init__(self, workload, allowed: FrozenSet[str], teacher_calls: FrozenSet[str],
                 timer: CallTimer):
        self.workload = workload
        self.allowed = allowed
        self.teacher_calls = teacher_calls
        self.timer = timer
        self.calls: Dict[str, 'WorkloadCall'] = {}


#: A view's number -> its state; a view takes its entry with it when it goes.
_STATE: Dict[int, _ViewState] = {}
_NUMBERS = itertools.count(1)


def _number(obj) -> Optional[int]:
    try:
        return object.__getattribute__(obj, '_n')
    except AttributeError:
        return None


def _state(obj) -> Optional[_ViewState]:
    return _STATE.get(_number(obj))

_NO_COPY = ('the workload view cannot be pickled or copied: keep the view you are handed '
            'and read what you need from it')


class WorkloadCall:
    """A workload function as a submission calls it (``workload.model_fn``, ...).

    Not a bound method or closure: it leads back to nothing. It works while its view lives
    (the runner keeps the view for the whole trial).
    """

    __slots__ = ('_n', '_name')

    def __init__(self, number: int, name: str):
        object.__setattr__(self, '_n', number)
        object.__setattr__(self, '_name', name)

    def __call__(self, *args, **kwargs):
        state, name = _state(self), object.__getattribute__(self, '_name')
        if state is None or name not in state.allowed:
            raise AttributeError(f'workload.{name} is not available to submissions')
        fn = getattr(state.workload, name)
        if name in state.teacher_calls:
            return state.timer.timed(fn, args, kwargs)
        return fn(*args, **kwargs)

    def __setattr__(self, name, value):
        raise AttributeError('a workload function is read-only to submissions')

    def __repr__(self) -> str:
        return f'<workload.{object.__getattribute__(self, "_name")}>'

    def __reduce_ex__(self, protocol):
        raise TypeError(_NO_COPY)

    def __copy__(self):
        raise TypeError(_NO_COPY)

    def __deepcopy__(self, memo):
        raise TypeError(_NO_COPY)


class SubmissionWorkload:
    """Read-only proxy over a workload, limited to ``ALLOWED`` plus the workload's own
    ``submission_attributes`` (e.g. a teacher model's API); see the module docstring.

    ``sync`` and ``clock`` time the teacher's calls (default: the trial backend's
    synchronization for the workload's framework, and ``time.perf_counter``); the
    runner passes its own.
    """

    __slots__ = ('_n',)

    def __init__(self, workload, *, sync: Optional[Sync] = None,
                 clock: Clock = time.perf_counter):
        if _number(self) is not None:
            raise AttributeError('a submission may not re-initialize its workload view')
        extra = frozenset(getattr(workload, 'submission_attributes', ()))
        teacher = frozenset(getattr(workload, 'teacher_calls', ())) & extra
        if sync is None and teacher:
            sync = _backend_sync(getattr(workload, 'framework', ''))
        timer = CallTimer(clock, sync)
        number = next(_NUMBERS)
        object.__setattr__(self, '_n', number)
        _STATE[number] = _ViewState(workload, ALLOWED | extra, teacher, timer)
        # The workload reports the harness's measurement (e.g. lm_slm's teacher_time_s).
        attach = getattr(workload, 'attach_call_timer', None)
        if attach is not None:
            attach(timer)

    def __del__(self):
        _STATE.pop(_number(self), None)

    def __getattr__(self, name: str):
        state = _state(self)
        if state is None:
            raise AttributeError(f'workload.{name}: this workload view was never initialized')
        if name not in state.allowed:
            raise AttributeError(
                f'workload.{name} is not available to submissions: TimeTrial hands a '
                'submission only the workload API of harness/spec.py '
                f'({", ".join(sorted(state.allowed))}); evaluation data and harness internals '
                'are off limits.')
        value = getattr(state.workload, name)
        if not callable(value):
            return value
        call = state.calls.get(name)
        if call is None:
            call = state.calls[name] = WorkloadCall(_number(self), name)
        return call

    def __setattr__(self, name, value):
        raise AttributeError(f'a submission may not set workload.{name}: the workload is '
                             'read-only to submissions')

    def __delattr__(self, name):
        raise AttributeError(f'a submission may not delete workload.{name}: the workload is '
                             'read-only to submissions')

    def __dir__(self):
        state = _state(self)
        return sorted(state.allowed) if state else []

    def __reduce_ex__(self, protocol):
        raise TypeError(_NO_COPY)

    def __copy__(self):
        raise TypeError(_NO_COPY)

    def __deepcopy__(self, memo):
        raise TypeError(_NO_COPY)

    def __repr__(self):
        state = _state(self)
        return f'SubmissionWorkload({type(state.workload).__name__ if state else "?"})'


def call_timer(view: SubmissionWorkload) -> CallTimer:
    """The harness's timer of ``view``'s teacher calls (harness code only; the runner takes
    it when it builds the view and keeps it)."""
    return _STATE[_number(view)].timer


_NO_STREAM_COPY = 'the input queue cannot be pickled or copied: draw from it with next()'


class TrainingStream:
    """``input_queue`` as a submission sees it: the training batches, counted as drawn.

    A submission draws with ``next(input_queue)``; the harness counts the examples of
    every batch drawn (a pool a submission selects from counts in full: its examples
    and tokens to target include the pool). Like the workload view, it holds only a
    number: the workload's iterator (and its data files) sit in ``_STREAMS``, out of
    reach; ``drawn_since_last`` and ``stream_state``/``load_stream_state`` are for the
    harness.
    """

    __slots__ = ('_n',)

    def __init__(self, queue):
        if _number(self) is not None:
            raise AttributeError('a submission may not re-initialize its input queue')
        number = next(_NUMBERS)
        object.__setattr__(self, '_n', number)
        _STREAMS[number] = [queue, 0]

    def __del__(self):
        _STREAMS.pop(_number(self), None)

    def __iter__(self):
        return self

    def __next__(self):
        entry = _STREAMS[_number(self)]
        batch = next(entry[0])
        entry[1] += _rows(batch)
        return batch

    def __setattr__(self, name, value):
        raise AttributeError(f'a submission may not set input_queue.{name}')

    def __delattr__(self, name):
        raise AttributeError(f'a submission may not delete input_queue.{name}')

    def __reduce_ex__(self, protocol):
        raise TypeError(_NO_STREAM_COPY)

    def __copy__(self):
        raise TypeError(_NO_STREAM_COPY)

    def __deepcopy__(self, memo):
        raise TypeError(_NO_STREAM_COPY)

    def __repr__(self):
        return 'TrainingStream()'


#: A stream's number -> [the workload's iterator, examples drawn since last asked].
_STREAMS: Dict[int, List[Any]] = {}


def _rows(batch) -> int:
    """Examples in a batch: the leading dimension of its inputs."""
    value = batch.get('inputs') if isinstance(batch, dict) else None
    if value is None and isinstance(batch, dict) and batch:
        value = next(iter(batch.values()))
    shape = getattr(value, 'shape', None)
    if not shape:
        raise TypeError(f'a training batch must hold arrays (inputs first), got {type(value)}')
    return int(shape[0])


def drawn_since_last(stream: TrainingStream) -> int:
    """Examples drawn since the last call (harness code only)."""
    entry = _STREAMS[_number(stream)]
    drawn, entry[1] = entry[1], 0
    return drawn


def stream_state(stream: TrainingStream) -> Dict[str, Any]:
    """The iterator's position, for checkpoints (harness code only)."""
    return _STREAMS[_number(stream)][0].state_dict()


def load_stream_state(stream: TrainingStream, state: Dict[str, Any]) -> None:
    _STREAMS[_number(stream)][0].load_state_dict(state)
