"""One driver per experiment: a second refuses, a dead one's lock is taken over."""

from __future__ import annotations

import json
import socket
import subprocess
import sys

import pytest

from harness.errors import UserInputError
from harness.launch.records import ExperimentLock, holder_alive, lock_path, read_holder

_TRY_LOCK = '''
import sys
from harness.launch.records import ExperimentLock
from harness.errors import UserInputError
try:
    ExperimentLock(sys.argv[1]).acquire()
except UserInputError as e:
    print(e)
    sys.exit(3)
'''


def test_a_second_driver_refuses_with_the_holders_host_and_pid(tmp_path):
    with ExperimentLock(tmp_path / 'exp') as lock:
        assert lock.took_over is None
        holder = read_holder(tmp_path / 'exp')
        assert holder['host'] == socket.gethostname() and holder_alive(holder) is True
        other = subprocess.run([sys.executable, '-c', _TRY_LOCK, str(tmp_path / 'exp')],
                               capture_output=True, text=True, timeout=60)
        assert other.returncode == 3, other.stderr
        assert 'is in use by another `timetrial run`' in other.stdout
        assert f'pid {holder["pid"]}' in other.stdout and 'timetrial cancel' in other.stdout
    # Released: the record is emptied and the next driver gets the lock.
    assert read_holder(tmp_path / 'exp') is None
    assert subprocess.run([sys.executable, '-c', _TRY_LOCK, str(tmp_path / 'exp')],
                          timeout=60).returncode == 0


def test_the_lock_of_a_dead_driver_is_taken_over(tmp_path):
    path = lock_path(tmp_path / 'exp')
    path.parent.mkdir(parents=True)
    dead = {'host': socket.gethostname(), 'pid': 2 ** 22 + 12345, 'started_at': 'earlier'}
    path.write_text(json.dumps(dead))
    assert holder_alive(dead) is False
    with ExperimentLock(tmp_path / 'exp') as lock:
        assert lock.took_over == dead
        assert read_holder(tmp_path / 'exp')['pid'] != dead['pid']


def test_a_lock_on_another_host_cannot_be_judged_from_here(tmp_path):
    assert holder_alive({'host': 'elsewhere.example', 'pid': 1}) is None


def test_a_second_lock_in_the_same_process_also_refuses(tmp_path):
    with ExperimentLock(tmp_path / 'exp'):
        with pytest.raises(UserInputError, match='in use by another'):
            ExperimentLock(tmp_path / 'exp').acquire()
