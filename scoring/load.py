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
error                       result.json error (str or None)
n_evals                     evaluations read
best_metric, final_metric   best and last value of the target metric in evals.jsonl
teacher_time_s              result.json ``teacher_time_s`` (optional)
teacher_training_time_s     meta.json ``teacher_training_cost.time_s`` (optional)
teacher_training_flops      meta.json ``teacher_training_cost.flops`` (optional)
trial_dir                   str path of the trial directory
==========================  =====================================================

``evals`` frame, one row per evaluation: ``trial_id``, ``eval_index`` (0-based order
in the file), ``step``, ``submission_time_s``, ``wall_time_s``, ``eval_time_s``,
``examples_seen``, then one float column per metric key found in any file
(``validation/loss``, ...; NaN where a trial lacks it). A nested ``metrics`` mapping
in a line is flattened into the same columns.

Problems: a file that cannot be read is reported (``Problem``: path, reason) and
skipped; one bad file never stops the rest. A trial without a readable trial.json is
skipped (its target is unknown); a bad result.json makes the trial count as
unfinished; a bad line of evals.jsonl is skipped on its own. A last line without a
newline is a write in progress and ignored silently.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np
import pandas as pd

from harness import results
from harness.errors import UserInputError
from scoring.evals_file import EvalColumns, number, parse_evals
from scoring.problems import Problem

STATUSES = results.STATUSES
UNFINISHED = 'unfinished'
RULESETS = results.RULESETS
TARGET_MODES = results.TARGET_MODES
REQUIRED_TRIAL_KEYS = (
    'workload',
    'variant',
    'size',
    'framework',
    'submission',
    'ruleset',
    'study',
    'trial',
    'target',
)
# A trial dir is found this deep at most below RESULTS_DIR (a results root holding
# experiments is 5 levels above its trial dirs); bounds the walk on odd trees.
_MAX_DEPTH = 6
_TRIAL_RE = re.compile(r'trial_\d+\Z')
_STUDY_RE = re.compile(r'study_\d+\Z')

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
            elif depth < _MAX_DEPTH and entry.name != 'checkpoint':
                visit(entry.path, depth + 1, bool(_STUDY_RE.match(entry.name)))

    visit(str(root), 1, bool(_STUDY_RE.match(root.name)))
    return found


def _read_text(path: str) -> Optional[str]:
    try:
        with open(path, encoding='utf-8') as f:
            return f.read()
    except FileNotFoundError:
        return None


def _validate_identity(cfg: Any) -> List[str]:
    if not isinstance(cfg, dict):
        return [f'expected a mapping, found {type(cfg).__name__}']
    errors = []
    missing = [k for k in REQUIRED_TRIAL_KEYS if k not in cfg]
    if missing:
        errors.append(f'missing keys: {", ".join(missing)}')
    for key in ('workload', 'size', 'framework', 'submission'):
        if key in cfg and not isinstance(cfg[key], str):
            errors.append(f'{key!r} must be a string, found {cfg[key]!r}')
    if cfg.get('variant') is not None and not isinstance(cfg['variant'], str):
        errors.append(f"'variant' must be a string or null, found {cfg['variant']!r}")
    if 'ruleset' in cfg and cfg['ruleset'] not in RULESETS:
        errors.append(f"'ruleset' must be one of {', '.join(RULESETS)}, found {cfg['ruleset']!r}")
    for key in ('study', 'trial'):
        if key in cfg and (not isinstance(cfg[key], int) or isinstance(cfg[key], bool)):
            errors.append(f'{key!r} must be an integer, found {cfg[key]!r}')
    target = cfg.get('target')
    if 'target' in cfg:
        if not isinstance(target, dict):
            errors.append(f"'target' must be a mapping {{metric, value, mode}}, found {target!r}")
        else:
            if not isinstance(target.get('metric'), str):
                errors.append(f"'target.metric' must be a string, found {target.get('metric')!r}")
            if math.isnan(number(target.get('value'))):
                errors.append(f"'target.value' must be a number, found {target.get('value')!r}")
            if target.get('mode') not in TARGET_MODES:
                errors.append(f"'target.mode' must be min or max, found {target.get('mode')!r}")
    return errors


