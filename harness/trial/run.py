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

import time
from pathlib import Path
from typing import Any, Callable, Dict, Optional

from harness import hardware, paths, registry, results
from harness.errors import SubmissionError, UserInputError
from harness.submission.loader import load_submission
from harness.trial import checkpoint, cores
from harness.trial.backends import get_backend
from harness.trial.config import TrialConfig
from harness.trial.in_process import train_in_process
from harness.trial.runner import batch_size_of
from harness.trial.workload import build_workload, target_of

def _check_identity(trial_dir: Path, config: TrialConfig) -> None:
    existing = results.read_identity_mapping(trial_dir)
    if existing is None:
        return
    wanted = config.identity()
    mismatched = [k for k, v in wanted.items() if existing.get(k) != v]
    if mismatched:
        diffs = '; '.join(f'{k}: {existing.get(k)!r} there, {wanted[k]!r} now'
                          for k in mismatched)
        raise UserInputError(
            f'Results directory {trial_dir} belongs to a different configuration ({diffs}). '
            'Use another --experiment name (or results directory), or delete that directory.')


def _write_start_files(trial_dir: Path, config: TrialConfig, workload, submission) -> None:
    if not results.has_identity(trial_dir):
        results.write_identity(trial_dir, results.TrialIdentity(
            **config.identity(), target=target_of(workload),
            submission_path=str(submission.path), experiment=config.experiment,
            max_steps=config.max_steps, stop_at_target=config.stop_at_target,
            budget_factor=config.budget_factor,
            requires=list(submission.requires_workload_api),
            offers=list(getattr(workload, 'submission_attributes', ())),
            budget={'max_allowed_runtime_sec': workload.max_allowed_runtime_sec,
                    'eval_period_time_sec': workload.eval_period_time_sec,
                    'step_hint': workload.step_hint,
                    'reference_steps_to_target': workload.reference_steps_to_target}))
    meta = results.read_meta(trial_dir)
    if meta is None:
        # A one-off cost the report shows next to the times (e.g. training lm_slm's teacher).
        cost = getattr(workload, 'teacher_training_cost', None)
        meta = hardware.trial_meta(teacher_training_cost=cost() if callable(cost) else None)
    else:
        meta.sessions += 1
        here = hardware.hardware_class(hardware.fingerprint())
        if meta.hardware_class != here:
            meta.resumed_on_other_hardware.append(here)
    results.write_meta(trial_dir, meta)


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

        # Simulated time does not depend on the cores; the wall time and the other
        # trials' clocks do.
        with cores.claimed(config.threads):
            return run_federated_trial(config)

    trial_dir = config.trial_dir()
    finished = results.read_json(trial_dir / results.RESULT_JSON)
    _check_identity(trial_dir, config)
    if finished is not None:
        return finished
    has_started = results.has_identity(trial_dir)
    if has_started and not resume:
        raise UserInputError(
            f'Trial directory {trial_dir} holds an unfinished trial of this configuration. '
            'Pass --resume to continue it from its checkpoint, or use another --experiment.')

    if has_started:
        # An unreadable checkpoint is refused here, before anything is written.
        checkpoint.verify(trial_dir)
    data_dir = str(paths.resolve_data_dir(config.data_dir))
    workload = build_workload(config)
    submission = load_submission(config.submission, config.framework)
    _check_workload_api(config, workload, submission)
    processes = _processes(config, workload, submission)
    workload.check_data(data_dir)

    # The trial's own cores (a UserInputError, before anything is written, if they are
    # not free); its processes and both frameworks' thread pools stay on them.
    with cores.claimed(config.threads) as trial_cores:
        trial_dir.mkdir(parents=True, exist_ok=True)
        _write_start_files(trial_dir, config, workload, submission)
        if processes > 1:
            from harness.trial import ddp  # imports torch: only for PyTorch trials

            result = ddp.run_ranks(config, processes, resumed=has_started)
        else:
            result, _ = train_in_process(config, resumed=has_started, workload=workload,
                                         submission=submission, on_event=on_event, clock=clock,
                                         wall_clock=wall_clock)
    result.threads = len(trial_cores)

    preempt = results.read_json(trial_dir / results.PREEMPTIONS_JSON) or {}
    result.preemptions = max(int(preempt.get('count', 0)), result.resumes)
    result.hardware_class = hardware.hardware_class(hardware.fingerprint())
    results.write_result(trial_dir, result)
    return result.to_json()


def _check_workload_api(config: TrialConfig, workload, submission) -> None:
    """Refuse, before anything is written, a workload without what the submission needs."""
    offered = set(getattr(workload, 'submission_attributes', ()))
    missing = [a for a in submission.requires_workload_api if a not in offered]
    if missing:
        raise UserInputError(
            f'Submission {submission.name!r} needs workload attribute(s) {missing} '
            f'(its REQUIRES_WORKLOAD_API), which workload {config.workload!r} does not offer '
            f'(it offers {sorted(offered) or "none beyond the AlgoPerf API"}). Run it on a '
            'workload that has them (lm_slm has a teacher), or, in a suite, list the '
            'workloads it runs on with the workload entry\'s `submissions:` key.')


def _processes(config: TrialConfig, workload, submission) -> int:
    """Processes the trial runs as: DDP ranks for PyTorch, always 1 for JAX (a mesh).

    Checks here, before anything is written, that the devices asked for exist and
    that the global batch splits evenly over them. A ``get_batch_size`` that
    raises is submission code failing: the trial itself records it, later.
    """
    try:
        global_batch_size, _ = batch_size_of(workload, submission)
    except SubmissionError:
        global_batch_size = None
    return get_backend(config.framework).processes_for(config.devices, global_batch_size)


def trial_status(config: TrialConfig) -> str:
    """pending | running-or-interrupted | <final status> (for status tables)."""
    trial_dir = config.trial_dir()
    result = results.read_json(trial_dir / results.RESULT_JSON)
    if result is not None:
        return result['status']
    if checkpoint.checkpoint_path(trial_dir).exists() or results.has_identity(trial_dir):
        return 'started'
    return 'pending'
