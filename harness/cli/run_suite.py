"""The suite half of ``timetrial run``: ``timetrial run [SUITE] [--executor ...] [--dry-run]``.

Without a suite, ``timetrial run`` runs the shipped ``demo``. Options given on
the command line override the suite's values: ``--executor``,
``--results-dir``, ``--experiment``, ``--max-steps``, ``--data-dir``,
``--checkpoint-every-s``. A waited run ends by scoring the experiment.
"""

from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path
from typing import Any, Dict, List

from harness import results
from harness.errors import UserInputError
from harness.launch.suite import Suite, expand, find_suite, load_suite, trial_id

#: Command-line options that override the suite's value when given.
_OVERRIDES = ('results_dir', 'experiment', 'max_steps', 'data_dir', 'checkpoint_every_s',
              'threads')


def apply_overrides(suite: Suite, args) -> Suite:
    given = {d: getattr(args, d, None) for d in _OVERRIDES}
    given = {d: v for d, v in given.items() if v is not None}
    changes: Dict[str, Any] = {}
    if 'results_dir' in given:
        changes['results_dir'] = Path(given['results_dir']).expanduser().resolve()
    if 'experiment' in given:
        if not re.match(r'^[A-Za-z0-9][A-Za-z0-9._-]*$', given['experiment']):
            raise UserInputError(f'--experiment {given["experiment"]!r} is not a usable '
                                 'directory name: use letters, digits, ".", "_" and "-".')
        changes['experiment'] = given['experiment']
    if 'max_steps' in given:
        if given['max_steps'] < 1:
            raise UserInputError(f'--max-steps must be at least 1, got {given["max_steps"]}.')
        changes['max_steps'] = given['max_steps']
    if 'checkpoint_every_s' in given:
        if given['checkpoint_every_s'] <= 0:
            raise UserInputError('--checkpoint-every-s must be greater than 0, got '
                                 f'{given["checkpoint_every_s"]}.')
        changes['checkpoint_every_s'] = float(given['checkpoint_every_s'])
    if 'threads' in given:
        if given['threads'] < 1:
            raise UserInputError(f'--threads must be at least 1, got {given["threads"]}.')
        changes['threads'] = given['threads']
    if 'data_dir' in given:
        changes['data_dir'] = str(Path(given['data_dir']).expanduser().resolve())
    return suite.replace(**changes) if changes else suite


def run_suite_command(args) -> int:
    from harness.launch.launcher import preflight, run_suite

    suite = apply_overrides(load_suite(find_suite(getattr(args, 'suite', None) or 'demo')), args)
    executor = getattr(args, 'executor', None) or suite.executor
    parallelism = getattr(args, 'parallelism', None)
    if parallelism is not None and parallelism < 1:
        raise UserInputError(f'--parallelism must be at least 1, got {parallelism}.')
    trials = expand(suite)
    if getattr(args, 'dry_run', False):
        print_plan(suite, trials, executor, parallelism)
        try:
            # A dry run fetches nothing: data still missing is prepared by the real run.
            preflight(suite, trials, executor, check_data=False)
        except UserInputError as e:
            print(f'note: launching now would fail. {e}')
        return 0
    preflight(suite, trials, executor)
    report = run_suite(suite, trials, executor, parallelism=parallelism,
                       wait=not getattr(args, 'no_wait', False))
    if report.waited:
        counts: Dict[str, int] = {}
        for o in report.outcomes.values():
            counts[o['status']] = counts.get(o['status'], 0) + 1
        print(f'summary: experiment:{report.experiment_dir} skipped_finished:{len(report.skipped)} '
              + ' '.join(f'{k}:{v}' for k, v in sorted(counts.items())))
    if report.job_failures:
        print(f'{len(report.job_failures)} trial(s) ended without a result (their job failed); '
              f'see `timetrial status {report.experiment_dir}`, then run the same command again '
              'to resume them.', file=sys.stderr)
        return 1
    if report.waited:
        score_experiment(report.experiment_dir, suite.reference)
    return 0


