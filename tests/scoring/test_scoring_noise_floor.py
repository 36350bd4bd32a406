"""The noise floor: where it is read from, what it does to ties, and bad files."""

import json
import math

import pytest
from scoring_fixtures import trial

from harness import paths, results
from harness.cli.main import main as timetrial
from harness.errors import UserInputError
from scoring import noise_floor
from scoring.api import score
from scoring.noise_floor import find_noise_floors

CLASS = 'cpu-test-2c'


def _floor(cv, *, framework='jax', seeds='different', hardware_class=CLASS, steps_cv=None,
           submission='adamw', workload='mnist'):
    return results.NoiseFloor(
        hardware_class=hardware_class, workload=workload, size='tiny', variant=None,
        framework=framework, submission=submission, seeds=seeds, k=5, n_reached=5,
        time_to_target_cv=cv, steps_to_target_cv=steps_cv)


@pytest.fixture
def places(tmp_path, monkeypatch):
    """This machine's calibration directory and the shipped directory, both empty."""
    monkeypatch.setenv(paths.TARGETS_ENV, str(tmp_path / 'machine'))
    monkeypatch.setattr(noise_floor, 'SHIPPED_DIR', tmp_path / 'shipped')
    return {
        'explicit': tmp_path / 'mine.json',
        'machine': paths.noise_floor_file(CLASS),
        'shipped': tmp_path / 'shipped' / f'{CLASS}.json',
    }


def test_lookup_order(places):
    for place, cv in (('shipped', 0.3), ('machine', 0.2), ('explicit', 0.1)):
        results.write_noise_floors(places[place], [_floor(cv)])
    assert find_noise_floors([CLASS]).cv('mnist', 'tiny', None, 'jax', 'seconds') == 0.2
    assert 'measured on this machine' in find_noise_floors([CLASS]).source
    chosen = find_noise_floors([CLASS], places['explicit'])
    assert chosen.cv('mnist', 'tiny', None, 'jax', 'seconds') == 0.1
    assert '--noise-floor' in chosen.source
    places['machine'].unlink()
    shipped = find_noise_floors([CLASS])
    assert shipped.cv('mnist', 'tiny', None, 'jax', 'seconds') == 0.3
    assert 'reference shipped with scoring' in shipped.source
    places['shipped'].unlink()
    none = find_noise_floors([CLASS])
    assert none.cv('mnist', 'tiny', None, 'jax', 'seconds') is None
    assert none.source == f'none measured (for {CLASS})'


def test_which_entries_count(places):
    results.write_noise_floors(places['machine'], [
        _floor(0.05, seeds='same'),                          # one seed: not what studies differ by
        _floor(0.5, hardware_class='gpu-h100-x1'),          # another machine
        _floor(0.08, submission='adamw', steps_cv=0.02),
        _floor(0.12, submission='nadamw', steps_cv=0.03),   # the largest of a configuration
        _floor(0.4, framework='pytorch'),
    ])
    floors = find_noise_floors([CLASS])
    assert floors.cv('mnist', 'tiny', None, 'jax', 'seconds') == 0.12
    assert floors.cv('mnist', 'tiny', None, 'jax', 'steps') == 0.03
    assert floors.cv('mnist', 'tiny', None, 'jax', 'examples') == 0.03
    assert floors.cv('mnist', 'tiny', None, 'pytorch', 'seconds') == 0.4
    assert floors.cv('mnist', 'tiny', 'wide', 'jax', 'seconds') is None
    assert floors.cv('lm', 'tiny', None, 'jax', 'seconds') is None


def _ten_percent_slower(root, framework_b='jax'):
    for study, (a, b) in enumerate(zip([20, 40, 60, 80, 100], [22, 44, 66, 88, 110])):
        trial(root, submission='adamw', study=study, reach_at_s=a, eval_period_s=1.0,
              ruleset='self')
        trial(root, submission='nadamw', study=study, reach_at_s=b, eval_period_s=1.0,
              ruleset='self', framework=framework_b)


