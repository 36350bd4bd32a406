"""What every shipped submission shares (submissions/_lib): one way to read and check
hyperparameters, framework-free helpers that import no framework, twins that read side by
side, base optimizers that agree across frameworks, and no submission that leans on another."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
import textwrap
from collections import namedtuple
from pathlib import Path

import numpy as np
import pytest

from harness.cli.main import main
from harness.submission.loader import check_submission
from submissions._lib import common, hparam_checks, schedules

ROOT = Path(__file__).resolve().parents[2]
SUBMISSIONS = ROOT / 'submissions'
SHIPPED = sorted(p.name for p in SUBMISSIONS.iterdir() if (p / 'search_space.yaml').exists())
LIB = SUBMISSIONS / '_lib'


def hparams(**values):
    return namedtuple('Hyperparameters', sorted(values))(**values)


def _imported_modules(file: Path):
    for node in ast.walk(ast.parse(file.read_text(encoding='utf-8'))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.module
            yield from (f'{node.module}.{alias.name}' for alias in node.names)


def test_no_submission_imports_another():
    assert len(SHIPPED) >= 17, SHIPPED
    leaks = []
    for name in SHIPPED:
        for file in (SUBMISSIONS / name).glob('*.py'):
            for module in _imported_modules(file):
                parts = module.split('.')
                if parts[0] == 'submissions' and len(parts) > 1 and parts[1] not in ('_lib', name):
                    leaks.append(f'{file.relative_to(ROOT)} imports {module}')
    assert not leaks, leaks


FRAMEWORK_FREE = [
    'submissions._lib.common',
    'submissions._lib.schedules',
    'submissions._lib.hparam_checks',
    'submissions._lib.kd',
    'submissions._lib.federated',
    'submissions._lib.optim_blocks',
] + [f'submissions.{name}.common' for name in SHIPPED if (SUBMISSIONS / name / 'common.py').exists()]


def test_framework_free_modules_import_no_framework():
    code = textwrap.dedent(f'''
        import importlib, sys
        for name in {FRAMEWORK_FREE!r}:
            importlib.import_module(name)
        print(sorted(m for m in ('jax', 'torch', 'optax', 'flax') if m in sys.modules))
    ''')
    out = subprocess.run([sys.executable, '-c', code], cwd=ROOT, capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == '[]', out.stdout + out.stderr


def _functions(file: Path):
    tree = ast.parse(file.read_text(encoding='utf-8'))
    return [n.name for n in tree.body if isinstance(n, ast.FunctionDef)]


TWINS = [
    (LIB / 'jax_common.py', LIB / 'torch_common.py'),
    (LIB / 'kd_jax.py', LIB / 'kd_torch.py'),
    (LIB / 'federated_jax.py', LIB / 'federated_torch.py'),
] + [
    (SUBMISSIONS / name / 'jax_submission.py', SUBMISSIONS / name / 'pytorch_submission.py')
    for name in SHIPPED
]


@pytest.mark.parametrize('jax_file,torch_file', TWINS, ids=lambda p: p.parent.name + '/' + p.stem)
def test_twins_read_side_by_side(jax_file, torch_file):
    """The functions both frameworks define come in the same order (a framework's own
    helpers, such as a jitted step or DDP's all-reduce, may stand between them)."""
    jax_fns, torch_fns = _functions(jax_file), _functions(torch_file)
    shared = set(jax_fns) & set(torch_fns)
    assert [f for f in jax_fns if f in shared] == [f for f in torch_fns if f in shared]


# ---- hyperparameters --------------------------------------------------------------------------


def test_hparam_reads_a_value_or_its_default():
    h = hparams(learning_rate=0.1, grad_clip=None)
    assert common.hparam(h, 'learning_rate', 1.0) == 0.1
    assert common.hparam(h, 'missing', 3) == 3
    assert common.hparam(h, 'grad_clip', 2.0) == 2.0  # None means "not set"
    assert common.hparam(None, 'learning_rate', 1.0) == 1.0  # self-tuning
    assert common.warmup_factor(None) == common.DEFAULT_WARMUP_FACTOR
    assert common.grad_clip(h) is None


def test_optimizer_options_pass_only_what_the_search_space_sets():
    h = hparams(block_size=256, nesterov=False, learning_rate=0.1, rank=None)
    assert common.optimizer_options(h, 'shampoo') == {'block_size': 256, 'nesterov': False}
    assert common.optimizer_options(h, 'sketchy') == {'block_size': 256, 'nesterov': False}
    assert common.optimizer_options(None, 'lars') == {}


def test_one_message_shape_for_every_rule():
    rules = {
        'lr': hparam_checks.POSITIVE,
        'beta': hparam_checks.BETA,
        'steps': hparam_checks.integer(1, 'e.g. 16'),
        'kind': hparam_checks.one_of(('a', 'b')),
        'flag': hparam_checks.boolean(),
        'clip': hparam_checks.number(0, low_open=True, none_ok=True),
        'w': hparam_checks.number(0, 1, symbol='ω'),
    }
    values = {'lr': 0.0, 'beta': 1.0, 'steps': 2.5, 'kind': 'c', 'flag': 1, 'clip': None,
              'w': {'min': 0.5, 'max': 1.5}, 'unknown': -1}
    assert hparam_checks.problems(rules, values) == [
        'lr = 0.0 is invalid: must be a number > 0.',
        'beta = 1.0 is invalid: must lie in [0, 1) (a decay rate; 1 would never forget).',
        'steps = 2.5 is invalid: must be an integer >= 1 (e.g. 16).',
        "kind = 'c' is invalid: must be one of a, b.",
        'flag = 1 is invalid: must be true or false.',
        'w = 1.5 is invalid: ω must lie in [0, 1].',
    ]


# Each submission with a search space holding one or more bad values, and the words each
# problem's line must carry (the value, the rule, the fix where there is one).
BAD_SPACES = {
    'adamw': (
        '''
        learning_rate: {min: -1.0e-3, max: 1.0e-2}
        beta2: {feasible_points: [1.0]}
        warmup_factor: {feasible_points: [2.0]}
        ''',
        ['learning_rate = -0.001 is invalid: must be a number > 0',
         'beta2 = 1.0 is invalid: must lie in [0, 1)',
         'warmup_factor = 2.0 is invalid: must lie in [0, 1] (the fraction of step_hint'],
    ),
    'sketchy': (
        '''
        rank: {feasible_points: [512]}
        block_size: {feasible_points: [256]}
        graft_type: {feasible_points: [sgd]}
        ''',
        ['rank = 512 is larger than block_size = 256', 'Lower rank or raise block_size',
         "graft_type = 'sgd' is invalid: must be one of rmsprop_normalized, adam"],
    ),
    'salt': (
        '''
        kd_weight: {min: 0.5, max: 1.5}
        optimizer: {feasible_points: [adamw, sgd]}
        kd_top_k: {feasible_points: [2.5]}
        ''',
        ['kd_weight = 1.5 is invalid: ω must lie in [0, 1]',
         "optimizer = 'sgd' is invalid: must be one of adamw, nadamw",
         'give it as feasible_points'],
    ),
    'salt_ds': (
        '''
        ds_low_percentile: {feasible_points: [80.0]}
        ds_high_percentile: {feasible_points: [20.0]}
        ''',
        ['ds_low_percentile (80.0) must be below ds_high_percentile (20.0)'],
    ),
    'fedbuff_ema': (
        '''
        ema_decay: {feasible_points: [1.0]}
        concurrency: {feasible_points: [0]}
        ''',
        ['ema_decay = 1.0 is invalid: must lie in [0, 1)',
         'concurrency = 0 is invalid: must be an integer >= 1 (clients training at once'],
    ),
    'fedadam': (
        '''
        client_learning_rate: {feasible_points: [0.0]}
        tau: {feasible_points: [0.0]}
        ''',
        ['client_learning_rate = 0.0 is invalid: must be a number > 0',
         'tau = 0.0 is invalid: must be a number > 0'],
    ),
}


@pytest.mark.parametrize('name', sorted(BAD_SPACES))
def test_check_reports_every_bad_value_with_its_rule(name, tmp_path, capsys):
    """`timetrial check NAME --tuning-search-space FILE`, as a user runs it."""
    text, words = BAD_SPACES[name]
    space = tmp_path / 'search_space.yaml'
    space.write_text(textwrap.dedent(text), encoding='utf-8')
    assert main(['check', name, '--tuning-search-space', str(space)]) == 2
    out = capsys.readouterr()
    report = out.out + out.err
    for word in words:
        for framework in ('jax', 'pytorch'):
            assert any(f'({framework}): ' in line and word in line
                       for line in report.splitlines()), (word, framework, report)


def test_every_shipped_submission_checks_clean():
    """Each one validates its own search space, in both frameworks."""
    problems = {name: check_submission(name) for name in SHIPPED}
    assert problems == {name: [] for name in SHIPPED}
    for name in SHIPPED:
        for file in ('jax_submission', 'pytorch_submission'):
            module = importlib.import_module(f'submissions.{name}.{file}')
            assert callable(getattr(module, 'validate_hyperparameters', None)), (name, file)


# ---- schedule and base optimizers -------------------------------------------------------------


def test_jax_schedule_is_the_shared_math():
    import jax.numpy as jnp

    from submissions._lib import jax_common

    workload = namedtuple('Workload', ['step_hint'])(40)
    h = hparams(learning_rate=0.5, warmup_factor=0.1)
    schedule = jax_common.lr_schedule(workload, h)
    got = [float(schedule(jnp.asarray(step))) for step in range(45)]
    want = [0.5 * schedules.warmup_cosine_factor(step, 40, 0.1) for step in range(45)]
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
    assert want[3] == 0.5 and want[40:] == [0.0] * 5  # peak after 4 warmup steps, 0 at the end


@pytest.mark.parametrize('optimizer', common.BASE_OPTIMIZERS)
def test_base_optimizers_agree_across_frameworks(optimizer):
    """``jax_common.adam_tx`` and ``torch_common.adam_optimizer`` take the same steps."""
    import jax.numpy as jnp
    import optax
    import torch

    from submissions._lib import jax_common, torch_common

    h = hparams(learning_rate=0.1, one_minus_beta1=0.1, beta2=0.99, weight_decay=0.05)
    rng = np.random.default_rng(0)
    w0 = rng.normal(size=(3, 4)).astype(np.float32)
    grads = [rng.normal(size=(3, 4)).astype(np.float32) for _ in range(5)]
    tx = jax_common.adam_tx(h, h.learning_rate, optimizer)
    params = {'w': jnp.asarray(w0)}
    state = tx.init(params)
    model = torch.nn.Module()
    model.w = torch.nn.Parameter(torch.tensor(w0))
    opt = torch_common.adam_optimizer(model, h, optimizer)
    for g in grads:
        updates, state = tx.update({'w': jnp.asarray(g)}, state, params)
        params = optax.apply_updates(params, updates)
        model.w.grad = torch.tensor(g)
        opt.step()
        np.testing.assert_allclose(np.asarray(params['w']), model.w.detach().numpy(),
                                   rtol=1e-5, atol=1e-6)
