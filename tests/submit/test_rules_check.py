"""The static rules check on small sources: what is an error, what a warning, and where."""

from __future__ import annotations

import textwrap

import pytest

from harness import registry
from harness.errors import UserInputError
from harness.rules.check import check_path, check_source, raise_on_errors

WORKLOADS = ('lm', 'ctr')


def findings(source: str):
    """(line, severity, rule) of every finding, for a snippet written with `# <-` markers."""
    return [
        (f.line, f.severity, f.rule)
        for f in check_source(textwrap.dedent(source), 'sub.py', WORKLOADS)
    ]


def marked(source: str, severity: str, rule: str):
    """The lines marked `# <-` in the snippet, as the expected findings."""
    lines = textwrap.dedent(source).splitlines()
    return [(i + 1, severity, rule) for i, line in enumerate(lines) if line.endswith('# <-')]


ERRORS = {
    'workload-name': '''
        HP = {'lm': 1e-3}
        def init_optimizer_state(workload, model_params, model_state, hyperparameters, rng):
            if workload.name == 'lm':  # <-
                pass
            lr = HP[workload.name]  # <-
            lr = HP.get(workload.name, 1e-3)  # <-
            short = workload.name.lower()
            if short in ('lm', 'ctr'):  # <-
                pass
            wide = workload.name.startswith('lm')  # <-
            match workload.name:  # <-
                case 'lm':
                    pass
            if type(workload).__name__ == 'LmTorchWorkload':  # <-
                pass
            return {}
        def update_params(workload, workload_name, **kw):
            return 1 if workload_name == 'lm' else 2  # <-
    ''',
    'workload-class': '''
        from workloads_of_mine import LmJaxWorkload
        def update_params(workload, **kw):
            if isinstance(workload, LmJaxWorkload):  # <-
                pass
            if issubclass(type(workload), (int, CtrTorchWorkload)):  # <-
                pass
    ''',
    'internals': '''
        from harness import spec, runner  # <-
        import harness.trial.run  # <-
        from workloads.lm import data  # <-
        import scoring.api  # <-
        from algoperf.workloads.wmt import workload  # <-
        def update_params(workload, **kw):
            batches = workload._eval_batches  # <-
            extra = getattr(workload, '_data_dir')  # <-
            everything = vars(workload)  # <-
            workload.step_hint = 10  # <-
            setattr(workload, 'x', 1)  # <-
            workload.eval_model(1, 2, 3)  # <-
            caller = sys._getframe(1)  # <-
            frames = inspect.stack()  # <-
            alive = gc.get_objects()  # <-
            hidden = spec._private  # <-
            raw = object.__getattribute__(workload, 'w')  # <-
            __import__('harness.trial.runner')  # <-
        import sys, inspect, gc
    ''',
    'environment': '''
        import os
        from os import environ
        os.environ['XLA_FLAGS'] = '--x'  # <-
        environ['A'] = '1'  # <-
        os.environ.update(B='2')  # <-
        os.environ.setdefault('C', '3')  # <-
        os.environ.pop('D')  # <-
        del os.environ['E']  # <-
        os.putenv('F', '4')  # <-
        os.unsetenv('G')  # <-
    ''',
    'concurrency': '''
        import threading  # <-
        import multiprocessing as mp  # <-
        from concurrent.futures import ThreadPoolExecutor  # <-
        import subprocess  # <-
        import torch.multiprocessing  # <-
        import os
        os.fork()  # <-
        os.system('ls')  # <-
        os.popen('ls')  # <-
    ''',
}


@pytest.mark.parametrize('rule', sorted(ERRORS))
def test_errors_are_reported_with_their_line(rule):
    source = ERRORS[rule]
    errors = [f for f in findings(source) if f[1] == 'error']
    assert errors == marked(source, 'error', rule)


def test_allowed_code_has_no_findings():
    source = '''
        import math
        import os
        import torch
        from harness import spec
        from harness.spec import TrainingCompleteError
        from harness.spec_federated import RoundConfig
        import algoperf.spec
        from algoperf import pytorch_utils
        from submissions._lib import torch_common
        from . import helpers
        BATCH = {'lm': 64, 'ctr': 512}
        def _batch_for(workload_name):
            if workload_name == 'ctr':
                return 512
            return BATCH.get(workload_name)
        def get_batch_size(workload_name):
            if workload_name in BATCH:
                return BATCH[workload_name]
            return _batch_for(workload_name)
        def get_round_config(workload_name, hyperparameters):
            del workload_name
        def init_optimizer_state(workload, model_params, model_state, hyperparameters, rng):
            steps = workload.step_hint
            shapes = workload.param_shapes
            rank = int(os.environ.get('LOCAL_RANK', 0))
            if isinstance(workload, spec.Workload):
                pass
            return {'steps': steps, 'lr': hyperparameters.learning_rate * math.sqrt(rank + 1)}
    '''
    assert findings(source) == []


def test_warnings_where_a_human_must_judge():
    source = '''
        import jax
        import torch
        def update_params(workload, batch, **kw):
            print('training', workload.name)  # <-
            logits = workload.teacher_logits(batch)  # <-
            if kw['kind'] == 'lm':  # <-
                pass
            data = open('/data/lm/val.bin', 'rb')  # <-
            root = kw.get('TIMETRIAL_DATA_DIR')  # <-
            jax.config.update('jax_enable_x64', True)  # <-
            torch.set_num_threads(8)  # <-
            loader = torch.utils.data.DataLoader([], num_workers=4)  # <-
            exec(kw['code'])
            mods = sys.modules
        import sys
    '''
    got = [f for f in findings(source) if f[1] == 'warning']
    assert [line for line, _, _ in got] == [line for line, _, _ in marked(source, 'x', 'x')]


