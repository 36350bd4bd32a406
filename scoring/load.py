"""Load a results tree into two pandas DataFrames: one row per trial, one row per evaluation.

Layout read (``harness.results``; docs/architecture.md, "Results layout"):

    <experiment>/<submission>/<workload>[-<variant>]_<framework>/study_<s>/trial_<t>/
        trial.json  meta.json  evals.jsonl  result.json   (harness.results)

Only the directory shape ``study_<s>/trial_<t>`` is used to find trials; the keys in
``trial.json`` are authoritative for everything else (the other directory names are
only used for the experiment name, which trial.json does not carry).

``trials`` frame, one row per trial (``TRIAL_COLUMNS`` in this order):

==========================  =====================================================
trial_id                    int, row number; ``evals.trial_id`` refers to it
experiment                  directory name five levels above the trial file
submission, framework       from trial.json
entrant                     the scored unit: the submission name, or
                            ``<submission>@<framework>`` when that submission was
                            run under more than one framework in the loaded data
workload, variant, size     from trial.json (variant None for a base workload)
workload_id                 ``<workload>[-<variant>]``, plus ``@<size>`` when the
                            workload appears in more than one size
base_id                     workload_id of the base workload (itself for a base)
ruleset                     ``external`` or ``self``
kind                        the contract: ``centralized`` or ``federated`` (trial.json;
                            older trials: centralized). Entrants and workloads of one
                            contract form a track; a workload of another track is not
                            applicable to an entrant (NaN in the ratios), not "not reached".
requires, offers            comma-joined workload attributes beyond AlgoPerf's API that
                            the submission needs (its REQUIRES_WORKLOAD_API) and that the
                            workload offers (trial.json; older trials: none). A workload
                            that lacks what an entrant needs is not applicable to it either.
study, trial, seed          ints from trial.json
hparams                     mapping (None under self-tuning)
target_metric/value/mode    the validation target (mode ``min`` or ``max``)
hardware_class              from meta.json (None when missing)
status                      result.json status, or ``unfinished`` (no result.json)
finished                    result.json was read
reached                     counts as reaching the target: status ``reached``, or
                            ``budget_exhausted``/``training_complete`` with a
                            time_to_target_s (a run told to keep going past the
                            target). ``failed``/``diverged``/unfinished: never.
time_to_target_s            seconds of submission time at the first evaluation that
steps_to_target             met the target; steps and examples likewise. From
examples_to_target          result.json; a value result.json lacks is recomputed from
                            evals.jsonl. NaN when not ``reached``.
evals_time_to_target_s      the same three recomputed from evals.jsonl alone (NaN
evals_steps_to_target       when no evaluation meets the target); kept for checks
evals_examples_to_target    and for AlgoPerf's selection by evaluation index
final_step                  from result.json
submission_time_s           total submission time from result.json
error                       the first line of result.json ``error`` (None if none;
                            error.txt holds the traceback)
n_evals                     evaluations read
best_metric, final_metric   best and last value of the target metric in evals.jsonl
teacher_time_s              result.json ``teacher_time_s`` (optional)
teacher_training_time_s     meta.json ``teacher_training_cost.time_s`` (optional)
teacher_training_flops      meta.json ``teacher_training_cost.flops`` (optional)
time_to_target_resolution_s result.json, optional (NaN when absent): the gap between
extra_evals                 the evaluation that met the target and the last that
eval_wall_share             missed; evaluations added to keep it small; evaluation's
cpu_share, load_average     share of wall time; CPU time / wall time and the load
timing_disturbed            while the trial ran; True when other work disturbed its
                            clock (None when the runner did not say)
trial_dir                   str path of the trial directory
==========================  =====================================================

``evals`` frame, one row per evaluation: ``trial_id``, ``eval_index`` (0-based order
in the file), ``step``, ``submission_time_s``, ``wall_time_s``, ``eval_time_s``,
``examples_seen``, then one float column per metric key found in any file
(``validation/loss``, ...; NaN where a trial lacks it). A nested ``metrics`` mapping
in a line is flattened into the same columns.

Files are read by ``scoring.trial_files``, in parallel (forked processes, one per
usable core) for trees of ``PARALLEL_MIN_TRIALS`` trials or more.

Problems: a file that cannot be read is reported (``Problem``: path, reason) and
skipped; one bad file never stops the rest. A trial without a readable trial.json is
skipped (its target is unknown); a bad result.json makes the trial count as
unfinished; a bad line of evals.jsonl is skipped on its own. A last line without a
newline is a write in progress and ignored silently.
"""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import numpy as np
import pandas as pd

