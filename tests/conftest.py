"""Test-session settings shared by every test directory."""

import pytest
# Imported first, before any test module imports jax: submitit's import runs
# logging.config.dictConfig, which closes every logging handler that exists by then.
# absl's (installed by importing jax during collection) writes to pytest's capture
# file, and closing it would break the capture of every later test.
import submitit  # noqa: F401

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
