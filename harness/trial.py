"""Run one trial end to end: results directory, resume, the timed runner, result.json.

``run_trial(config)`` is what every launcher calls (the CLI for one trial, the
suite executors through submitit). It

- returns the existing result if the trial already finished (suites skip it);
- resumes an unfinished trial of the same configuration from its checkpoint
  (``resume=True``), or refuses with a message (``resume=False``) — never an
  interactive prompt;
- refuses a trial directory that belongs to a different configuration;
- records any exception from submission code as status ``failed`` (traceback
  in ``error.txt``) and returns: a failing trial never crashes a suite.
"""

from __future__ import annotations

import datetime as dt
import socket
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Dict, Optional

from harness import checkpoint, hardware, paths, registry, results, targets
from harness.spec import UserInputError
from harness.trial_config import TrialConfig

PREEMPTIONS_JSON = 'preemptions.json'


def _check_identity(trial_dir: Path, config: TrialConfig) -> None:
    existing = results.read_yaml(trial_dir / results.TRIAL_YAML)
    if existing is None:
        return
    mismatched = [k for k, v in config.identity().items() if existing.get(k) != v]
    if mismatched:
        diffs = '; '.join(f'{k}: {existing.get(k)!r} there, {config.identity()[k]!r} now'
                          for k in mismatched)
        raise UserInputError(
            f'Results directory {trial_dir} belongs to a different configuration ({diffs}). '
            'Use another --experiment name (or results directory), or delete that directory.')


def _target(workload) -> Dict[str, Any]:
    return {'metric': f'validation/{workload.target_metric_name}',
            'value': float(workload.validation_target_value), 'mode': workload.target_mode}


def build_workload(config: TrialConfig):
    """The workload with this hardware class's calibrated budget, if any."""
    registry.validate_workload_choice(config.workload, config.size, config.variant,
                                      config.framework)
    if config.budget_override:
        from harness.spec import Budget

        budget = Budget(**config.budget_override)
    else:
        hw_class = hardware.hardware_class(hardware.fingerprint())
        # A workload that shares another's target (lm_slm shares lm's) shares its
        # calibration too.
        info = registry.workload_info(config.workload)
        cls = registry.load_object(info.classes[config.framework])
        budget = targets.calibrated_budget(
            hw_class, getattr(cls, 'budget_workload', None) or config.workload, config.size,
            config.variant)
    return registry.make_workload(config.workload, config.framework, config.size,
                                  config.variant, budget=budget)


def _write_start_files(trial_dir: Path, config: TrialConfig, workload, submission) -> None:
    trial_yaml = trial_dir / results.TRIAL_YAML
    if not trial_yaml.exists():
        results.atomic_write_yaml(trial_yaml, {
            **config.identity(),
            'submission_path': str(submission.path),
            'experiment': config.experiment,
            'max_steps': config.max_steps,
            'stop_at_target': config.stop_at_target,
            'budget_factor': config.budget_factor,
            'target': _target(workload),
            'budget': {
                'max_allowed_runtime_sec': workload.max_allowed_runtime_sec,
                'eval_period_time_sec': workload.eval_period_time_sec,
                'step_hint': workload.step_hint,
            },
        })
    meta_path = trial_dir / results.META_JSON
    fp = hardware.fingerprint()
    meta = results.read_json(meta_path)
    if meta is None:
        meta = {
            'hardware': fp, 'hardware_class': hardware.hardware_class(fp),
            'versions': fp['versions'], 'git_commit': hardware.git_commit(),
            'host': socket.gethostname(),
            'start_time': dt.datetime.now(dt.timezone.utc).isoformat(timespec='seconds'),
            'sessions': 1,
        }
        # A one-off cost the report shows next to the times (e.g. training lm_slm's teacher).
        cost = getattr(workload, 'teacher_training_cost', None)
        if callable(cost) and cost() is not None:
            meta['teacher_training_cost'] = cost()
        results.atomic_write_json(meta_path, meta)
    else:
        meta['sessions'] = int(meta.get('sessions', 1)) + 1
        if meta.get('hardware_class') != hardware.hardware_class(fp):
            meta.setdefault('resumed_on_other_hardware', []).append(hardware.hardware_class(fp))
        results.atomic_write_json(meta_path, meta)


def _failed_result(error: str) -> Dict[str, Any]:
    return {'status': 'failed', 'time_to_target_s': None, 'steps_to_target': None,
            'examples_to_target': None, 'final_step': 0, 'submission_time_s': 0.0,
            'error': error}


