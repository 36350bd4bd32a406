"""The resolved configuration of one trial, and where its results live.

``TrialConfig`` is what every launcher hands to ``harness.trial.run.run_trial``:
the command line for a single trial, the suite expander for many, and the
submitit executors (it pickles). It is written to ``trial.yaml``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Dict, Optional

RULESETS = ('external', 'self')


@dataclasses.dataclass(frozen=True)
class TrialConfig:
    workload: str
    framework: str
    #: A built-in submission name or an absolute path to a submission folder/file.
    submission: str
    size: str
    variant: Optional[str] = None
    ruleset: str = 'external'
    #: None under self-tuning; otherwise the trial's hyperparameters.
    hparams: Optional[Dict[str, Any]] = None
    seed: int = 0
    study: int = 0
    trial: int = 0
    experiment: str = 'default'
    results_dir: str = 'results'
    data_dir: Optional[str] = None
    #: Cap on steps for smoke runs; the trial then ends budget_exhausted unless
    #: it reached the target first.
    max_steps: Optional[int] = None
    #: AlgoPerf stops at the validation target; False keeps training to the budget.
    stop_at_target: bool = True
    #: Multiplies the workload budget (AlgoPerf self-tuning uses 1.5).
    budget_factor: float = 1.0
    #: Wall seconds between checkpoints besides the one at every evaluation, so
    #: a preempted trial loses at most this much work (never counted twice).
    checkpoint_every_s: float = 60.0
    #: Name of the submission as shown in results (folder or file stem).
    submission_name: Optional[str] = None
    #: Devices the trial trains on. None: all it sees (JAX: every device, one process;
    #: PyTorch: one DDP process per visible GPU, one process on a CPU-only machine).
    #: PyTorch on the CPU with N > 1 runs N gloo processes (DDP without GPUs).
    #: Not part of the identity: a trial may resume on another number of devices.
    devices: Optional[int] = None
    #: CPU cores the trial trains on (its own, claimed so no other trial shares them:
    #: harness.trial.cores). None: every core the process may use (Slurm: the job's).
    #: Not part of the identity: timing, not the trajectory, depends on it.
    threads: Optional[int] = None
    #: Memory for the snapshots that locate the first hit between two evaluations
    #: (harness.trial.snapshots); None: the default (15 % of RAM, at most 4 GiB).
    snapshot_budget_mb: Optional[float] = None
    #: Replaces the workload's target and budget (spec.Budget fields); used by
    #: ``timetrial calibrate``, whose tuning runs need a generous budget.
    budget_override: Optional[Dict[str, Any]] = None

    @property
    def display_submission(self) -> str:
        if self.submission_name:
            return self.submission_name
        path = Path(self.submission)
        return path.stem if path.suffix == '.py' else path.name

    @property
    def workload_dirname(self) -> str:
        base = self.workload if not self.variant else f'{self.workload}-{self.variant}'
        return f'{base}_{self.framework}'

    def trial_dir(self) -> Path:
        return (Path(self.results_dir) / self.experiment / self.display_submission
                / self.workload_dirname / f'study_{self.study}' / f'trial_{self.trial}')

    def identity(self) -> Dict[str, Any]:
        """The fields that make a trial what it is: a resumed trial must match them."""
        return {
            'workload': self.workload, 'variant': self.variant, 'size': self.size,
            'framework': self.framework, 'submission': self.display_submission,
            'ruleset': self.ruleset, 'study': self.study, 'trial': self.trial,
            'hparams': self.hparams, 'seed': self.seed,
        }

    def replace(self, **changes) -> 'TrialConfig':
        return dataclasses.replace(self, **changes)
