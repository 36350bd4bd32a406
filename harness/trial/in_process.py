"""The timed runner in this process: one trial, or one DDP rank of it.

``train_in_process`` builds the workload and the submission, restores the
checkpoint of a resumed trial (dropping evaluations made after it: they are
redone), runs ``TrialRunner`` and returns its result. Only the writer (rank 0)
writes the log, evaluations, checkpoints, error.txt and predictions.
"""

from __future__ import annotations

import io
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import numpy as np

from harness import paths, results
from harness.submission.loader import load_submission
from harness.trial import checkpoint
from harness.trial.backends import get_backend
from harness.trial.config import TrialConfig
from harness.trial.runner import TrialRunner
from harness.trial.workload import build_workload


def _truncate_evals(trial_dir: Path, saved: Optional[Dict[str, Any]]) -> None:
    """Drop evaluations made after the checkpoint a trial resumes from: they are redone."""
    results.truncate_evals(trial_dir, saved['counters']['num_evals'] if saved else 0)


def train_in_process(config: TrialConfig, *, resumed: bool, workload=None, submission=None,
                     on_event: Optional[Callable[[str, Dict[str, Any]], None]] = None,
                     clock: Callable[[], float] = time.perf_counter,
                     wall_clock: Callable[[], float] = time.monotonic):
    """The timed runner in this process (one DDP rank, or the whole trial).

    Returns (TrialResult, traceback of a failure or None). Only the writer (rank 0)
    writes the log, evaluations, checkpoints, error.txt and predictions.
    """
    trial_dir = config.trial_dir()
    data_dir = str(paths.resolve_data_dir(config.data_dir))
    workload = workload if workload is not None else build_workload(config)
    submission = (submission if submission is not None
                  else load_submission(config.submission, config.framework))
    backend = get_backend(config.framework)
    notes: List[str] = []
    saved = (checkpoint.load(trial_dir, config.framework, warn=notes.append)
             if resumed else None)
    if backend.is_writer:
        _truncate_evals(trial_dir, saved)

    log_file = open(trial_dir / results.LOG_FILE, 'a', encoding='utf-8') \
        if backend.is_writer else None
    try:
        for note in notes:
            print(note, file=sys.stderr, flush=True)
            if log_file is not None:
                log_file.write(f'event:checkpoint_fallback note:{note!r}\n')
        runner = TrialRunner(config=config, workload=workload, submission=submission,
                             backend=backend, trial_dir=trial_dir, data_dir=data_dir,
                             clock=clock, wall_clock=wall_clock, on_event=on_event,
                             log_file=log_file,
                             snapshot_budget_bytes=(None if config.snapshot_budget_mb is None
                                                    else config.snapshot_budget_mb * 2**20
                                                    / backend.world_size))
        try:
            result = runner.run(saved)
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception as e:  # noqa: BLE001 — a harness/workload error ends this trial only
            text = traceback.format_exc()
            result = results.TrialResult.failed(f'harness error: {type(e).__name__}: {e}')
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
    if predict is None or result.status in ('failed', 'diverged'):
        return
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(predict(runner.params, runner.model_state, data_dir),
                               dtype=np.float32))
    results.atomic_write_bytes(trial_dir / results.PREDICTIONS_NPY, buffer.getvalue())