def test_a_name_read_only_to_log_is_a_warning_not_an_error():
    got = findings('''
        def update_params(workload, **kw):
            name = workload.name
            print(f'step on {name}')
    ''')
    assert [(s, r) for _, s, r in got] == [
        ('warning', 'workload-name'),
        ('warning', 'workload-name'),
    ]


def test_a_helper_called_from_other_functions_too_is_not_a_batch_size_helper():
    got = findings('''
        def _choose(workload_name):
            return 1 if workload_name == 'lm' else 2
        def get_batch_size(workload_name):
            return _choose(workload_name)
        def update_params(workload, **kw):
            return _choose(workload.name)
    ''')
    assert (7, 'warning', 'workload-name') in got
    assert not [f for f in got if f[1] == 'error']


def test_syntax_error_is_an_error_with_its_line():
    assert findings('x = 1\ndef broken(:\n') == [(2, 'error', 'syntax')]


def test_findings_print_as_file_line_col(tmp_path):
    sub = tmp_path / 'my sub'
    sub.mkdir()
    (sub / 'pytorch_submission.py').write_text('import os\n\nos.environ["A"] = "1"\n')
    (sub / 'helpers').mkdir()
    (sub / 'helpers' / 'threads.py').write_text('import threading\n')
    (sub / '__pycache__').mkdir()
    (sub / '__pycache__' / 'ignored.py').write_text('import subprocess\n')
    got = check_path(sub, WORKLOADS)
    assert [str(f).split(': [')[0] for f in got] == [
        f'{sub / "helpers" / "threads.py"}:1:1: error',
        f'{sub / "pytorch_submission.py"}:3:1: error',
    ]
    with pytest.raises(UserInputError) as e:
        raise_on_errors(got, sub)
    assert '2 error(s)' in str(e.value) and 'threads.py:1:1' in str(e.value)


@pytest.mark.parametrize('name', sorted(registry.builtin_submissions()))
def test_builtin_submissions_pass_the_rules_check(name):
    """The shipped baselines follow the rules they are held to."""
    errors = [
        str(f) for f in check_path(registry.builtin_submissions()[name]) if f.severity == 'error'
    ]
    assert errors == []


# Routes around the workload view that no in-process object can close
# (harness.submission.view): each is refused where it appears, whatever it is applied to.
VIEW_ROUTES = [
    'g = model_fn.__globals__',
    'c = workload.model_fn.__closure__[0].cell_contents',
    'code = f.__code__',
    'w = workload.teacher_logits.__self__',
    'w = fn.__wrapped__',
    'f = bound.__func__',
    'subs = object.__subclasses__()',
    "raw = object.__getattribute__(workload, 'w')",
    'state = workload.__reduce_ex__(4)',
    'state = obj.__getstate__()',
    'frame = err.__traceback__.tb_frame',
    'up = frame.f_back.f_locals',
    'frame = gen.gi_frame',
    'b = f.__builtins__',
    "g = getattr(fn, '__globals__')",
    "g = getattr(fn, '__glob' + 'als__')",
    "get = operator.attrgetter('__closure__')",
    'caller = sys._getframe(1)',
    'frames = sys._current_frames()',
    'sys.settrace(hook)',
    'sys.setprofile(hook)',
    'info = sys.exc_info()',
    'mods = sys.modules',
    'everything = gc.get_objects()',
    'owners = gc.get_referrers(x)',
    'junk = gc.garbage',
    'frame = inspect.currentframe()',
    'frames = inspect.stack()',
    'members = inspect.getmembers(fn)',
    'value = inspect.getattr_static(view, "x")',
    'nonlocals = inspect.getclosurevars(fn)',
    'frames = list(traceback.walk_tb(tb))',
    'import ctypes',
    'from ctypes import pythonapi',
    'from gc import get_objects',
    'from sys import _getframe',
    'from sys import modules',
    'from inspect import currentframe',
    "exec(kw['code'])",
    "eval(text)",
    "m = importlib.import_module(name)",
    "m = __import__(name)",
    "exec('x = f.__globals__')",
    "import harness.submission.view",
    'refs = weakref.getweakrefs(obj)',
    'hook = ref.__callback__',
]


@pytest.mark.parametrize('line', VIEW_ROUTES)
def test_routes_around_the_view_are_refused(line):
    source = f'''
        import gc, inspect, operator, sys, traceback, importlib, weakref
        def update_params(workload, fn, f, bound, obj, err, frame, gen, view, hook, tb, kw,
                          model_fn, x, text, name, ref):
            {line}  # <-
    '''
    got = findings(source)
    errors = [f for f in got if f[1] == 'error']
    assert errors and {line_no for line_no, _, _ in errors} == {5}, got
    assert {rule for _, _, rule in errors} <= {'internals', 'dynamic'}


@pytest.mark.parametrize('line', [
    'gc.collect()',
    'sig = inspect.signature(fn)',
    'names = [m for m in model.modules()]',
    'x = np.stack(xs)',
    "lr = getattr(hyperparameters, 'learning_rate', 1e-3)",
    'value = getattr(hyperparameters, name, None)',
    "exec('y = 1 + 2')",
    'steps = workload.reference_steps_to_target',
    'out = traceback.format_exc()',
])
def test_ordinary_introspection_is_allowed(line):
    source = f'''
        import gc, inspect, traceback
        import numpy as np
        def update_params(workload, fn, model, xs, hyperparameters, name):
            {line}
    '''
    assert [f for f in findings(source) if f[1] == 'error'] == []
