"""Leaderboards: the baselines' results for a suite, one per hardware class.

Layout (under the results directory)::

    leaderboard/<hardware_class>/<suite>/
        leaderboard.json                    the manifest (below)
        baselines/<submission>/<workload>_<framework>/study_<s>/trial_<t>/
        published/<entry>/<workload>_<framework>/study_<s>/trial_<t>/

``<suite>`` is the suite's experiment name (``demo``, ``full``, or a suite
file's ``experiment:``/stem). ``timetrial leaderboard build SUITE`` runs the
suite's own submissions into ``baselines/`` (it resumes an unfinished build and
skips finished trials); ``timetrial submit ... --publish`` copies a submission's
trials into ``published/<name>-<hash8>/`` — the only way anything is added.
Scoring the directory (``timetrial score results/leaderboard/<class>/<suite>``)
ranks every entry.

``leaderboard.json``: ``suite``, ``suite_path``, ``settings`` (what makes runs
comparable: workloads, sizes, variants, frameworks, ruleset, studies, trials,
seed, max_steps, stop_at_target, budget factor), ``hardware_class``,
``hardware`` (fingerprint of the machine that built it), ``timetrial_version``,
``git_commit``, ``built_at``, ``complete`` (every baseline trial has a result),
``n_trials``, ``n_finished``, ``baselines`` (name, content hash, search space)
and ``published`` (entry, submission, content hash, version, date).

Choices made where the issue was silent:

- The class is this machine's unless ``--hardware-class`` names it; with
  ``--executor slurm`` the trials run on the cluster's nodes, whose class the
  login node cannot know, so it must be named. After a run the trials'
  ``meta.json`` classes are checked against it.
- A build with other settings than the existing leaderboard of that suite and
  class is refused (its trials would not be comparable); so is scoring against
  an incomplete one.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import shutil
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

from harness import __version__, hardware, results
from harness.errors import UserInputError

LEADERBOARD_DIR = 'leaderboard'
MANIFEST = 'leaderboard.json'
BASELINES = 'baselines'
PUBLISHED = 'published'
#: Not copied when publishing: resumable state and launcher bookkeeping.
_NOT_PUBLISHED = ('checkpoint', '.trial.lock', 'job.json')


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec='seconds')


def this_hardware_class() -> str:
    return hardware.hardware_class(hardware.fingerprint())


def leaderboard_dir(results_dir: Path, hardware_class: str, suite_key: str) -> Path:
    return Path(results_dir) / LEADERBOARD_DIR / hardware_class / suite_key


def read_manifest(lb_dir: Path) -> Optional[Dict[str, Any]]:
    path = Path(lb_dir) / MANIFEST
    try:
        return results.read_json(path)
    except json.JSONDecodeError as e:
        raise UserInputError(
            f'{path} is not valid JSON ({e}); rebuild the leaderboard with '
            '`timetrial leaderboard build SUITE`.'
        ) from None


def find_leaderboards(
    results_dir: Path, hardware_class: Optional[str] = None, suite_key: Optional[str] = None
) -> List[Path]:
    """Leaderboard directories (those holding a manifest), sorted by class then suite."""
    root = Path(results_dir) / LEADERBOARD_DIR
    pattern = f'{hardware_class or "*"}/{suite_key or "*"}/{MANIFEST}'
    return sorted(p.parent for p in root.glob(pattern))


# ---- suites ---------------------------------------------------------------------------


def load_suite_with(
    name_or_path: str,
    results_dir: Optional[str] = None,
    data_dir: Optional[str] = None,
    partition: Optional[str] = None,
):
    """A suite with the command line's --results-dir, --data-dir and --partition applied."""
    from harness.launch.suite import find_suite, load_suite

    suite = load_suite(find_suite(name_or_path))
    changes: Dict[str, Any] = {}
    if results_dir:
        changes['results_dir'] = Path(results_dir).expanduser().resolve()
    if data_dir:
        changes['data_dir'] = str(Path(data_dir).expanduser().resolve())
    if partition:
        changes['slurm'] = dataclasses.replace(suite.slurm, partition=partition)
    return suite.replace(**changes) if changes else suite


