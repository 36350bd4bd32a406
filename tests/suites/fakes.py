"""Stand-ins for suite tests: a workload class the registry can build without a
framework, and trial functions (module-level, so they pickle into submitit jobs)."""

from __future__ import annotations

import os
import time

from harness import results, spec
from harness.errors import DataNotPreparedError
from harness.trial.config import TrialConfig


class FakeWorkload:
    """What the launcher's pre-flight needs of a workload: construction and check_data."""

    def __init__(self, size=None, variant=None, budget=None):
        self.size, self.variant = size, variant

    def check_data(self, data_dir: str) -> None:
        if os.environ.get('FAKE_DATA_MISSING'):
            raise DataNotPreparedError(
                f'The fake data is not prepared in {data_dir}: run `timetrial prepare fakewl`.')


def prepare(data_dir, variant=None, source=None, log=print):
    """The fake data cannot be made: FAKE_DATA_MISSING keeps it missing."""
    log('fakewl: nothing to prepare')


INFO = spec.WorkloadInfo(
    name='fakewl', sizes=('tiny', 'small'), variants=('wide', 'deep', 'noisy'),
    classes={'jax': 'tests.suites.fakes:FakeWorkload',
             'pytorch': 'tests.suites.fakes:FakeWorkload'},
    prepare='tests.suites.fakes:prepare')
JAX_ONLY = spec.WorkloadInfo(
    name='jaxonly', sizes=('tiny',), variants=(),
    classes={'jax': 'tests.suites.fakes:FakeWorkload'}, prepare='tests.suites.fakes:prepare')


def fake_run(config: TrialConfig):
    """Writes what run_trial writes, without training: trial.json, one eval, result.json."""
    trial_dir = config.trial_dir()
    trial_dir.mkdir(parents=True, exist_ok=True)
    finished = results.read_json(trial_dir / results.RESULT_JSON)
    if finished is not None:
        return finished
    results.write_identity(trial_dir, results.TrialIdentity(
        **config.identity(), target=results.Target('validation/loss', 3.0, 'min')))
    results.append_eval(trial_dir, results.EvalRecord(
        step=10, submission_time_s=1.5, wall_time_s=2.0, eval_time_s=0.1, examples_seen=320,
        metrics={'validation/loss': 2.5}))
    result = results.TrialResult(
        status='reached', time_to_target_s=1.5, steps_to_target=10, examples_to_target=320,
        final_step=10, submission_time_s=1.5, error=None)
    results.write_result(trial_dir, result)
    return result.to_json()


def crash_run(config: TrialConfig):
    """A harness-level crash: the job ends with an exception and no result.json."""
    raise RuntimeError(f'the node caught fire under {config.trial_dir().name}')


def slow_run(config: TrialConfig):
    """Runs long enough to be seen running, then finishes like fake_run."""
    time.sleep(float(os.environ.get('FAKE_RUN_SLEEP_S', '3')))
    return fake_run(config)