def test_a_difference_inside_the_noise_floor_is_a_tie(tmp_path, places):
    _ten_percent_slower(tmp_path / 'r')
    rep = score(tmp_path / 'r', reference='adamw', bootstrap_samples=200)
    assert rep.comparison_sentence.startswith('Distinguishable from adamw: nadamw')
    # Paired studies: the different-seed spread is not the floor of a paired ratio ...
    results.write_noise_floors(places['explicit'], [_floor(0.15)])
    rep = score(tmp_path / 'r', reference='adamw', bootstrap_samples=200,
                noise_floor=places['explicit'])
    row = rep.speedups[rep.speedups['entrant'] == 'nadamw'].iloc[0]
    assert row['paired'] and math.isnan(row['noise_floor_cv']) and row['tie'] is False
    # ... the same-seed one is: a ratio of two such times moves by sqrt(2) x 8 % > 10 %.
    results.write_noise_floors(places['explicit'], [_floor(0.15), _floor(0.08, seeds='same')])
    rep = score(tmp_path / 'r', reference='adamw', bootstrap_samples=200,
                noise_floor=places['explicit'])
    row = rep.speedups[rep.speedups['entrant'] == 'nadamw'].iloc[0]
    assert row['noise_floor_cv'] == pytest.approx(math.sqrt(2) * 0.08) and row['tie'] is True
    assert rep.comparison_sentence == 'No entrant is distinguishable from adamw; ties: nadamw.'
    assert str(places['explicit']) in rep.noise_floor_source


def test_a_paired_ratio_of_two_frameworks_combines_their_cvs(tmp_path, places):
    _ten_percent_slower(tmp_path / 'r', framework_b='pytorch')
    results.write_noise_floors(places['machine'], [
        _floor(0.05, seeds='same'), _floor(0.2, framework='pytorch', seeds='same')])
    rep = score(tmp_path / 'r', reference='adamw', bootstrap_samples=0)
    row = rep.speedups[rep.speedups['entrant'] == 'nadamw'].iloc[0]
    assert row['noise_floor_cv'] == pytest.approx(math.hypot(0.05, 0.2))
    assert row['vs_reference'] == 'tie'


@pytest.mark.parametrize('content, why', [
    ('not json', 'not valid'),
    ('[1, 2]', 'expected {"noise_floors": [...]}'),
    ('{"noise_floors": [3]}', 'an entry is not a mapping'),
    ('{"noise_floors": [{"workload": "mnist"}]}', 'missing key(s)'),
])
def test_an_invalid_file_is_refused_and_nothing_is_written(tmp_path, places, capsys,
                                                           content, why):
    _ten_percent_slower(tmp_path / 'r')
    places['explicit'].write_text(content)
    out = tmp_path / 'out'
    code = timetrial(['score', str(tmp_path / 'r'), '--noise-floor', str(places['explicit']),
                      '--out', str(out)])
    err = capsys.readouterr().err
    assert code == 2 and not out.exists()
    assert f'Noise-floor file {str(places["explicit"])!r} is not valid' in err and why in err


def test_a_bad_value_in_the_machine_file_names_the_entry(tmp_path, places):
    _ten_percent_slower(tmp_path / 'r')
    entry = _floor(0.1).to_json()
    places['machine'].parent.mkdir(parents=True)
    places['machine'].write_text(json.dumps(
        {'noise_floors': [entry, {**entry, 'seeds': 'some', 'time_to_target_cv': -1}]}))
    with pytest.raises(UserInputError, match=r"entry 2: 'seeds' must be one of same, different"):
        score(tmp_path / 'r')


def test_a_missing_explicit_file_is_bad_input(tmp_path, places):
    _ten_percent_slower(tmp_path / 'r')
    with pytest.raises(UserInputError, match='does not exist'):
        score(tmp_path / 'r', noise_floor=tmp_path / 'nowhere.json')


def test_a_file_for_another_machine_is_said_so(tmp_path, places):
    _ten_percent_slower(tmp_path / 'r')
    results.write_noise_floors(places['explicit'], [_floor(0.5, hardware_class='gpu-x')])
    rep = score(tmp_path / 'r', reference='adamw', noise_floor=places['explicit'],
                out_dir=tmp_path / 'out')
    assert f'no entry for {CLASS}, so none used' in rep.noise_floor_source
    assert rep.noise_floor_source in (tmp_path / 'out' / 'report.html').read_text()
