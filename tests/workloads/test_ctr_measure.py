"""The ctr measuring script: its two schedules agree, and it imports no submission code."""

import argparse
import ast
from pathlib import Path

import pytest

from workloads.ctr import measure

CTR = Path(measure.__file__).parent


@pytest.mark.parametrize('steps', [1, 2, 40, 1500])
def test_jax_and_torch_schedules_agree_at_every_step(steps):
    args = argparse.Namespace(lr=2e-3, steps=steps)
    jax_lr, torch_lr = measure.jax_schedule(args), measure.torch_lr_at(args)
    warm = max(int(measure.WARMUP_FACTOR * steps), 1)
    for step in range(steps + 3):
        assert float(jax_lr(step)) == pytest.approx(torch_lr(step), rel=1e-5, abs=1e-9), step
    assert torch_lr(0) == pytest.approx(2e-3 / warm)
    assert torch_lr(warm) == pytest.approx(2e-3)  # the peak, after warmup
    if steps > warm:
        assert torch_lr(steps) == pytest.approx(0.0, abs=1e-12)  # decayed to 0 at --steps


def test_the_ctr_workload_imports_no_submission_code():
    """Workloads sit below submissions: measure.py builds its optimizers with optax/torch.optim."""
    for path in sorted(CTR.glob('*.py')):
        for node in ast.walk(ast.parse(path.read_text(encoding='utf-8'))):
            if isinstance(node, ast.ImportFrom) and node.module:
                assert not node.module.startswith('submissions'), f'{path.name}: {node.module}'
            if isinstance(node, ast.Import):
                assert not any(a.name.startswith('submissions') for a in node.names), path.name
