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

from harness import hardware, paths, registry, results

from harness.trial import checkpoint

from harness.calibration import targets
from harness.spec import UserInputError
from harness.trial.config import TrialConfig

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


def failed_result(error: str) -> Dict[str, Any]:
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
    configuration, an unfinished trial with ``resume=False``, a batch that does
    not split over the devices).
    """
    info = registry.validate_workload_choice(config.workload, config.size, config.variant,
                                             config.framework)
    if info.kind == 'federated':
        if config.devices not in (None, 1):
            raise UserInputError(
                f'devices: {config.devices} for {config.workload}: a federated trial simulates '
                'its clients on one device. Leave devices unset (or 1).')
        from harness.trial.federated.runner import run_federated_trial

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

    from harness.submission.loader import load_submission

    data_dir = str(paths.resolve_data_dir(config.data_dir))
    workload = build_workload(config)
    submission = load_submission(config.submission, config.framework)
    processes = _processes(config, workload, submission)
    workload.check_data(data_dir)

    trial_dir.mkdir(parents=True, exist_ok=True)
    _write_start_files(trial_dir, config, workload, submission)
    if processes > 1:
        from harness.trial.backends import torch_ddp

        result = torch_ddp.run_ranks(config, processes, resumed=has_started)
    else:
        result, _ = train_in_process(config, resumed=has_started, workload=workload,
                                     submission=submission, on_event=on_event, clock=clock,
                                     wall_clock=wall_clock)

    preempt = results.read_json(trial_dir / PREEMPTIONS_JSON) or {}
    result['preemptions'] = max(int(preempt.get('count', 0)), int(result.get('resumes', 0)))
    result['hardware_class'] = hardware.hardware_class(hardware.fingerprint())
    results.atomic_write_json(trial_dir / results.RESULT_JSON, result)
    return result


def _processes(config: TrialConfig, workload, submission) -> int:
    """Processes the trial runs as: DDP ranks for PyTorch, always 1 for JAX (a mesh).

    Checks here, before anything is written, that the devices asked for exist and
    that the global batch splits evenly over them.
    """
    from harness.trial.runner import batch_size_of

    if config.framework == 'jax':
        import jax

        if config.devices is not None and config.devices != jax.device_count():
            raise UserInputError(
                f'devices: {config.devices} asked for, but JAX sees {jax.device_count()} '
                'device(s) and trains data parallel over all of them. Leave devices unset, or '
                'choose the devices JAX sees (CUDA_VISIBLE_DEVICES; on the CPU '
                f'XLA_FLAGS=--xla_force_host_platform_device_count={config.devices}).')
        world = jax.device_count()
        check = None
    else:
        from harness.trial.backends import torch_ddp

        world = torch_ddp.world_size_for(config.devices)
        check = torch_ddp.check_batch_divides
    try:
        global_batch_size = batch_size_of(workload, submission)
    except Exception:  # noqa: BLE001 — a broken get_batch_size fails the trial itself, later
        return world if check else 1
    if check is None:
        from workloads._common.jax_utils import check_batch_divides

        check_batch_divides(global_batch_size)
        return 1
    check(global_batch_size, world)
    return world


def _truncate_evals(trial_dir: Path, config: TrialConfig, resumed: bool) -> Optional[Dict]:
    """Load the checkpoint of a resumed trial; drop evaluations made after it (redone)."""
    saved = checkpoint.load(trial_dir, config.framework) if resumed else None
    results.truncate_evals(trial_dir / results.EVALS_JSONL,
                           saved['counters']['num_evals'] if saved else 0)
    return saved


def train_in_process(config: TrialConfig, *, resumed: bool, workload=None, submission=None,
                     on_event: Optional[Callable[[str, Dict[str, Any]], None]] = None,
                     clock: Callable[[], float] = time.perf_counter,
                     wall_clock: Callable[[], float] = time.monotonic):
    """The timed runner in this process (one DDP rank, or the whole trial).

    Returns (result, traceback of a failure or None). Only the writer (rank 0)
    writes the log, evaluations, checkpoints, error.txt and predictions.
    """
    from harness.trial.backends import get_backend
    from harness.trial.runner import TrialRunner
    from harness.submission.loader import load_submission

    trial_dir = config.trial_dir()
    data_dir = str(paths.resolve_data_dir(config.data_dir))
    workload = workload if workload is not None else build_workload(config)
    submission = (submission if submission is not None
                  else load_submission(config.submission, config.framework))
    backend = get_backend(config.framework)
    if backend.is_writer:
        saved = _truncate_evals(trial_dir, config, resumed)
    else:
        saved = checkpoint.load(trial_dir, config.framework) if resumed else None

    log_file = open(trial_dir / results.LOG_FILE, 'a', encoding='utf-8') \
        if backend.is_writer else None
    try:
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
            result = failed_result(f'harness error: {type(e).__name__}: {e}')
            if backend.is_writer:
                (trial_dir / results.ERROR_FILE).write_text(text, encoding='utf-8')
                log_file.write(f'event:failed error:{type(e).__name__}\n{text}')
            return result, text
        if backend.is_writer:
            if runner.error_traceback:
                results.atomic_write_text(trial_dir / results.ERROR_FILE, runner.error_traceback)
            _save_predictions(workload, runner, data_dir, trial_dir, result)
        return result, runner.error_traceback
    finally:
        if log_file is not None:
            log_file.close()


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