from harness import results
from harness.errors import UserInputError
from scoring.evals_file import EVAL_FIXED_COLUMNS
from scoring.parallel import fork_map, usable_cores
from scoring.problems import Problem
from scoring.trial_files import REQUIRED_TRIAL_KEYS, UNFINISHED, read_trials  # noqa: F401

STATUSES = results.STATUSES
RULESETS = results.RULESETS
TARGET_MODES = results.TARGET_MODES
# A trial dir is found this deep at most below RESULTS_DIR (a results root holding
# experiments is 5 levels above its trial dirs); bounds the walk on odd trees.
_MAX_DEPTH = 6
_TRIAL_RE = re.compile(r'trial_\d+\Z')
_STUDY_RE = re.compile(r'study_\d+\Z')
#: Below this many trials one process reads them all: forking and sending the
#: frames back costs ~0.1 s, more than a few hundred trials take to read.
PARALLEL_MIN_TRIALS = 1000

TRIAL_COLUMNS = (
    'trial_id',
    'experiment',
    'submission',
    'framework',
    'entrant',
    'workload',
    'variant',
    'size',
    'workload_id',
    'base_id',
    'ruleset',
    'kind',
    'requires',
    'offers',
    'study',
    'trial',
    'seed',
    'hparams',
    'target_metric',
    'target_value',
    'target_mode',
    'hardware_class',
    'status',
    'finished',
    'reached',
    'time_to_target_s',
    'steps_to_target',
    'examples_to_target',
    'evals_time_to_target_s',
    'evals_steps_to_target',
    'evals_examples_to_target',
    'final_step',
    'submission_time_s',
    'error',
    'n_evals',
    'best_metric',
    'final_metric',
    'teacher_time_s',
    'teacher_training_time_s',
    'teacher_training_flops',
    'time_to_target_resolution_s',
    'extra_evals',
    'eval_wall_share',
    'cpu_share',
    'load_average',
    'timing_disturbed',
    'trial_dir',
)


@dataclasses.dataclass
class LoadedResults:
    root: Path
    trials: pd.DataFrame
    evals: pd.DataFrame
    problems: List[Problem]
    #: hardware_class -> the ``hardware`` mapping of the first trial of that class.
    hardware: Dict[str, Dict[str, Any]]


def find_trial_dirs(root: Path) -> List[Path]:
    """Every ``study_<s>/trial_<t>`` directory at most ``_MAX_DEPTH`` levels below root.

    ``root`` may be a results root (experiments inside), one experiment, one
    submission, one workload directory, or a single trial directory.
    """
    root = Path(root)
    if _TRIAL_RE.match(root.name) and _STUDY_RE.match(root.parent.name):
        return [root]
    found: List[Path] = []

    def visit(path: str, depth: int, parent_is_study: bool) -> None:
        try:
            with os.scandir(path) as it:
                entries = sorted(
                    (e for e in it if e.is_dir() and not e.name.startswith('.')),
                    key=lambda e: e.name,
                )
        except OSError:
            return
        for entry in entries:
            if parent_is_study and _TRIAL_RE.match(entry.name):
                found.append(Path(entry.path))
            elif depth < _MAX_DEPTH and entry.name != results.CHECKPOINT_DIR:
                visit(entry.path, depth + 1, bool(_STUDY_RE.match(entry.name)))

    visit(str(root), 1, bool(_STUDY_RE.match(root.name)))
    return found


