"""``timetrial submit PATH``: from a submission folder to a ranked report, in one command.

Steps, each refusing bad input before anything runs (exit status 2):

1. the path is a submission; ``--name``, if given, can name a directory;
2. the frameworks to run: the suite's that the submission implements (none:
   refused) — a folder's files say which, a single ``.py`` file's imports do
   (``harness.submission.framework``; ``--framework`` decides an ambiguous
   file, is checked against the imports, and limits a folder to one framework);
3. the rules check (``harness.rules.check``) finds no error — it reads the
   source only, so it comes before the submission is imported; then ``check``
   finds no problem (every problem at once);
4. the leaderboard of this suite and hardware class exists, is complete and
   was built from the same suite settings (``harness.leaderboard.board``); a
   ``--name`` is none of its baselines' names. ``get_batch_size`` is called
   for the suite's workloads: what would fail a trial is a warning (logged and
   in the report's notes), since it may need the trial's devices;
5. the suite runs for this submission only — its workloads, frameworks,
   studies, trials and ruleset; external tuning draws from the submission's
   search space, self-tuning uses none — into
   ``<results>/submissions/<hardware_class>/<name>-<hash8>/<suite>/``;
6. its trials are scored together with the leaderboard's; the report lands in
   ``<results>/submissions/<hardware_class>/<name>-<hash8>/report-<suite>/``
   (``report.md`` first lines: score, rank, time to target per workload next to
   the best baseline's, ``failed: <error>`` where trials failed; ``report.html``
   with the same summary on top);
7. ``--publish`` copies the trials into the leaderboard (never otherwise).

Identity: the entry is named ``<name>-<first 8 hex digits of the content hash>``
(``harness.leaderboard.provenance``), the name being ``--name`` or else the
folder's name or the file's stem, so a changed folder is a new entry and the
same folder finds its finished trials (skipped) and unfinished ones (resumed).
The hash stays in the name under ``--name`` too: two versions under one name
never share a results directory. Every trial directory gets ``provenance.json``
(content hash, files, search space, TimeTrial version, git commit); the
entry's ``submission.json`` holds the same. A submission implementing only some of the suite's frameworks runs
those (said in the report); scoring names entrants ``<entry>@<framework>``
when the submission ran under two frameworks.
"""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path
from typing import Any, Callable, List, Optional

from harness import registry, results
from harness.errors import UserInputError
from harness.leaderboard import board as leaderboard
from harness.leaderboard import provenance
from harness.rules import check as rules_check

SUBMISSIONS_DIR = 'submissions'
SUBMISSION_JSON = 'submission.json'
INPUTS_DIR = '.inputs'
#: The experiment name scoring sees for the submission's own trials (a link in INPUTS_DIR).
SUBMITTED = 'submitted'
ENTRY_NAME_MAX_CHARS = 64
ENTRY_NAME = re.compile(r'[A-Za-z0-9][A-Za-z0-9._-]{0,%d}' % (ENTRY_NAME_MAX_CHARS - 1))


@dataclasses.dataclass
class SubmitOutcome:
    entry: str
    hardware_class: str
    leaderboard_dir: Path
    entry_dir: Path
    experiment_dir: Path
    report_dir: Path
    summary_path: Path
    html_path: Path
    summary_head: List[str]
    published: Optional[bool]
    job_failures: int
    #: the scoring report (scoring.api.ScoreReport)
    score_report: Any = None
    #: what the user must know beyond the report's head (e.g. why nothing was published)
    notes: List[str] = dataclasses.field(default_factory=list)


def entry_dir(results_dir: Path, hardware_class: str, entry: str) -> Path:
    return Path(results_dir) / SUBMISSIONS_DIR / hardware_class / entry


def runnable_frameworks(path: Path, suite, framework: Optional[str] = None) -> List[str]:
    """The suite's frameworks the submission implements; refuses if there are none.

    A single file implements the one framework its imports say (or ``framework``,
    checked against them); ``framework`` limits a folder to that one of its files.
    """
    from harness.submission.loader import frameworks_of

    has = frameworks_of(path, framework)
    if framework is not None and path.is_dir():
        if framework not in has:
            raise UserInputError(
                f'--framework {framework}: submission {path} has no '
                f'{registry.SUBMISSION_MODULES[framework]} (it implements '
                f'{", ".join(has)}).')
        has = [framework]
    wanted = [fw for fw in suite.frameworks if fw in has]
    if not wanted:
        files = ', '.join(registry.SUBMISSION_MODULES[f] for f in suite.frameworks)
        raise UserInputError(
            f'Suite {suite.path} runs {", ".join(suite.frameworks)}, but submission {path} '
            f'implements {", ".join(has) or "no framework"}: it cannot run this suite. Add '
            f'{files} to the submission, or choose a suite whose `frameworks:` include '
            f'{" or ".join(has) or "its framework"} (--suite FILE).'
        )
    return wanted


