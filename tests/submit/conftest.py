"""Fixtures for submit tests: the fake workload registry, two baselines, a suite writer."""

from __future__ import annotations

import json
import textwrap
from types import SimpleNamespace

import pytest

from harness import registry

from harness.leaderboard import board as leaderboard
from tests.submit import fakes
from tests.suites import fakes as suite_fakes


@pytest.fixture
def world(tmp_path, monkeypatch):
    """Baselines base_a (10 s to target) and base_b (20 s), a suite `mini` running them on
    the fake workload, and helpers: build() the leaderboard, submit(folder, **kw).
    Submissions named my_algo* take 12 s, others 10 s unless set_times() says otherwise."""
    monkeypatch.setattr(registry, 'workload_infos', lambda: {'fakewl': suite_fakes.INFO})
    monkeypatch.delenv('FAKE_DATA_MISSING', raising=False)
    monkeypatch.delenv('FAKE_HW_CLASS', raising=False)
    run_log = tmp_path / 'runs.log'
    monkeypatch.setenv('FAKE_RUN_LOG', str(run_log))
    fakes.make_submission(tmp_path / 'base_a')
    fakes.make_submission(tmp_path / 'base_b')
    results = tmp_path / 'results'

    def write_suite(frameworks='pytorch', text=fakes.SUITE, name='suite.yaml'):
        path = tmp_path / name
        path.write_text(
            textwrap.dedent(text.format(results=results, frameworks=frameworks)), encoding='utf-8'
        )
        return path

    def set_times(**seconds):
        monkeypatch.setenv(
            'FAKE_TIMES', json.dumps({'base_a': 10.0, 'base_b': 20.0, 'my_algo': 12.0, **seconds})
        )

    def build(suite=None, hardware_class=None):
        suite = leaderboard.load_suite_with(str(suite or write_suite()))
        hw = hardware_class or leaderboard.this_hardware_class()
        return leaderboard.build(suite, 'debug', hw, log=lambda m: None, run_fn=fakes.fake_run)

    def submit(folder, suite=None, **kwargs):
        from harness.leaderboard.submit import submit as run_submit

        kwargs = {'log': lambda m: None, 'run_fn': fakes.fake_run, **kwargs}
        return run_submit(str(folder), str(suite or write_suite()), executor='debug', **kwargs)

    def runs():
        return run_log.read_text().splitlines() if run_log.exists() else []

    set_times()
    return SimpleNamespace(
        root=tmp_path,
        results=results,
        write_suite=write_suite,
        set_times=set_times,
        build=build,
        submit=submit,
        runs=runs,
    )
