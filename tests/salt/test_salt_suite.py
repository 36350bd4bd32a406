"""The shipped salt suites: a controlled ablation (same seeds, same base hyperparameters)."""

from __future__ import annotations

import collections
import textwrap

import pytest

from harness.errors import UserInputError
from harness.launch.suite import expand, find_suite, load_suite
from submissions._lib import kd

BASE_OPTIMIZER_KEYS = ('learning_rate', 'one_minus_beta1', 'beta2', 'warmup_factor',
                       'weight_decay', 'grad_clip', 'dropout_rate')


@pytest.mark.parametrize('name,size', [('salt', 'tiny'), ('salt_small', 'small')])
def test_the_controlled_ablation(name, size):
    trials = expand(load_suite(find_suite(name)))
    runs = collections.Counter(
        (t.display_submission, t.variant) for t in trials if t.framework == 'jax'
    )
    assert runs == {
        ('nadamw', None): 5, ('kd_only', None): 5, ('salt', None): 5, ('salt_ds', None): 5,
        ('salt', 'weaker_teacher'): 5, ('salt', 'strong_teacher'): 5,
    }
    assert {t.size for t in trials} == {size}
    for study in range(5):
        same_study = [t for t in trials if t.study == study]
        # One initialization and data order per study, the teacher variants' included.
        assert len({t.seed for t in same_study}) == 1
        # One base optimizer and its values for every entrant: distillation is the difference.
        assert len({tuple(t.hparams[k] for k in BASE_OPTIMIZER_KEYS) for t in same_study}) == 1
        distilling = [t for t in same_study if t.display_submission != 'nadamw']
        assert {t.hparams['optimizer'] for t in distilling} == {'nadamw'}
        assert len({(t.hparams['kd_weight'], t.hparams['kd_temperature']) for t in distilling}) == 1
    assert len({t.seed for t in trials}) == 5
    for t in trials:
        if t.display_submission in kd.MODES:
            mode = t.display_submission
            assert kd.validate_hyperparameters(t.hparams, mode) == [], (mode, t.hparams)


def test_salt_distills_for_about_a_fifth_of_the_reference_steps():
    (salt,) = [t for t in expand(load_suite(find_suite('salt')))
               if t.display_submission == 'salt' and t.variant is None and t.study == 0]
    settings = kd.settings_from(salt.hparams, 390, 'salt')
    assert settings.kd_steps == 78 and settings.transition == 'step'


SUITE = '''
experiment: pairs
results_dir: {results}
studies: 2
workloads:
  - {{name: lm_slm, size: tiny}}
  - {{name: lm_slm, size: tiny, variants: [strong_teacher], submissions: [{only}],
     paired_variants: {paired}}}
submissions: [nadamw, salt]
frameworks: [jax]
'''


def _suite(tmp_path, only='salt', paired='true'):
    path = tmp_path / 'suite.yaml'
    path.write_text(textwrap.dedent(SUITE.format(results=tmp_path, only=only, paired=paired)))
    return load_suite(path)


def test_an_entry_runs_only_its_submissions_on_the_base_seeds(tmp_path):
    trials = expand(_suite(tmp_path))
    assert [(t.display_submission, t.variant, t.study) for t in trials] == [
        ('nadamw', None, 0), ('salt', None, 0), ('salt', 'strong_teacher', 0),
        ('nadamw', None, 1), ('salt', None, 1), ('salt', 'strong_teacher', 1),
    ]
    assert trials[0].seed == trials[1].seed == trials[2].seed != trials[3].seed


def test_unpaired_variants_keep_their_own_seeds(tmp_path):
    trials = expand(_suite(tmp_path, paired='false'))
    assert trials[2].seed != trials[1].seed


def test_an_unknown_submission_on_an_entry_is_named_with_its_line(tmp_path):
    with pytest.raises(UserInputError) as err:
        _suite(tmp_path, only='slat')
    message = str(err.value)
    assert "suite.yaml:7: workloads[1].submissions[0]: 'slat' is not one of" in message
    assert "did you mean salt" in message