def _from_evals(trials: pd.DataFrame, evals: pd.DataFrame, problems: List[Problem]) -> None:
    """Add evals_*_to_target, best/final metric and ``reached``; fill result.json gaps."""
    n = len(trials)
    hit = {c: np.full(n, np.nan) for c in ('submission_time_s', 'step', 'examples_seen')}
    best = np.full(n, np.nan)
    final = np.full(n, np.nan)
    trial_ids = evals['trial_id'].to_numpy()
    for metric, group in trials.groupby('target_metric', sort=False):
        if metric not in evals.columns:
            continue
        ids = group['trial_id'].to_numpy()
        in_group = np.zeros(n, dtype=bool)
        in_group[ids] = True
        rows = np.flatnonzero(in_group[trial_ids])
        row_trial = trial_ids[rows]
        values = evals[metric].to_numpy()[rows]
        # sign makes every target a minimisation: first row with sign*v <= sign*target.
        sign = np.where(trials['target_mode'].to_numpy() == 'max', -1.0, 1.0)[row_trial]
        signed = sign * values
        meets = signed <= (sign * trials['target_value'].to_numpy()[row_trial])
        first_trials, first_rows = np.unique(row_trial[meets], return_index=True)
        met_rows = rows[meets][first_rows]
        for col, out in hit.items():
            out[first_trials] = evals[col].to_numpy()[met_rows]
        valid = ~np.isnan(values)
        frame = pd.DataFrame({'t': row_trial[valid], 'v': signed[valid]})
        by_trial = frame.groupby('t')['v']
        mins, lasts = by_trial.min(), by_trial.last()
        idx = mins.index.to_numpy()
        best[idx] = mins.to_numpy() * np.where(
            trials['target_mode'].to_numpy()[idx] == 'max', -1.0, 1.0
        )
        final[idx] = lasts.to_numpy() * np.where(
            trials['target_mode'].to_numpy()[idx] == 'max', -1.0, 1.0
        )
    trials['evals_time_to_target_s'] = hit['submission_time_s']
    trials['evals_steps_to_target'] = hit['step']
    trials['evals_examples_to_target'] = hit['examples_seen']
    trials['best_metric'] = best
    trials['final_metric'] = final

    status = trials['status'].to_numpy()
    # harness.results.TrialResult.reached, for every trial at once
    reached = (status == 'reached') | (
        np.isin(status, results.STATUSES_PAST_TARGET)
        & trials['time_to_target_s'].notna().to_numpy()
    )
    for col, from_evals in (
        ('time_to_target_s', 'evals_time_to_target_s'),
        ('steps_to_target', 'evals_steps_to_target'),
        ('examples_to_target', 'evals_examples_to_target'),
    ):
        trials[col] = trials[col].fillna(trials[from_evals])
    unknown = reached & trials['time_to_target_s'].isna().to_numpy()
    for d in trials.loc[unknown, 'trial_dir']:
        problems.append(
            Problem(
                os.path.join(d, results.RESULT_JSON),
                'status reached but no time_to_target_s and no evaluation '
                'meets the target; counted as not reached',
            )
        )
    reached &= ~unknown
    trials['reached'] = reached
    for col in ('time_to_target_s', 'steps_to_target', 'examples_to_target'):
        trials.loc[~reached, col] = np.nan


def _add_labels(trials: pd.DataFrame) -> None:
    """entrant, workload_id and base_id: qualify names only where they would collide."""
    fw_count = trials.groupby('submission')['framework'].nunique()
    multi_fw = set(fw_count[fw_count > 1].index)
    trials['entrant'] = [
        f'{s}@{f}' if s in multi_fw else s
        for s, f in zip(trials['submission'], trials['framework'])
    ]
    size_count = trials.groupby('workload')['size'].nunique()
    multi_size = set(size_count[size_count > 1].index)

    def label(workload: str, variant: Optional[str], size: str) -> str:
        # variant is None, or NaN once pandas stores it in a string column
        name = f'{workload}-{variant}' if isinstance(variant, str) else workload
        return f'{name}@{size}' if workload in multi_size else name

    trials['workload_id'] = [
        label(w, v, s) for w, v, s in zip(trials['workload'], trials['variant'], trials['size'])
    ]
    trials['base_id'] = [label(w, None, s) for w, s in zip(trials['workload'], trials['size'])]


#: Columns set after reading, from all trials at once.
_DERIVED = (
    'entrant',
    'workload_id',
    'base_id',
    'reached',
    'evals_time_to_target_s',
    'evals_steps_to_target',
    'evals_examples_to_target',
    'best_metric',
    'final_metric',
)
_READ_COLUMNS = tuple(c for c in TRIAL_COLUMNS if c not in _DERIVED)


