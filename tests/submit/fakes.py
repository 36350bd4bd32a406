"""A trial function that writes what run_trial writes, with times chosen by the test.

``FAKE_TIMES`` (JSON: submission-name prefix -> seconds to target, null = never
reached) sets each trial's time; ``FAKE_HW_CLASS`` the hardware class in its
meta.json (default: this machine's); every call appends one line to
``FAKE_RUN_LOG`` so tests can count the trials that really ran.
"""

from __future__ import annotations

import json
import os

from harness import hardware, results
from harness.trial.config import TrialConfig

#: The suite of the submit tests (format with results=..., frameworks=...).
SUITE = '''
    experiment: mini
    results_dir: {results}
    studies: 2
    trials: 2
    workloads:
      - {{name: fakewl, size: tiny}}
    submissions: [base_a, base_b]
    frameworks: [{frameworks}]
'''


TARGET = {'metric': 'validation/loss', 'value': 3.0, 'mode': 'min'}


def _seconds(name: str):
    times = json.loads(os.environ.get('FAKE_TIMES', '{}'))
    prefix = max((p for p in times if name.startswith(p)), key=len, default=None)
    return times.get(prefix, 10.0) if prefix is not None else 10.0


def _start(config: TrialConfig) -> str:
    """What every trial writes first (trial.json, meta.json); returns its hardware class."""
    trial_dir = config.trial_dir()
    if os.environ.get('FAKE_RUN_LOG'):
        with open(os.environ['FAKE_RUN_LOG'], 'a', encoding='utf-8') as f:
            f.write(str(trial_dir) + '\n')
    results.write_identity(trial_dir, results.TrialIdentity(
        **config.identity(), target=results.Target(**TARGET)))
    hw = os.environ.get('FAKE_HW_CLASS') or hardware.hardware_class(hardware.fingerprint())
    results.write_meta(trial_dir, results.TrialMeta(hardware={'cpu_model': 'fake'},
                                                    hardware_class=hw))
    return hw


def fake_run(config: TrialConfig):
    trial_dir = config.trial_dir()
    trial_dir.mkdir(parents=True, exist_ok=True)
    finished = results.read_json(trial_dir / results.RESULT_JSON)
    if finished is not None:
        return finished
    hw = _start(config)
    seconds = _seconds(config.display_submission)
    reached = seconds is not None
    t = seconds if reached else 60.0
    results.append_eval(trial_dir, results.EvalRecord(
        step=10, submission_time_s=t, wall_time_s=t + 1, eval_time_s=0.1, examples_seen=320,
        metrics={'validation/loss': 2.5 if reached else 4.0}))
    result = results.TrialResult(
        status='reached' if reached else 'budget_exhausted',
        time_to_target_s=t if reached else None,
        steps_to_target=10 if reached else None,
        examples_to_target=320 if reached else None,
        final_step=10, submission_time_s=t, error=None, hardware_class=hw)
    results.write_result(trial_dir, result)
    return result.to_json()


def init_then_fake_run(config: TrialConfig):
    """fake_run, after calling the submission's own ``init_optimizer_state`` the way the
    runner does (``call_submission``): what it raises fails the trial as a real run
    records it — result.json's ``error`` the line ``phase: Type: message``, error.txt the
    traceback. Only the framework the trial names is imported."""
    from harness.errors import SubmissionError, call_submission
    from harness.submission.loader import load_submission
    from harness.submission.search_space import as_hyperparameters

    trial_dir = config.trial_dir()
    trial_dir.mkdir(parents=True, exist_ok=True)
    if (trial_dir / results.RESULT_JSON).exists():
        return results.read_json(trial_dir / results.RESULT_JSON)
    submission = load_submission(config.submission, config.framework)
    try:
        call_submission('init_optimizer_state', submission.init_optimizer_state, workload=None,
                        model_params=None, model_state=None,
                        hyperparameters=as_hyperparameters(config.hparams), rng=None)
    except SubmissionError as e:
        hw = _start(config)
        results.atomic_write_text(trial_dir / results.ERROR_FILE, e.traceback_text)
        result = results.TrialResult.failed(str(e), hardware_class=hw)
        results.write_result(trial_dir, result)
        return result.to_json()
    return fake_run(config)


def killed_run(config: TrialConfig):
    """Trial 1 of every study dies after starting (its job killed: trial.json, no result);
    the others as fake_run."""
    if config.trial != 1:
        return fake_run(config)
    config.trial_dir().mkdir(parents=True, exist_ok=True)
    _start(config)
    raise RuntimeError('the job was killed')


SIGNATURES = '''
def get_batch_size(workload_name):
    return 8


def init_optimizer_state(workload, model_params, model_state, hyperparameters, rng):
    return {}


def update_params(workload, current_param_container, current_params_types, model_state,
                  hyperparameters, batch, loss_type, optimizer_state, eval_results, global_step,
                  rng, train_state=None):
    return optimizer_state, current_param_container, model_state


def data_selection(workload, input_queue, optimizer_state, current_param_container,
                   model_state, hyperparameters, global_step, rng):
    return next(input_queue)
'''

SPACE = '''learning_rate: {min: 1.0e-4, max: 1.0e-2, scaling: log}
weight_decay: {feasible_points: [0.0, 0.1]}
'''


def make_submission(folder, frameworks=('jax', 'pytorch'), body=SIGNATURES, space=SPACE):
    """A submission folder with the contract's functions (doing nothing) per framework."""
    folder.mkdir(parents=True, exist_ok=True)
    for fw in frameworks:
        (folder / f'{fw}_submission.py').write_text(body, encoding='utf-8')
    if space is not None:
        (folder / 'search_space.yaml').write_text(space, encoding='utf-8')
    return folder