def suite_settings(suite) -> Dict[str, Any]:
    """What two runs of a suite must share to be compared (JSON-normalised)."""
    settings = {
        'workloads': [
            {
                'name': w.name,
                'size': w.size,
                'variant': w.variant,
                'held_out': w.held_out,
                'frameworks': list(w.frameworks) if w.frameworks else None,
            }
            for w in suite.workloads
        ],
        'frameworks': list(suite.frameworks),
        'ruleset': suite.ruleset,
        'studies': suite.studies,
        'trials': suite.trials,
        'seed': suite.seed,
        'max_steps': suite.max_steps,
        'stop_at_target': suite.stop_at_target,
        'budget_factor': suite.self_tuning_budget_factor if suite.ruleset == 'self' else 1.0,
    }
    return json.loads(json.dumps(settings))


def settings_differences(built: Dict[str, Any], now: Dict[str, Any]) -> List[str]:
    return [
        f'{k}: {built.get(k)!r} on the leaderboard, {now.get(k)!r} now'
        for k in sorted(set(built) | set(now))
        if built.get(k) != now.get(k)
    ]


def resolve_hardware_class(hardware_class: Optional[str], executor: str, action: str) -> str:
    if hardware_class:
        return hardware_class
    if executor == 'slurm':
        raise UserInputError(
            f'{action} with --executor slurm: the trials run on the cluster\'s nodes, whose '
            f'hardware class this machine ({this_hardware_class()}) cannot know. Pass '
            '--hardware-class naming it, e.g. --hardware-class gpu-nvidia-h100-80gb-hbm3-x1 '
            '(on a node, `python -c "from harness import hardware as h; '
            'print(h.hardware_class(h.fingerprint()))"` prints it).'
        )
    return this_hardware_class()


# ---- hardware checks ------------------------------------------------------------------


def trial_hardware_classes(root: Path) -> Dict[str, List[Path]]:
    """hardware class (meta.json) -> trial directories under root; unstarted trials left out."""
    from scoring.load import find_trial_dirs

    classes: Dict[str, List[Path]] = {}
    for trial_dir in find_trial_dirs(Path(root)) if Path(root).is_dir() else []:
        try:
            meta = results.read_json(trial_dir / results.META_JSON)
        except (OSError, json.JSONDecodeError):
            meta = None
        if meta and meta.get('hardware_class'):
            classes.setdefault(meta['hardware_class'], []).append(trial_dir)
    return classes


def check_hardware(
    expected: str, found: Dict[str, List[Path]], what: str, suite_key: str, leaderboard_class: str
) -> None:
    """Refuse trials of another class than the leaderboard's, naming both classes."""
    other = {c: dirs for c, dirs in found.items() if c != expected}
    if not other:
        return
    cls, dirs = sorted(other.items())[0]
    raise UserInputError(
        f'Refusing to compare: {what} ran on hardware class {cls} (e.g. {dirs[0]}), but the '
        f'leaderboard of suite {suite_key} it would be scored against is for hardware class '
        f'{leaderboard_class}. Times from different machines are not comparable. Build a '
        f'leaderboard for {cls} on a machine of that class with '
        f'`timetrial leaderboard build {suite_key}`, or run on a {leaderboard_class} machine.'
    )