def _read_chunk(trial_dirs: List[Path]):
    return read_trials(trial_dirs, _READ_COLUMNS)


def _read_in_chunks(trial_dirs: List[Path], workers: Optional[int], while_waiting=None):
    """Every trial's files, read by up to ``workers`` processes (None: every usable core)."""
    if workers is None:
        workers = usable_cores() if len(trial_dirs) >= PARALLEL_MIN_TRIALS else 1
    workers = max(1, min(workers, len(trial_dirs)))
    # A few chunks per worker: an idle worker takes the next (trees are uneven).
    n_chunks = 1 if workers == 1 else 3 * workers
    bounds = np.linspace(0, len(trial_dirs), n_chunks + 1).astype(int)
    chunks = [trial_dirs[a:b] for a, b in zip(bounds[:-1], bounds[1:])]
    return fork_map(_read_chunk, chunks, workers, while_waiting)


def _merge(chunks) -> tuple:
    """One trials frame and one evals frame, trial ids renumbered across chunks."""
    columns = {c: [] for c in _READ_COLUMNS}
    frames, problems, hardware = [], [], {}
    offset = 0
    for chunk in chunks:
        chunk.trials['trial_id'] = [i + offset for i in chunk.trials['trial_id']]
        for c, values in chunk.trials.items():
            columns[c].extend(values)
        if len(chunk.evals):
            chunk.evals['trial_id'] += offset
            frames.append(chunk.evals)
        offset += len(chunk.trials['trial_id'])
        problems.extend(chunk.problems)
        for cls, fingerprint in chunk.hardware.items():
            hardware.setdefault(cls, fingerprint)
    trials = pd.DataFrame(columns)
    fixed = ['trial_id', 'eval_index', *EVAL_FIXED_COLUMNS]
    if not frames:
        empty = pd.DataFrame({c: pd.Series(dtype=np.float64) for c in fixed})
        return trials, empty, problems, hardware
    evals = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
    metrics = sorted(c for c in evals.columns if c not in fixed)
    return trials, evals[fixed + metrics], problems, hardware


def load_results(
    results_dir: Path,
    workers: Optional[int] = None,
    while_waiting: Optional[Callable[[], None]] = None,
) -> LoadedResults:
    """Read every trial under ``results_dir``; see the module docstring for the schema.

    ``workers``: processes reading trial files (default: every usable core for
    large trees, one below ``PARALLEL_MIN_TRIALS`` trials); the frames are the same.
    ``while_waiting()``: work for this process while they read (``score`` imports
    matplotlib then). Raises UserInputError when the directory does not exist or
    holds no trials.
    """
    root = Path(results_dir).expanduser()
    if not root.is_dir():
        raise UserInputError(
            f'Results directory {str(root)!r} does not exist or is not a '
            'directory. Pass the directory that `timetrial run` wrote '
            '(default: results/ or results/<experiment>).'
        )
    trial_dirs = find_trial_dirs(root)
    if not trial_dirs:
        raise UserInputError(
            f'No trials found under {str(root)!r}: expected trial directories laid out as '
            '<experiment>/<submission>/<workload>_<framework>/study_<s>/trial_<t>/. '
            'Point RESULTS_DIR at a results root or one experiment directory.'
        )
    chunks = _read_in_chunks(trial_dirs, workers, while_waiting)
    trials, evals_frame, problems, hardware = _merge(chunks)
    for col in ('study', 'trial', 'n_evals', 'trial_id', 'seed'):
        trials[col] = trials[col].astype(np.int64)
    trials['finished'] = trials['finished'].astype(bool)
    for col in ('time_to_target_s', 'steps_to_target', 'examples_to_target'):
        trials[col] = trials[col].astype(np.float64)
    _from_evals(trials, evals_frame, problems)
    if len(trials):
        _add_labels(trials)
    else:
        for col in ('entrant', 'workload_id', 'base_id'):
            trials[col] = pd.Series(dtype=object)
    trials = trials[list(TRIAL_COLUMNS)]
    return LoadedResults(
        root=root, trials=trials, evals=evals_frame, problems=problems, hardware=hardware
    )