def check_entry_name(name: str) -> str:
    """``--name``: it names a directory and an entrant (``<name>-<hash8>``, scoring adds
    ``@<framework>``), so letters, digits, ``.``, ``_`` and ``-`` only."""
    if not ENTRY_NAME.fullmatch(name) or name in ('.', '..'):
        raise UserInputError(
            f'--name {name!r} cannot name a submission: use letters, digits, ".", "_" and "-", '
            f'starting with a letter or digit, at most {ENTRY_NAME_MAX_CHARS} characters '
            '(e.g. --name my_nadamw). It names the results directory <name>-<hash8>.')
    return name


def check_not_a_baseline(name: str, suite, lb_dir: Path) -> None:
    """Refuse a ``--name`` that reads as one of the leaderboard's baselines."""
    manifest = leaderboard.read_manifest(lb_dir) or {}
    baselines = {b['name'] for b in manifest.get('baselines', [])}
    baselines |= {s.name for s in suite.submissions}
    clash = next((b for b in sorted(baselines) if b.lower() == name.lower()), None)
    if clash is not None:
        raise UserInputError(
            f'--name {name!r} is the name of a baseline on the leaderboard {lb_dir} '
            f'({clash}); the report would show two entrants of that name. Choose another '
            f'name (e.g. --name {name}_mine); the baselines are {", ".join(sorted(baselines))}.')


def validate(path: Path, suite, frameworks: List[str], log: Callable[[str], None]) -> list:
    """Rules check, then the contract check; one UserInputError listing every problem."""
    from harness.submission.loader import check_submission

    findings = rules_check.check_path(path)
    rules_check.raise_on_errors(findings, path)
    for f in findings:
        log(f'rules: {f}')
    problems = check_submission(
        str(path), frameworks, require_search_space=suite.ruleset == 'external'
    )
    if problems:
        raise UserInputError(
            f'Submission {path} has {len(problems)} problem(s); nothing was '
            'run:\n  - ' + '\n  - '.join(problems)
        )
    return findings


def submission_suite(
    suite, identity: provenance.SubmissionIdentity, frameworks: List[str], root: Path
):
    """The suite with this submission as its only submission, its results under ``root``."""
    from harness.launch.suite import SubmissionEntry

    space = identity.search_space_path if suite.ruleset == 'external' else None
    entry = SubmissionEntry(
        ref=str(identity.path),
        name=identity.entry_name,
        path=identity.path,
        search_space=space,
        frameworks=tuple(frameworks),
    )
    # A workload entry's `submissions:` names which baselines run on it (the demo runs SALT
    # on lm_slm only); the entrant runs every workload of its own contract.
    workloads = tuple(dataclasses.replace(w, submissions=None) for w in suite.workloads)
    return suite.replace(submissions=(entry,), workloads=workloads, results_dir=root,
                         experiment=suite.experiment)


def _link_inputs(inputs: Path, lb_dir: Path, experiment_dir: Path, entry: str) -> Path:
    """A directory of symlinks that scoring reads as one results root: the leaderboard's
    baselines and published entries (this entry's published copy left out, so it is not
    counted twice) and this submission's experiment. Hidden, so scoring a results root
    never walks into it and counts trials twice."""
    if inputs.exists():
        # Only our links and folders are removed; the links are never followed.
        for dirpath, dirnames, filenames in os.walk(inputs, topdown=False):
            for name in filenames + dirnames:
                item = Path(dirpath) / name
                item.unlink() if item.is_symlink() else item.rmdir()
        inputs.rmdir()
    inputs.mkdir(parents=True)
    if (lb_dir / leaderboard.BASELINES).is_dir():
        (inputs / leaderboard.BASELINES).symlink_to((lb_dir / leaderboard.BASELINES).resolve())
    published = lb_dir / leaderboard.PUBLISHED
    for other in sorted(published.iterdir()) if published.is_dir() else []:
        if other.is_dir() and other.name != entry and not other.name.startswith('.'):
            (inputs / leaderboard.PUBLISHED).mkdir(exist_ok=True)
            (inputs / leaderboard.PUBLISHED / other.name).symlink_to(other.resolve())
    (inputs / SUBMITTED).symlink_to(experiment_dir.resolve())
    return inputs


def score_against(lb_dir: Path, experiment_dir: Path, entry: str, report_dir: Path):
    """Score the submission with the leaderboard; speed-ups against the best baseline."""
    from scoring.api import compute
    from scoring.load import load_results
    from scoring.outputs import write_outputs

    inputs = _link_inputs(report_dir / INPUTS_DIR, lb_dir, experiment_dir, entry)
    loaded = load_results(inputs)
    try:
        quick = compute(loaded, bootstrap_samples=0)
        baselines = set(
            loaded.trials.loc[loaded.trials['experiment'] == leaderboard.BASELINES, 'entrant']
        )
        ranked = [e for e in quick.scores['entrant'] if e in baselines]
        report = compute(loaded, reference=ranked[0] if ranked else None)
    except UserInputError as e:
        raise UserInputError(
            f'Scoring the submission against the leaderboard in {lb_dir} failed: {e}\nIf the '
            'workload targets changed since the leaderboard was built (`timetrial calibrate`), '
            'rebuild it with `timetrial leaderboard build SUITE`.'
        ) from None
    write_outputs(report, report_dir)
    return report, baselines


