"""No way around the workload view at run time; the harness times the teacher itself.

Every route a submission could take from its view to the raw workload, its
evaluation data, the teacher's parameters or the teacher timer: attributes,
slots, bound methods, closures, ``__dict__``/``vars``, pickling and copying,
re-initialization. The routes no in-process object can close (``__globals__``,
``gc``, frames) are the static rules check's (tests/submit/test_rules_check.py).
"""

from __future__ import annotations

import collections
import copy
import functools
import pickle
import sys
import types
import weakref

import pytest

from harness.submission import view as view_module
from harness.submission.view import CallTimer, SubmissionWorkload, call_timer


class Secret:
    """An object a submission must never reach."""


class FakeWorkload:
    """The parts of a workload the view touches, with a teacher, evaluation data and
    the teacher's parameters behind it."""

    name = 'fake'
    framework = ''
    step_hint = 10
    reference_steps_to_target = 4
    submission_attributes = ('teacher_logits', 'teacher_topk')
    teacher_calls = ('teacher_logits', 'teacher_topk')

    def __init__(self):
        self.eval_data = Secret()
        self.teacher_params = Secret()
        self.metrics_logger = view_module.MetricsLogger()
        self.timer = None
        self.param_shapes = {'w': (2, 3)}

    def attach_call_timer(self, timer):
        self.timer = timer

    def model_fn(self, params, batch, *args, **kwargs):
        return ('logits', params, batch)

    def loss_fn(self, label_batch, logits_batch, mask_batch=None, label_smoothing=0.0):
        return {'summed': 1.0, 'n_valid_examples': 1}

    def teacher_logits(self, batch):
        return ('teacher', batch)

    def teacher_topk(self, batch, k):
        return ('topk', batch, k)


@pytest.fixture
def setup():
    workload = FakeWorkload()
    return workload, SubmissionWorkload(workload)


def _secrets(workload, view):
    state = view_module._STATE[view_module._number(view)]
    return [workload, workload.eval_data, workload.teacher_params, state, state.timer,
            view_module._STATE, view_module]


# Refused by the static rules check (no in-process object can close them); never followed.
_STATIC_ROUTES = frozenset({'__globals__', '__builtins__', '__subclasses__'})
_EXTRA = ('__self__', '__closure__', '__wrapped__', '__func__', '__dict__', '__slots__',
          '__class__', '__defaults__', '__kwdefaults__', '__objclass__', 'cell_contents',
          '_workload', '_allowed', 'workload', '_state', '_timer')
_LEAVES = (str, bytes, int, float, complex, bool, type(None), range, type(Ellipsis))


def _edges(obj):
    """What a submission can get from ``obj`` without calling anything but pickling."""
    out = []
    names = set(_EXTRA)
    try:
        names |= set(dir(obj))
    except Exception:  # noqa: BLE001 — a hostile __dir__ is a dead end
        pass
    for name in sorted(names - _STATIC_ROUTES):
        for read in (getattr, object.__getattribute__):
            try:
                out.append(read(obj, name))
            except Exception:  # noqa: BLE001 — a closed route
                pass
    for cls in type(obj).__mro__:
        for name, value in vars(cls).items():  # slot descriptors, read directly
            if name in _STATIC_ROUTES:
                continue
            if isinstance(value, (types.MemberDescriptorType, types.GetSetDescriptorType)):
                try:
                    out.append(value.__get__(obj, type(obj)))
                except Exception:  # noqa: BLE001
                    pass
    if type(obj).__module__ != 'builtins':  # builtins reduce to fresh tuples, endlessly
        try:
            out.append(obj.__reduce_ex__(4))
        except Exception:  # noqa: BLE001
            pass
    if isinstance(obj, (dict, types.MappingProxyType)):
        out += list(obj.keys()) + list(obj.values())
    elif isinstance(obj, (list, tuple, set, frozenset)):
        out += list(obj)
    return out


#: C-level callables and descriptors: only what they are bound to leads anywhere.
_BOUND_ONLY = (types.BuiltinFunctionType, types.MethodWrapperType, types.WrapperDescriptorType,
               types.MethodDescriptorType, types.ClassMethodDescriptorType,
               types.GetSetDescriptorType, types.MemberDescriptorType)


