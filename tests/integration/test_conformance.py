"""Every registered submission × every workload's smoke config, a few steps, both frameworks.

One shared conformance suite over all of submissions/ (optax's habit): each
trial must end cleanly (not failed or diverged) and a JAX submission must not
recompile after its second step.
"""

import pytest

from harness import registry
from harness.submission.loader import frameworks_of
from harness.trial.run import run_trial
from harness.trial.config import TrialConfig

pytestmark = pytest.mark.integration
MAX_STEPS = 4


def _requires(path) -> tuple:
    """Workload attributes a submission declares it needs (REQUIRES_WORKLOAD_API), read
    from its source so that collecting the tests imports no framework."""
    import ast

    for module in ('jax_submission.py', 'pytorch_submission.py'):
        file = path / module
        if not file.exists():
            continue
        for node in ast.parse(file.read_text()).body:
            if isinstance(node, ast.Assign) and any(
                    getattr(t, 'id', None) == 'REQUIRES_WORKLOAD_API' for t in node.targets):
                return tuple(ast.literal_eval(node.value))
    return ()


def _offers(info, attributes) -> bool:
    if not attributes:
        return True
    cls = registry.load_object(next(iter(info.classes.values())))
    return set(attributes) <= set(getattr(cls, 'submission_attributes', ()))


def _cases():
    cases = []
    for name, path in registry.builtin_submissions().items():
        if registry.submission_kind(path) != 'centralized':
            continue
        requires = _requires(path)
        for info in registry.workload_infos().values():
            if info.kind != 'centralized' or not _offers(info, requires):
                continue
            size = 'smoke' if 'smoke' in info.sizes else info.sizes[0]
            for fw in frameworks_of(path):
                if fw in info.classes:
                    cases.append(pytest.param(name, info.name, size, fw,
                                              id=f'{name}-{info.name}-{fw}'))
    return cases


@pytest.mark.parametrize('submission, workload, size, framework', _cases())
def test_submission_runs_on_workload(submission, workload, size, framework, data_dir,
                                     tmp_path):
    from harness.prepare import ensure_prepared
    from harness.submission.search_space import load, sample
    from harness.submission.loader import search_space_path
    from harness.trial.run import build_workload

    path = registry.resolve_submission(submission)
    hparams = sample(load(search_space_path(path)), 0, 0)
    config = TrialConfig(workload=workload, framework=framework, submission=str(path),
                         size=size, hparams=hparams, max_steps=MAX_STEPS, data_dir=data_dir,
                         results_dir=str(tmp_path), submission_name=submission,
                         stop_at_target=False)
    ensure_prepared(build_workload(config), workload, None, data_dir, log=lambda m: None)
    result = run_trial(config)
    assert result['status'] == 'budget_exhausted', result.get('error')
    assert result['final_step'] == MAX_STEPS
    assert result['recompiles_after_warmup'] == 0


def test_algoperf_style_submission_runs_unmodified(data_dir, tmp_path):
    """tests/algoperf_style was written against MLCommons AlgoPerf's API."""
    from harness.submission.search_space import load, sample

    for framework in ('jax', 'pytorch'):
        config = TrialConfig(workload='lm', framework=framework, submission='tests/algoperf_style',
                             size='tiny', max_steps=MAX_STEPS, data_dir=data_dir,
                             results_dir=str(tmp_path), stop_at_target=False,
                             hparams=sample(load('tests/algoperf_style/tuning_search_space.json'),
                                            0, 0))
        result = run_trial(config)
        assert result['status'] == 'budget_exhausted', result.get('error')
        assert result['recompiles_after_warmup'] == 0