def submit(
    path: str,
    suite_name: str = 'demo',
    *,
    executor: Optional[str] = None,
    partition: Optional[str] = None,
    results_dir: Optional[str] = None,
    data_dir: Optional[str] = None,
    hardware_class: Optional[str] = None,
    publish: bool = False,
    parallelism: Optional[int] = None,
    framework: Optional[str] = None,
    name: Optional[str] = None,
    log: Callable[[str], None] = print,
    run_fn=None,
) -> SubmitOutcome:
    """Validate, run, score and report one submission (see the module doc).

    ``framework``: the one framework to run (a single file's is otherwise read from
    its imports). ``name``: the entry's name instead of the folder's or file's.
    ``run_fn`` replaces the trial runner (tests only; see ``harness.launch.launcher.TrialTask``).
    """
    from harness.launch.launcher import preflight, run_suite
    from harness.launch.suite import expand
    from harness.leaderboard.report import write_report
    from harness.submission.framework import file_framework
    from harness.submission.loader import batch_size_warnings

    if name is not None:
        check_entry_name(name)
    sub_path = registry.resolve_submission(path)
    suite = leaderboard.load_suite_with(suite_name, results_dir, data_dir, partition)
    executor = executor or suite.executor
    frameworks = runnable_frameworks(sub_path, suite, framework)
    if sub_path.is_file():
        frameworks_from = file_framework(sub_path, framework)[1]
        log(f'submit: {sub_path} is a {frameworks[0]} submission ({frameworks_from})')
    else:
        frameworks_from = '--framework' if framework else None
    findings = validate(sub_path, suite, frameworks, log)
    hw = leaderboard.resolve_hardware_class(hardware_class, executor, 'Submitting')
    lb_dir = leaderboard.require_leaderboard(suite.results_dir, hw, suite)
    if name is not None:
        check_not_a_baseline(name, suite, lb_dir)
    batch_notes = batch_size_warnings(
        str(sub_path), frameworks, sorted({w.name for w in suite.workloads}))
    for note in batch_notes:
        log(f'warning: {note}')

    identity = provenance.identify(str(sub_path))
    if name is not None:
        identity = dataclasses.replace(identity, name=name)
    root = entry_dir(suite.results_dir, hw, identity.entry_name)
    own_suite = submission_suite(suite, identity, frameworks, root)
    trials = expand(own_suite)
    preflight(own_suite, trials, executor)
    record = identity.record(
        suite=suite.experiment,
        suite_path=str(suite.path),
        hardware_class=hw,
        frameworks=frameworks,
        frameworks_from=frameworks_from,
        ruleset=suite.ruleset,
        settings=leaderboard.suite_settings(suite),
        rules_warnings=[str(f) for f in findings],
    )
    results.atomic_write_json(root / SUBMISSION_JSON, record)
    for t in trials:
        provenance.write_trial_provenance(t.trial_dir(), record)
    log(
        f'submit: entry:{identity.entry_name} sha256:{identity.content_sha256} suite:'
        f'{suite.experiment} hardware_class:{hw} frameworks:{",".join(frameworks)} '
        f'trials:{len(trials)} results:{own_suite.experiment_dir()}'
    )
    launch = run_suite(own_suite, trials, executor, parallelism=parallelism, log=log, run_fn=run_fn)

    experiment_dir = own_suite.experiment_dir()
    leaderboard.check_hardware(
        hw,
        leaderboard.trial_hardware_classes(experiment_dir),
        f'submission {identity.entry_name}',
        suite.experiment,
        hw,
    )
    report_dir = root / f'report-{suite.experiment}'
    score_report, baselines = score_against(lb_dir, experiment_dir, identity.entry_name, report_dir)
    published, notes = None, []
    unfinished = [t for t in trials if not (t.trial_dir() / results.RESULT_JSON).exists()]
    if publish and unfinished:
        notes.append(
            f'Not published: {len(unfinished)} of {len(trials)} trials have no result '
            'yet. Submit again with --publish (it resumes them) to publish.'
        )
    elif publish:
        published = leaderboard.publish(
            lb_dir, identity.entry_name, experiment_dir / identity.entry_name, record
        )
    summary_path, head = write_report(
        score_report,
        report_dir,
        identity=identity,
        record=record,
        suite=suite,
        leaderboard_dir=lb_dir,
        baselines=baselines,
        missing_frameworks=[f for f in suite.frameworks if f not in frameworks],
        executor=executor,
        published=published,
        job_failures=len(launch.job_failures),
        experiment=SUBMITTED,
        experiment_dir=experiment_dir,
        extra_notes=batch_notes + notes,
    )
    return SubmitOutcome(
        entry=identity.entry_name,
        hardware_class=hw,
        leaderboard_dir=lb_dir,
        entry_dir=root,
        experiment_dir=experiment_dir,
        report_dir=report_dir,
        summary_path=summary_path,
        html_path=report_dir / 'report.html',
        summary_head=head,
        published=published,
        job_failures=len(launch.job_failures),
        score_report=score_report,
        notes=notes,
    )