def _ours(obj) -> bool:
    return str(getattr(obj, '__module__', '')).split('.')[0] in ('harness', 'tests')


def _dead_end(bound_to, obj) -> bool:
    """A C-level method bound to ``obj`` itself, a builtin class, a module or nothing."""
    return (bound_to is obj or bound_to is None or isinstance(bound_to, types.ModuleType)
            or (isinstance(bound_to, type) and bound_to.__module__ == 'builtins'))


def _reachable(start, limit=50_000):
    """Every object reachable from ``start`` by ``_edges``, breadth first (the whole graph:
    the test fails rather than stop early)."""
    seen, todo = {id(start): start}, collections.deque([start])
    while todo:
        assert len(seen) < limit, 'the object graph is larger than expected: raise the limit'
        obj = todo.popleft()
        if isinstance(obj, _LEAVES):
            continue
        if isinstance(obj, types.ModuleType) and obj is not view_module:
            continue  # other modules: whatever they hold is not ours
        if isinstance(obj, (type, types.FunctionType)) and not _ours(obj):
            continue  # classes and functions of other libraries: nothing of ours hangs off them
        if isinstance(obj, types.CodeType):
            continue  # constants only
        if isinstance(obj, _BOUND_ONLY):
            edges = [getattr(obj, n, None) for n in ('__self__', '__objclass__')]
        else:
            edges = _edges(obj)
        for nxt in edges:
            if isinstance(nxt, _LEAVES) or (
                isinstance(nxt, _BOUND_ONLY) and _dead_end(getattr(nxt, '__self__', None), obj)
            ):
                continue  # leads nowhere, or back here
            if id(nxt) not in seen:
                seen[id(nxt)] = nxt
                todo.append(nxt)
    return seen


def test_nothing_behind_the_view_is_reachable(setup):
    workload, view = setup
    # Touch everything first, so the view has handed out its call wrappers.
    handed = [view.model_fn, view.loss_fn, view.teacher_logits, view.teacher_topk,
              view.metrics_logger, view.param_shapes, view.reference_steps_to_target]
    reached = _reachable(view)
    for obj in handed:
        reached.update(_reachable(obj))
    leaked = [type(s).__name__ for s in _secrets(workload, view) if id(s) in reached]
    assert leaked == []


@pytest.mark.parametrize('route', [
    lambda v: v._workload,
    lambda v: v._allowed,
    lambda v: object.__getattribute__(v, '_workload'),
    lambda v: v.__dict__,
    lambda v: vars(v),
    lambda v: v.teacher_time_s,
    lambda v: v.eval_model,
    lambda v: v._build_input_queue,
    lambda v: v.teacher_logits.__self__,
    lambda v: v.teacher_logits.__closure__,
    lambda v: v.teacher_logits.__wrapped__,
    lambda v: v.teacher_logits.__func__,
    lambda v: v.teacher_logits.__dict__,
    lambda v: v.model_fn.__self__,
    lambda v: vars(v.model_fn),
    lambda v: v.__reduce__(),
    lambda v: v.__reduce_ex__(4),
    lambda v: v.model_fn.__reduce_ex__(4),
    lambda v: pickle.dumps(v),
    lambda v: copy.copy(v),
    lambda v: copy.deepcopy(v),
    lambda v: copy.copy(v.teacher_logits),
    lambda v: weakref.ref(v),  # a weak reference's callback would lead to its table
    lambda v: weakref.ref(v.model_fn),
    lambda v: setattr(v.model_fn, '_name', 'eval_model'),
])
def test_each_route_is_closed(setup, route):
    _, view = setup
    with pytest.raises((AttributeError, TypeError)):
        route(view)


