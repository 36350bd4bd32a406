"""The measurement scripts behind the shipped budgets run, in both frameworks, as documented."""

import pytest

from harness.prepare import ensure_prepared
from harness.registry import make_workload
from workloads.ctr import measure as ctr_measure
from workloads.lm import measure as lm_measure

pytestmark = pytest.mark.integration


@pytest.mark.parametrize('framework', ['jax', 'pytorch'])
def test_lm_and_ctr_measure_scripts_train_and_report(framework, data_dir, capsys):
    lm_measure.main(['--framework', framework, '--data-dir', data_dir, '--steps', '6',
                     '--eval-every-steps', '3'])
    out = capsys.readouterr().out
    assert 'step:6 ' in out and 'median_step_ms:' in out and 'tokens_per_s:' in out
    ensure_prepared(make_workload('ctr', framework, 'tiny'), 'ctr', None, data_dir,
                    log=lambda m: None)
    ctr_measure.main(['--framework', framework, '--data-dir', data_dir, '--steps', '6'])
    out = capsys.readouterr().out
    assert 'step:6 ' in out and 'examples_per_s:' in out
    # The loss is a number: the shared step trained something.
    loss = float(out.split('train_loss:')[1].split()[0])
    assert 0.0 < loss < 2.0