def require_leaderboard(results_dir: Path, hardware_class: str, suite) -> Path:
    """The complete, comparable leaderboard of this suite and class, or a clear refusal."""
    suite_key = suite.experiment
    lb_dir = leaderboard_dir(results_dir, hardware_class, suite_key)
    manifest = read_manifest(lb_dir)
    build = f'timetrial leaderboard build {suite_name_for_command(suite)}'
    if manifest is None:
        others = [p.parent.name for p in find_leaderboards(results_dir, suite_key=suite_key)]
        where = (
            f' Leaderboards of suite {suite_key} exist for other hardware: '
            f'{", ".join(others)}; times from different machines are not comparable.'
            if others
            else ''
        )
        raise UserInputError(
            f'No leaderboard of suite {suite_key} for hardware class {hardware_class} under '
            f'{Path(results_dir) / LEADERBOARD_DIR}.{where} Build one on this hardware first '
            f'with `{build}` (same --results-dir), then submit again.'
        )
    lb_class = manifest.get('hardware_class')
    if lb_class != hardware_class:
        raise UserInputError(
            f'Refusing to compare: the leaderboard in {lb_dir} was built on hardware class '
            f'{lb_class}, but this submission runs on {hardware_class}. Times from different '
            f'machines are not comparable. Build a leaderboard for {hardware_class} with '
            f'`{build}` on this hardware.'
        )
    check_hardware(
        hardware_class,
        trial_hardware_classes(lb_dir),
        f'the leaderboard in {lb_dir}',
        suite_key,
        hardware_class,
    )
    diffs = settings_differences(manifest.get('settings', {}), suite_settings(suite))
    if diffs:
        raise UserInputError(
            f'The leaderboard in {lb_dir} was built from other settings of suite {suite_key} '
            f'than {suite.path} has now:\n  ' + '\n  '.join(diffs) + '\nIts times are not '
            f'comparable: delete {lb_dir} and rebuild it with `{build}`, or give the changed '
            'suite another `experiment:` name.'
        )
    if not manifest.get('complete'):
        raise UserInputError(
            f'The leaderboard in {lb_dir} is incomplete ({manifest.get("n_finished", 0)} of '
            f'{manifest.get("n_trials", "?")} baseline trials finished). Finish it with '
            f'`{build}` (it resumes), then submit again.'
        )
    return lb_dir


def suite_name_for_command(suite) -> str:
    from harness.launch.suite import SUITES_DIR

    return suite.path.stem if suite.path.parent == SUITES_DIR else str(suite.path)


# ---- build ----------------------------------------------------------------------------


def _manifest(suite, hardware_class: str, trials, old: Optional[Dict[str, Any]]):
    from harness.leaderboard import provenance

    n_finished = sum((t.trial_dir() / results.RESULT_JSON).exists() for t in trials)
    baselines = []
    for s in suite.submissions:
        ident = provenance.identify(str(s.path))
        baselines.append(
            {
                'name': s.name,
                'path': str(s.path),
                'content_sha256': ident.content_sha256,
                'search_space': str(s.search_space) if s.search_space else None,
            }
        )
    return {
        'suite': suite.experiment,
        'suite_path': str(suite.path),
        'settings': suite_settings(suite),
        'hardware_class': hardware_class,
        'hardware': hardware.fingerprint(),
        'timetrial_version': __version__,
        'git_commit': hardware.git_commit(),
        'built_at': (old or {}).get('built_at') or _now(),
        'updated_at': _now(),
        'n_trials': len(trials),
        'n_finished': n_finished,
        'complete': n_finished == len(trials),
        'baselines': baselines,
        'published': (old or {}).get('published', []),
    }