def _read_trial(
    trial_dir: Path,
    trial_id: int,
    problems: List[Problem],
    evals: EvalColumns,
    hardware: Dict[str, Dict[str, Any]],
) -> Optional[dict]:
    d = str(trial_dir)
    cfg_path = os.path.join(d, results.TRIAL_JSON)
    text = _read_text(cfg_path)
    try:
        if text is not None:
            cfg = json.loads(text)
        elif os.path.exists(os.path.join(d, results.LEGACY_TRIAL_YAML)):
            # results written before trial.json
            cfg_path = os.path.join(d, results.LEGACY_TRIAL_YAML)
            cfg = results.read_identity_mapping(trial_dir)
        else:
            cfg = None
    except ValueError as e:
        problems.append(Problem(cfg_path, f'unreadable ({str(e).splitlines()[0]}); trial skipped'))
        return None
    if cfg is None:
        problems.append(
            Problem(
                cfg_path, 'missing: without it the workload and target are unknown; trial skipped'
            )
        )
        return None
    errors = _validate_identity(cfg)
    if errors:
        problems.append(Problem(cfg_path, '; '.join(errors) + '; trial skipped'))
        return None
    target = cfg['target']
    metric, value, mode = target['metric'], float(target['value']), target['mode']

    hardware_class = None
    meta: Dict[str, Any] = {}
    meta_path = os.path.join(d, results.META_JSON)
    text = _read_text(meta_path)
    if text is None:
        problems.append(Problem(meta_path, 'missing: hardware class unknown'))
    else:
        try:
            meta = json.loads(text)
            if not isinstance(meta, dict):
                raise ValueError(f'expected a JSON object, found {type(meta).__name__}')
        except ValueError as e:
            problems.append(Problem(meta_path, f'unreadable ({e}); hardware class unknown'))
            meta = {}
        else:
            hardware_class = meta.get('hardware_class')
            if not isinstance(hardware_class, str) or not hardware_class:
                problems.append(
                    Problem(meta_path, "no 'hardware_class' string; hardware class unknown")
                )
                hardware_class = None
            elif hardware_class not in hardware:
                hw = meta.get('hardware')
                hardware[hardware_class] = hw if isinstance(hw, dict) else {}

    evals_path = os.path.join(d, results.EVALS_JSONL)
    text = _read_text(evals_path)
    rows = parse_evals(text, evals_path, problems) if text else []
    evals.add(trial_id, rows)

    result: Optional[Dict[str, Any]] = None
    result_path = os.path.join(d, results.RESULT_JSON)
    text = _read_text(result_path)
    if text is not None:
        try:
            result = json.loads(text)
            if not isinstance(result, dict):
                raise ValueError(f'expected a JSON object, found {type(result).__name__}')
            if result.get('status') not in STATUSES:
                raise ValueError(
                    f"'status' must be one of {', '.join(STATUSES)}, found {result.get('status')!r}"
                )
        except ValueError as e:
            problems.append(Problem(result_path, f'unreadable ({e}); trial counted as unfinished'))
            result = None
    res = result or {}
    teacher_cost = meta.get('teacher_training_cost')
    teacher_cost = teacher_cost if isinstance(teacher_cost, dict) else {}
    error = res.get('error')
    parts = trial_dir.parts
    # reached, the *_to_target fill-in and the evals_* columns are set for all trials at
    # once in _from_evals (vectorized: a per-row Python loop was a third of load time).
    return {
        'trial_id': trial_id,
        'experiment': parts[-5] if len(parts) >= 5 else '',
        'submission': cfg['submission'],
        'framework': cfg['framework'],
        'workload': cfg['workload'],
        'variant': cfg['variant'] or None,
        'size': cfg['size'],
        'ruleset': cfg['ruleset'],
        'study': cfg['study'],
        'trial': cfg['trial'],
        'seed': cfg.get('seed'),
        'hparams': cfg.get('hparams'),
        'target_metric': metric,
        'target_value': value,
        'target_mode': mode,
        'hardware_class': hardware_class,
        'status': res.get('status', UNFINISHED),
        'finished': result is not None,
        'time_to_target_s': number(res.get('time_to_target_s')),
        'steps_to_target': number(res.get('steps_to_target')),
        'examples_to_target': number(res.get('examples_to_target')),
        'final_step': number(res.get('final_step')),
        'submission_time_s': number(res.get('submission_time_s')),
        'error': None if error is None else str(error),
        'n_evals': len(rows),
        'teacher_time_s': number(res.get('teacher_time_s')),
        'teacher_training_time_s': number(teacher_cost.get('time_s')),
        'teacher_training_flops': number(teacher_cost.get('flops')),
        'trial_dir': d,
    }


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
    reached = (status == 'reached') | (
        np.isin(status, ('budget_exhausted', 'training_complete'))
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


def load_results(results_dir: Path) -> LoadedResults:
    """Read every trial under ``results_dir``; see the module docstring for the schema.

    Raises UserInputError when the directory does not exist or holds no trials.
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
    problems: List[Problem] = []
    evals = EvalColumns()
    hardware: Dict[str, Dict[str, Any]] = {}
    records = []
    for trial_dir in trial_dirs:
        record = _read_trial(trial_dir, len(records), problems, evals, hardware)
        if record is not None:
            records.append(record)
    derived = (
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
    trials = pd.DataFrame.from_records(
        records, columns=[c for c in TRIAL_COLUMNS if c not in derived]
    )
    for col in ('study', 'trial', 'n_evals', 'trial_id'):
        trials[col] = trials[col].astype(np.int64)
    trials['finished'] = trials['finished'].astype(bool)
    for col in ('time_to_target_s', 'steps_to_target', 'examples_to_target'):
        trials[col] = trials[col].astype(np.float64)
    evals_frame = evals.frame()
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
