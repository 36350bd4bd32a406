import pytest

from harness import registry
from tests.harness import toy, toy_submission
from harness.trial.config import TrialConfig

SUBMISSION = toy_submission.__file__


@pytest.fixture
def toy_env(monkeypatch, tmp_path):
    """Registers the toy workload, resets the fake clock and the toy submission's switches."""
    infos = dict(registry.workload_infos())
    infos['toy'] = toy.INFO
    monkeypatch.setattr(registry, 'workload_infos', lambda: infos)
    monkeypatch.setenv('TIMETRIAL_TARGETS_DIR', str(tmp_path / 'targets'))
    toy.CLOCK.t = 0.0
    monkeypatch.setattr(toy, 'COSTS', dict(toy.COSTS))
    for name in ('RAISE_AT_STEP', 'NAN_AT_STEP', 'COMPLETE_AT_STEP', 'INTERRUPT_AT_STEP'):
        monkeypatch.setattr(toy_submission, name, None)
    toy_submission.SEEN.update(rngs=[], train_state=[], batch_sizes=[])
    # The loader imports the submission file under its own name: patch that module too.
    from harness.submission.loader import _import_file
    from pathlib import Path

    loaded = _import_file(Path(SUBMISSION))
    for name in ('RAISE_AT_STEP', 'NAN_AT_STEP', 'COMPLETE_AT_STEP', 'INTERRUPT_AT_STEP'):
        monkeypatch.setattr(loaded, name, None)
    loaded.SEEN.update(rngs=[], train_state=[], batch_sizes=[])

    def make_config(**kw):
        base = dict(workload='toy', framework='pytorch', submission=SUBMISSION, size='tiny',
                    hparams={'learning_rate': 0.05}, results_dir=str(tmp_path / 'results'),
                    data_dir=str(tmp_path / 'data'), submission_name='toy_sgd')
        base.update(kw)
        return TrialConfig(**base)

    return make_config, loaded