def test_the_view_cannot_be_changed_or_reinitialized(setup):
    workload, view = setup
    other = FakeWorkload()
    with pytest.raises(AttributeError, match='re-initialize'):
        view.__init__(other)
    with pytest.raises(AttributeError, match='read-only'):
        view.model_fn = None
    with pytest.raises(AttributeError, match='read-only'):
        del view.model_fn
    with pytest.raises(AttributeError):
        object.__setattr__(view, '_workload', other)
    timer = call_timer(view)
    type(view)(other)  # a second view of another workload leaves this one alone
    assert call_timer(view) is timer and workload.timer is timer
    view.teacher_logits({'inputs': 1})
    assert timer.calls == 1
    assert weakref.getweakrefs(view) == []
    # Forcing a function's name past its __setattr__ reaches nothing outside the view's list.
    call = view.teacher_logits
    object.__setattr__(call, '_name', 'eval_data')
    with pytest.raises(AttributeError, match='not available'):
        call()
    # Forcing the view's number breaks the view; the harness's timer is untouched.
    object.__setattr__(view, '_n', 10**9)
    with pytest.raises(AttributeError):
        view.model_fn  # noqa: B018
    assert timer.calls == 1 and workload.timer is timer


def test_calls_reach_the_workload_and_stay_stable(setup):
    _, view = setup
    assert view.model_fn('p', 'b') == ('logits', 'p', 'b')
    assert view.model_fn is view.model_fn  # a stable object: a jit static argument
    assert hash(view) == hash(view)
    assert repr(view.loss_fn) == '<workload.loss_fn>'
    assert view.param_shapes == {'w': (2, 3)}
    assert view.reference_steps_to_target == 4
    assert 'teacher_logits' in dir(view) and 'eval_data' not in dir(view)


def test_teacher_calls_are_timed_by_the_view_with_sync_before_each_clock_read():
    events = []
    ticks = iter([10.0, 12.5, 20.0, 20.25])

    def clock():
        events.append('clock')
        return next(ticks)

    def sync(*trees):
        events.append(('sync', trees))

    workload = FakeWorkload()
    view = SubmissionWorkload(workload, sync=sync, clock=clock)
    assert view.teacher_logits({'inputs': 1}) == ('teacher', {'inputs': 1})
    out = view.teacher_topk('x', k=3)
    assert out == ('topk', 'x', 3)
    timer = call_timer(view)
    assert timer.time_s == pytest.approx(2.75) and timer.calls == 2
    # Inputs waited for, clock, call, outputs waited for, clock -- for each call.
    assert [e if e == 'clock' else e[0] for e in events] == ['sync', 'clock', 'sync', 'clock'] * 2
    assert events[2] == ('sync', (('teacher', {'inputs': 1}),))
    # model_fn is not a teacher call: untimed.
    view.model_fn('p', 'b')
    assert timer.calls == 2
    # The workload reports the harness's number, and cannot be told another.
    assert workload.timer is timer


def test_timer_state_survives_a_resume():
    timer = CallTimer(clock=lambda: 0.0)
    timer.time_s, timer.calls = 3.5, 7
    fresh = CallTimer()
    fresh.load_state_dict(timer.state_dict())
    assert (fresh.time_s, fresh.calls) == (3.5, 7)
    fresh.load_state_dict(None)
    assert (fresh.time_s, fresh.calls) == (0.0, 0)


def test_the_default_sync_is_the_trial_backends(monkeypatch):
    workload = FakeWorkload()
    workload.framework = 'jax'
    view = SubmissionWorkload(workload)
    from harness.trial.backends.jax_backend import JaxBackend

    assert call_timer(view)._sync.__func__ is JaxBackend.sync
    assert 'harness.trial.backends' in sys.modules


class _OldView:
    """A view that keeps its workload in a slot, as views once did: the crawl must see it."""

    __slots__ = ('_w',)

    def __init__(self, workload):
        object.__setattr__(self, '_w', workload)

    def __getattr__(self, name):
        raise AttributeError(name)


def _make_closure(workload):
    return lambda: workload


@pytest.mark.parametrize('leaky', [
    _OldView,
    _make_closure,
    lambda w: w.model_fn,
    lambda w: functools.partial(w.model_fn),
])
def test_the_crawl_finds_what_older_views_leaked(leaky):
    """The reachability test can fail: slots, closures, bound methods and partials leak."""
    workload = FakeWorkload()
    assert id(workload) in _reachable(leaky(workload))