def build(
    suite,
    executor: str,
    hardware_class: str,
    *,
    parallelism: Optional[int] = None,
    log: Callable[[str], None] = print,
    run_fn=None,
) -> Path:
    """Run the suite's own submissions into the leaderboard of this class; return its dir."""
    from harness.launch.launcher import preflight, run_suite
    from harness.launch.suite import expand
    from harness.leaderboard import provenance
    from harness.rules import check as rules_check

    lb_dir = leaderboard_dir(suite.results_dir, hardware_class, suite.experiment)
    old = read_manifest(lb_dir)
    if old is not None:
        diffs = settings_differences(old.get('settings', {}), suite_settings(suite))
        if diffs:
            raise UserInputError(
                f'A leaderboard of suite {suite.experiment} for {hardware_class} already exists '
                f'in {lb_dir}, built from other settings:\n  '
                + '\n  '.join(diffs)
                + f'\nDelete {lb_dir} to rebuild it, or give the changed suite another '
                '`experiment:` name.'
            )
    problems = []
    for s in suite.submissions:
        findings = rules_check.check_path(s.path)
        problems += [str(f) for f in findings if f.severity == 'error']
        for f in findings:
            if f.severity == 'warning':
                log(f'rules: {f}')
    if problems:
        raise UserInputError(
            f'Baselines of suite {suite.path} break the benchmark rules:\n  '
            + '\n  '.join(problems)
        )
    baseline_suite = suite.replace(results_dir=lb_dir, experiment=BASELINES)
    trials = expand(baseline_suite)
    preflight(baseline_suite, trials, executor)
    records = {
        s.name: provenance.identify(str(s.path)).record(
            suite=suite.experiment, hardware_class=hardware_class, role='baseline'
        )
        for s in suite.submissions
    }
    for t in trials:
        provenance.write_trial_provenance(t.trial_dir(), records[t.display_submission])
    results.atomic_write_json(lb_dir / MANIFEST, _manifest(suite, hardware_class, trials, old))
    report = run_suite(
        baseline_suite, trials, executor, parallelism=parallelism, log=log, run_fn=run_fn
    )
    check_hardware(
        hardware_class,
        trial_hardware_classes(lb_dir / BASELINES),
        'the baselines',
        suite.experiment,
        hardware_class,
    )
    manifest = _manifest(suite, hardware_class, trials, read_manifest(lb_dir))
    results.atomic_write_json(lb_dir / MANIFEST, manifest)
    log(
        f'leaderboard: {lb_dir} suite:{suite.experiment} hardware_class:{hardware_class} '
        f'trials:{manifest["n_trials"]} finished:{manifest["n_finished"]} '
        f'complete:{str(manifest["complete"]).lower()}'
    )
    if report.job_failures:
        log(
            f'{len(report.job_failures)} trial(s) ended without a result; run the same command '
            'again to resume them.'
        )
    return lb_dir


# ---- publish --------------------------------------------------------------------------


def publish(lb_dir: Path, entry: str, entry_trials_dir: Path, record: Dict[str, Any]) -> bool:
    """Copy a submission's trials into the leaderboard; False if that entry is already there."""
    target = Path(lb_dir) / PUBLISHED / entry
    manifest = read_manifest(lb_dir) or {}
    if target.exists() or any(p.get('entry') == entry for p in manifest.get('published', [])):
        return False
    staging = target.with_name(f'.{entry}.tmp')
    if staging.exists():
        shutil.rmtree(staging)
    shutil.copytree(entry_trials_dir, staging, ignore=shutil.ignore_patterns(*_NOT_PUBLISHED))
    staging.rename(target)  # a killed copy never leaves a half entry under its name
    manifest.setdefault('published', []).append(
        {
            'entry': entry,
            'submission': record.get('submission'),
            'content_sha256': record.get('content_sha256'),
            'timetrial_version': record.get('timetrial_version'),
            'published_at': _now(),
        }
    )
    manifest['updated_at'] = _now()
    results.atomic_write_json(Path(lb_dir) / MANIFEST, manifest)
    return True


# ---- show -----------------------------------------------------------------------------


def standings(lb_dir: Path, exclude: Sequence[str] = ()) -> Optional[Any]:
    """The leaderboard scored (scores frame plus a ``kind`` column), or None if nothing finished."""
    from scoring.api import compute
    from scoring.load import load_results

    try:
        report = compute(load_results(lb_dir), bootstrap_samples=0)
    except UserInputError:
        return None
    manifest = read_manifest(lb_dir) or {}
    baselines = {b['name'] for b in manifest.get('baselines', [])}
    kind = {}
    for sub, entrant in zip(report.trials['submission'], report.trials['entrant']):
        kind[entrant] = 'baseline' if sub in baselines else 'published'
    scores = report.scores.copy()
    scores['kind'] = [kind.get(e, '?') for e in scores['entrant']]
    return scores[~scores['entrant'].isin(exclude)]