def score_experiment(experiment_dir, reference=None) -> None:
    """The end of every waited suite run: profiles, scores and report.html.

    A scoring problem (say, no trial reached a target) is printed, never turned
    into a failed run: the trials' results are on disk either way.
    """
    from scoring.api import score

    out_dir = Path(experiment_dir) / 'scoring'
    try:
        rep = score(experiment_dir, out_dir=out_dir, reference=reference)
    except UserInputError as e:
        print(f'scoring: not scored: {e}', file=sys.stderr)
        return
    for _, row in rep.scores.iterrows():
        print(f"score: rank:{row['rank']} entrant:{row['entrant']} benchmark_score:{row['score']:.3f}")
    print(f'report: {out_dir / "report.html"}')


def _varying(trials) -> List[str]:
    """Hyperparameter names whose value differs between trials (the rest is noise here)."""
    values: Dict[str, set] = {}
    for t in trials:
        for k, v in (t.hparams or {}).items():
            values.setdefault(k, set()).add(repr(v))
    return sorted(k for k, v in values.items() if len(v) > 1)


def _short(hparams, keys: List[str]) -> str:
    if hparams is None:
        return '(self-tuning)'
    return ' '.join(f'{k}={hparams[k]:.3g}' if isinstance(hparams[k], float)
                    else f'{k}={hparams[k]}' for k in keys if k in hparams)


def print_plan(suite: Suite, trials, executor: str, parallelism=None, out=print) -> None:
    """What `--dry-run` shows: where, how, and every trial (one greppable line each)."""
    exp_dir = suite.experiment_dir()
    out(f'suite: {suite.path}')
    if suite.description:
        out(f'  {suite.description.strip()}')
    out(f'experiment: {exp_dir}   ruleset: {suite.ruleset}   studies: {suite.studies}   '
        f'trials/study: {suite.trials}   seed: {suite.seed}'
        + (f'   max_steps: {suite.max_steps}' if suite.max_steps else ''))
    held = [w.key for w in suite.workloads if w.held_out]
    if held:
        out(f'held-out variants (sampled with seed {suite.seed}): {", ".join(held)}')
    pending = [t for t in trials if not (t.trial_dir() / results.RESULT_JSON).exists()]
    out(f'executor: {executor}   trials: {len(trials)}   to launch: {len(pending)}   '
        f'finished: {len(trials) - len(pending)}')
    if executor == 'slurm':
        for line in sbatch_preview(suite, len(pending)):
            out(f'  {line}')
    elif executor == 'local':
        out(f'  parallelism: {parallelism or suite.parallelism}')
    keys = _varying(trials)
    for t in trials:
        d = t.trial_dir()
        state = ('finished' if (d / results.RESULT_JSON).exists()
                 else 'resume' if results.has_identity(d) else 'new')
        out(f'trial:{trial_id(t)} size:{t.size} seed:{t.seed} state:{state} '
            f'hparams: {_short(t.hparams, keys) or "(fixed)"}')
    out('dry run: nothing was launched.')


def sbatch_preview(suite: Suite, n_trials: int) -> List[str]:
    """The #SBATCH lines of the job array(s) submitit would write."""
    from submitit.slurm.slurm import _make_sbatch_string

    from harness.launch.launcher import MAX_ARRAY_TASKS, sbatch_parameters
    from harness.launch.records import launch_dir

    if n_trials == 0:
        return ['(nothing to submit)']
    folder = launch_dir(suite.experiment_dir()) / 'logs' / '%j'
    params = sbatch_parameters(suite)
    text = _make_sbatch_string(command=f'{shlex.quote(sys.executable)} -u -m submitit.core._submit '
                                       f'{shlex.quote(str(folder))}',
                               folder=folder, map_count=min(n_trials, MAX_ARRAY_TASKS), **params)
    lines = [ln for ln in text.splitlines() if ln.startswith('#SBATCH')]
    lines += [f'(setup) {ln}' for ln in suite.slurm.setup]
    n_arrays = -(-n_trials // MAX_ARRAY_TASKS)
    lines.append(f'{n_trials} array task(s) in {n_arrays} sbatch call(s), one trial per task')
    return lines
