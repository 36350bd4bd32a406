"""Test-session settings shared by every test directory."""

import pytest

from harness.trial import cores


@pytest.fixture(autouse=True, scope='session')
def _own_core_locks(tmp_path_factory):
    """Trials claim CPU cores through lock files (harness.trial.cores). A test session
    keeps its own, so that two test sessions on one machine do not refuse each other's
    trials; inside a session, trials run one after another (or claim disjoint cores)."""
    mp = pytest.MonkeyPatch()
    mp.setenv(cores.LOCK_DIR_ENV, str(tmp_path_factory.mktemp('core-locks')))
    yield
    mp.undo()