def run_trial(config: TrialConfig, *, resume: bool = True,
              on_event: Optional[Callable[[str, Dict[str, Any]], None]] = None,
              clock: Callable[[], float] = time.perf_counter,
              wall_clock: Callable[[], float] = time.monotonic) -> Dict[str, Any]:
    """Run (or resume, or skip) one trial; return its result.json contents.

    Raises UserInputError for bad input found before training starts (unknown
    names, broken submission, data not prepared, a directory of another
    configuration, an unfinished trial with ``resume=False``).
    """
    info = registry.validate_workload_choice(config.workload, config.size, config.variant,
                                             config.framework)
    if info.kind == 'federated':
        from harness.federated.runner import run_federated_trial

        return run_federated_trial(config)

    trial_dir = config.trial_dir()
    finished = results.read_json(trial_dir / results.RESULT_JSON)
    _check_identity(trial_dir, config)
    if finished is not None:
        return finished
    has_started = (trial_dir / results.TRIAL_YAML).exists()
    if has_started and not resume:
        raise UserInputError(
            f'Trial directory {trial_dir} holds an unfinished trial of this configuration. '
            'Pass --resume to continue it from its checkpoint, or use another --experiment.')

    from harness.backends import get_backend
    from harness.submission_loader import load_submission

    data_dir = str(paths.resolve_data_dir(config.data_dir))
    workload = build_workload(config)
    workload.check_data(data_dir)
    submission = load_submission(config.submission, config.framework)
    backend = get_backend(config.framework)

    trial_dir.mkdir(parents=True, exist_ok=True)
    _write_start_files(trial_dir, config, workload, submission)
    saved = checkpoint.load(trial_dir, config.framework) if has_started else None
    evals_path = trial_dir / results.EVALS_JSONL
    # Evaluations after the checkpoint are redone by the resumed run.
    results.truncate_evals(evals_path, saved['counters']['num_evals'] if saved else 0)

    from harness.runner import TrialRunner

    with open(trial_dir / results.LOG_FILE, 'a', encoding='utf-8') as log_file:
        runner = TrialRunner(config=config, workload=workload, submission=submission,
                             backend=backend, trial_dir=trial_dir, data_dir=data_dir,
                             clock=clock, wall_clock=wall_clock, on_event=on_event,
                             log_file=log_file)
        try:
            result = runner.run(saved)
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception as e:  # noqa: BLE001 — a harness/workload error ends this trial only
            text = traceback.format_exc()
            (trial_dir / results.ERROR_FILE).write_text(text, encoding='utf-8')
            result = _failed_result(f'harness error: {type(e).__name__}: {e}')
            log_file.write(f'event:failed error:{type(e).__name__}\n{text}')
        else:
            if runner.error_traceback:
                results.atomic_write_text(trial_dir / results.ERROR_FILE, runner.error_traceback)
            _save_predictions(workload, runner, data_dir, trial_dir, result)

    preempt = results.read_json(trial_dir / PREEMPTIONS_JSON) or {}
    result['preemptions'] = max(int(preempt.get('count', 0)), int(result.get('resumes', 0)))
    result['hardware_class'] = hardware.hardware_class(hardware.fingerprint())
    results.atomic_write_json(trial_dir / results.RESULT_JSON, result)
    return result


def _save_predictions(workload, runner, data_dir: str, trial_dir: Path, result) -> None:
    """Validation predictions at the end (CTR: replica prediction difference)."""
    predict = getattr(workload, 'validation_predictions', None)
    if predict is None or result.get('status') in ('failed', 'diverged'):
        return
    import io

    import numpy as np

    buffer = io.BytesIO()
    np.save(buffer, np.asarray(predict(runner.params, runner.model_state, data_dir),
                               dtype=np.float32))
    results.atomic_write_bytes(trial_dir / 'validation_predictions.npy', buffer.getvalue())


def trial_status(config: TrialConfig) -> str:
    """pending | running-or-interrupted | <final status> (for status tables)."""
    trial_dir = config.trial_dir()
    result = results.read_json(trial_dir / results.RESULT_JSON)
    if result is not None:
        return result['status']
    if checkpoint.checkpoint_path(trial_dir).exists() or (trial_dir / results.TRIAL_YAML).exists():
        return 'started'
    return 'pending'
