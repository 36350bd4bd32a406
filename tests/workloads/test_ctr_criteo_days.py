"""Criteo days in time order (day_2 < day_10 < day_23) and the validation-day option."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from harness.errors import UserInputError
from workloads.ctr import criteo_prepare, criteo_reader, data
from workloads.ctr.fakes import write_criteo_file

REPO = Path(__file__).resolve().parents[2]
ROWS = {'day_2': 120, 'day_10': 80, 'day_23': 50}


@pytest.fixture
def days(tmp_path):
    """day_2, day_10 (gzipped) and day_23: sorted as strings, day_10 would come first."""
    source = tmp_path / 'criteo'
    source.mkdir()
    for seed, (name, rows) in enumerate(ROWS.items()):
        write_criteo_file(source / (name + ('.gz' if name == 'day_10' else '')), rows, seed=seed)
    return source


def labels_of(path):
    (block,) = list(criteo_reader.CriteoTsvReader([path], criteo_reader.CRITEO_VOCAB_SIZES))
    return block.labels


def test_files_come_in_day_order_not_string_order(days, tmp_path):
    names = [p.name for p in criteo_reader.find_criteo_files(days)]
    assert names == ['day_2', 'day_10.gz', 'day_23']
    assert sorted(names) == ['day_10.gz', 'day_2', 'day_23']  # the string order this replaces
    # Criteo 1TB's 24 days: a string sort ends at day_9, which then validated.
    full = tmp_path / 'full'
    full.mkdir()
    for d in range(24):
        (full / f'day_{d}').touch()
    ordered = [p.name for p in criteo_reader.find_criteo_files(full)]
    assert ordered == [f'day_{d}' for d in range(24)] and sorted(ordered)[-1] == 'day_9'


def test_the_last_day_by_number_validates_by_default(days, tmp_path):
    out = data.prepare(tmp_path / 'data', variant='criteo', source=str(days), log=lambda _: None)
    ctr = data.CtrData(out)
    assert ctr.meta['train_files'] == ['day_2', 'day_10.gz']
    assert ctr.meta['validation_files'] == ['day_23']
    assert (ctr.num_train, ctr.num_rows) == (200, 250)
    np.testing.assert_array_equal(ctr.labels[200:], labels_of(days / 'day_23'))
    np.testing.assert_array_equal(ctr.labels[120:200], labels_of(days / 'day_10.gz'))
    assert ctr.meta['train_click_rate'] == pytest.approx(float(np.mean(ctr.labels[:200])))


def test_named_validation_days_go_last_and_the_rest_train_in_day_order(days, tmp_path):
    out = data.prepare(
        tmp_path / 'data', variant='criteo', source=str(days), validation_days=['day_10'],
        log=lambda _: None,
    )
    ctr = data.CtrData(out)
    assert ctr.meta['train_files'] == ['day_2', 'day_23']
    assert ctr.meta['validation_files'] == ['day_10.gz']
    assert (ctr.num_train, ctr.num_rows) == (170, 250)
    np.testing.assert_array_equal(ctr.labels[120:170], labels_of(days / 'day_23'))
    np.testing.assert_array_equal(ctr.labels[170:], labels_of(days / 'day_10.gz'))
    # Names with or without .gz; several days.
    train, validation = criteo_prepare.split_days(
        criteo_reader.find_criteo_files(days), ['day_10.gz', 'day_23']
    )
    assert [p.name for p in train] == ['day_2']
    assert [p.name for p in validation] == ['day_10.gz', 'day_23']


def test_bad_validation_days_list_the_days_found(days, tmp_path):
    files = criteo_reader.find_criteo_files(days)
    with pytest.raises(UserInputError) as info:
        criteo_prepare.split_days(files, ['day_9', 'day_23'])
    message = str(info.value)
    assert "no Criteo day named 'day_9'" in message
    assert 'The days found (in day order): day_2, day_10, day_23.' in message
    with pytest.raises(UserInputError, match='leave at least one to train on'):
        criteo_prepare.split_days(files, ['day_2', 'day_10', 'day_23'])
    single = write_criteo_file(tmp_path / 'train.txt', 10)
    with pytest.raises(UserInputError, match='only Criteo file'):
        criteo_prepare.split_days([single], ['train.txt'])
    with pytest.raises(UserInputError, match='needs --variant criteo'):
        data.prepare(tmp_path, variant='synthetic', validation_days=['day_2'], log=print)


def test_the_same_day_plain_and_gzipped_is_refused(days):
    write_criteo_file(days / 'day_23.gz', 5)
    with pytest.raises(UserInputError, match=r'same day twice.*day_23'):
        criteo_reader.find_criteo_files(days)


def test_prepare_command_names_the_validation_days(days, tmp_path):
    """`python -m workloads.ctr.criteo_prepare` as a user runs it: a good and a bad name."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    command = [sys.executable, '-m', 'workloads.ctr.criteo_prepare', '--source', str(days),
               '--data-dir', str(tmp_path / 'data')]
    ok = subprocess.run(command + ['--validation-days', 'day_2,day_23'], cwd=REPO, env=env,
                        capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    ctr = data.CtrData(data.check_prepared(tmp_path / 'data', 'criteo'))
    assert ctr.meta['validation_files'] == ['day_2', 'day_23']
    assert ctr.num_train == ROWS['day_10']
    bad = subprocess.run(command + ['--validation-days', 'day_24'], cwd=REPO, env=env,
                         capture_output=True, text=True)
    assert bad.returncode == 2
    assert "no Criteo day named 'day_24'" in bad.stderr and 'day_2, day_10, day_23' in bad.stderr
    assert 'Traceback' not in bad.stderr
