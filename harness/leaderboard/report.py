"""The report ``timetrial submit`` writes: ``report.md`` and a section on top of ``report.html``.

Its first lines answer what the submitter came for: the benchmark score, the
rank on the leaderboard of this suite and hardware class, and the time to
target per workload next to the best baseline's. Then the whole leaderboard
with the submission in it, the provenance (content hash, files, search space,
TimeTrial version), the rules check's warnings and the scoring notes.

"Best baseline" on a workload is the suite's own submission (any framework)
with the shortest time to target there (median over studies, AlgoPerf's
rule); published entries of the leaderboard are ranked in the table but are
not baselines.

A trial that failed (an exception from submission code) is not a trial that
ran out of time: where the submission's trials failed, its time column says
``failed: <the error's first line>`` (``phase: Type: message``, as result.json
holds it), and a "Failed trials" section under the head lists each distinct
error with where its traceback is (``error.txt``).
"""

from __future__ import annotations

import html
import math
import re
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Set, Tuple

from harness import results

SUMMARY_MD = 'report.md'
#: An error longer than this is cut in the table (the whole first line is in Failed trials).
ERROR_CELL_CHARS = 120


def _time(value: float, note: str) -> str:
    if note == 'not run':
        return 'not run'
    if value is None or not math.isfinite(value):
        return 'not reached'
    return f'{value:.1f} s' + (f' ({note})' if note not in ('reached', '') else '')


def _first_line(error: Any) -> str:
    return (str(error or '').strip().splitlines() or ['(no error recorded)'])[0]


def _cell_text(text: str) -> str:
    """Text safe in a Markdown table cell: one line, pipes escaped."""
    return text.replace('|', '\\|')


def _own_trials(rep, experiment: str, entrant: str, workload: str):
    t = rep.trials
    return t[(t['experiment'] == experiment) & (t['entrant'] == entrant)
             & (t['workload_id'] == workload)].sort_values(['study', 'trial'])


def _time_cell(mine, trials) -> str:
    """The submission's time on one workload; where trials failed, ``failed: <error>``."""
    failed = trials[trials['status'] == 'failed']
    unfinished = trials[~trials['finished'].astype(bool)]
    n, k = len(trials), len(failed)
    if math.isfinite(mine['time']):
        return _time(mine['time'], mine['note']) + (f' ({k} of {n} trials failed)' if k else '')
    if k:
        error = _first_line(failed['error'].iloc[0])
        if len(error) > ERROR_CELL_CHARS:
            error = error[:ERROR_CELL_CHARS - 1] + '…'
        return _cell_text((f'failed: {error}' if k == n else
                           f'failed in {k} of {n} trials: {error}'))
    if len(unfinished):
        return f'unfinished: {len(unfinished)} of {n} trials have no result'
    return _time(mine['time'], mine['note'])


def failure_lines(rep, own: Sequence[str], experiment: str) -> List[str]:
    """'Failed trials': each distinct error of the submission's failed trials, once, with
    the trials it ended and where the first one's traceback is."""
    t = rep.trials
    failed = t[(t['experiment'] == experiment) & t['entrant'].isin(own)
               & (t['status'] == 'failed')].sort_values(['entrant', 'workload_id', 'study', 'trial'])
    if not len(failed):
        return []
    lines = ['## Failed trials', '']
    firsts = failed['error'].map(_first_line)
    for (entrant, workload, error), rows in failed.groupby(
            [failed['entrant'], failed['workload_id'], firsts], sort=False):
        where = f'{workload}, {entrant}' if len(own) > 1 else workload
        lines.append(f'- {where}: {len(rows)} trial(s) failed: {error} — traceback in '
                     # Resolved: scoring read the trials through the report's links.
                     f'{Path(rows["trial_dir"].iloc[0]).resolve() / results.ERROR_FILE}')
    return lines


def _ci(low: float, high: float) -> str:
    if low is None or high is None or not (math.isfinite(low) and math.isfinite(high)):
        return ''
    return f' (95% CI {low:.3f}–{high:.3f})'


def _own_entrants(rep, experiment: str) -> List[str]:
    own = set(rep.trials.loc[rep.trials['experiment'] == experiment, 'entrant'])
    return [e for e in rep.scores['entrant'] if e in own]


def head_lines(
    rep,
    own: Sequence[str],
    baselines: Set[str],
    suite_key: str,
    hardware_class: str,
    experiment: str = 'submitted',
) -> List[str]:
    """The first lines: score and rank, then time to target per workload vs the best
    baseline (``failed: <error>`` where the submission's trials failed)."""
    n = len(rep.scores)
    where = f'the leaderboard of suite {suite_key} for {hardware_class}'
    lines = [f'# TimeTrial submission report: {own[0].split("@")[0] if own else "?"}', '']
    scores = rep.scores.set_index('entrant')
    for entrant in own:
        row = scores.loc[entrant]
        lines.append(
            f'{"- " if len(own) > 1 else ""}{entrant}: benchmark score '
            f'{row["score"]:.3f}{_ci(row["score_ci_low"], row["score_ci_high"])}, '
            f'rank {int(row["rank"])} of {n} on {where}.'
        )
    t = rep.trials
    own_trials = t[(t['experiment'] == experiment) & t['entrant'].isin(own)]
    n_failed = int((own_trials['status'] == 'failed').sum())
    if n_failed:
        lines.append(f'{n_failed} of {len(own_trials)} trials failed; see Failed trials below.')
    lines.append('')
    times = rep.times
    multi = len(own) > 1
    lines.append(
        '| workload |'
        + (' entrant |' if multi else '')
        + ' time to target | best baseline | its time | ratio |'
    )
    lines.append('|---|' + ('---|' if multi else '') + '---|---|---|---|')
    order = list(rep.scored_workloads) + sorted(
        set(times['workload_id']) - set(rep.scored_workloads)
    )
    for workload in order:
        rows = times[times['workload_id'] == workload]
        base = rows[rows['entrant'].isin(baselines)]
        best = base.loc[base['time'].idxmin()] if len(base) else None
        best_ok = best is not None and math.isfinite(best['time'])
        label = workload + ('' if workload in rep.scored_workloads else ' (variant)')
        for entrant in own:
            mine = rows[rows['entrant'] == entrant].iloc[0]
            ratio = (
                f'{mine["time"] / best["time"]:.2f}'
                if best_ok and math.isfinite(mine['time'])
                else '–'
            )
            cell = _time_cell(mine, _own_trials(rep, experiment, entrant, workload))
            lines.append(
                f'| {label} |'
                + (f' {entrant} |' if multi else '')
                + f' {cell} |'
                + f' {best["entrant"] if best_ok else "none reached"} |'
                + f' {_time(best["time"], best["note"]) if best_ok else "–"} | {ratio} |'
            )
    return lines


def _leaderboard_lines(rep, own: Sequence[str], baselines: Set[str]) -> List[str]:
    lines = [
        '## Leaderboard with this submission',
        '',
        '| rank | entrant | score | 95% CI | workloads reached | kind |',
        '|---|---|---|---|---|---|',
    ]
    for row in rep.scores.itertuples():
        kind = (
            '**this submission**'
            if row.entrant in own
            else 'baseline'
            if row.entrant in baselines
            else 'published'
        )
        ci = _ci(row.score_ci_low, row.score_ci_high).strip(' ()').replace('95% CI ', '')
        lines.append(
            f'| {row.rank} | {row.entrant} | {row.score:.3f} | {ci or "–"} | '
            f'{row.n_workloads_reached}/{row.n_workloads_scored} | {kind} |'
        )
    return lines


def _provenance_lines(
    identity,
    record: Dict[str, Any],
    suite,
    leaderboard_dir: Path,
    executor: str,
    published: Optional[bool],
    experiment_dir: Path,
) -> List[str]:
    settings = record.get('settings') or {}
    lines = [
        '## Provenance',
        '',
        f'- entry: {identity.entry_name}',
        f'- submission: {identity.path}',
        f'- content sha256: {identity.content_sha256} ({len(identity.files)} files)',
        f'- search space: {identity.search_space_path or "none"}'
        + (' (not used: self-tuning)' if suite.ruleset == 'self' else ''),
        f'- TimeTrial version: {record.get("timetrial_version")}, git commit: '
        f'{record.get("git_commit") or "unknown"}',
        f'- hardware class: {record.get("hardware_class")}',
        f'- suite: {suite.experiment} ({suite.path}); ruleset {suite.ruleset}, '
        f'{suite.studies} studies × {suite.trials} trials, seed {suite.seed}'
        + (f', max_steps {suite.max_steps}' if suite.max_steps else ''),
        f'- frameworks run: {", ".join(record.get("frameworks", []))}'
        + (f' ({record["frameworks_from"]})' if record.get('frameworks_from') else '')
        + f'; executor: {executor}',
        f'- trials: {experiment_dir}',
        f'- leaderboard: {leaderboard_dir}'
        + (
            '' if published is None else ' (published now)' if published else ' (already published)'
        ),
    ]
    if settings:
        workloads = ', '.join(
            f'{w["name"]}{"-" + w["variant"] if w["variant"] else ""}@{w["size"]}'
            + (' (held out)' if w['held_out'] else '')
            for w in settings['workloads']
        )
        lines.append(
            f'- compared on: {workloads}; frameworks {", ".join(settings["frameworks"])}'
            f'; stop at target {str(settings["stop_at_target"]).lower()}; budget factor '
            f'{settings["budget_factor"]:g}'
        )
    lines += ['', '| file | sha256 |', '|---|---|']
    lines += [f'| {name} | {digest[:16]} |' for name, digest in identity.files.items()]
    if identity.search_space_text is not None:
        lines += [
            '',
            f'Search space ({identity.search_space_path.name}):',
            '',
            '```yaml',
            identity.search_space_text.strip('\n'),
            '```',
        ]
    return lines


def _split_row(row: str) -> List[str]:
    """A Markdown table row's cells (a ``\\|`` inside a cell is not a border)."""
    return re.split(r'(?<!\\)\|', row.strip()[1:-1])


def _html_section(head: Sequence[str], provenance: Sequence[str]) -> str:
    """The summary as HTML (the Markdown lines, tables turned into <table>)."""
    out = [
        '<section id="submission" style="border:2px solid #444;padding:0 1em;margin-bottom:1.5em">'
    ]
    table: List[List[str]] = []

    def flush():
        if table:
            cells = [[html.escape(c.strip().replace('\\|', '|')) for c in _split_row(r)]
                     for r in table]
            out.append(
                '<table><tr>'
                + ''.join(f'<th>{c}</th>' for c in cells[0])
                + '</tr>'
                + ''.join('<tr>' + ''.join(f'<td>{c}</td>' for c in r) + '</tr>' for r in cells[2:])
                + '</table>'
            )
            table.clear()

    in_code = in_list = False
    for line in list(head) + [''] + list(provenance):
        if in_list and not line.startswith('- '):
            out.append('</ul>')
            in_list = False
        if line.startswith('```'):
            flush()
            out.append('<pre>' if not in_code else '</pre>')
            in_code = not in_code
        elif in_code:
            out.append(html.escape(line))
        elif line.startswith('|'):
            table.append(line)
        else:
            flush()
            text = html.escape(line.lstrip('#- ').replace('**', ''))
            if line.startswith('# '):
                out.append(f'<h2>{text}</h2>')
            elif line.startswith('## '):
                out.append(f'<h3>{text}</h3>')
            elif line.startswith('- '):
                out.append(('' if in_list else '<ul>') + f'<li>{text}</li>')
                in_list = True
            elif text:
                out.append(f'<p>{text}</p>')
    flush()
    out.append('</ul></section>' if in_list else '</section>')
    return '\n'.join(out)


def write_report(
    rep,
    report_dir: Path,
    *,
    identity,
    record: Dict[str, Any],
    suite,
    leaderboard_dir: Path,
    baselines: Set[str],
    missing_frameworks: Sequence[str],
    executor: str,
    published: Optional[bool],
    job_failures: int,
    experiment: str = 'submitted',
    experiment_dir: Optional[Path] = None,
    extra_notes: Sequence[str] = (),
) -> Tuple[Path, List[str]]:
    """Write report.md and prepend the summary to report.html; return (path, first lines)."""
    own = _own_entrants(rep, experiment)
    hw = record.get('hardware_class')
    head = head_lines(rep, own, baselines, suite.experiment, hw, experiment)
    failures = failure_lines(rep, own, experiment)
    provenance = _provenance_lines(
        identity,
        record,
        suite,
        leaderboard_dir,
        executor,
        published,
        experiment_dir or Path(record.get('path', '')),
    )
    notes = list(rep.notes) + list(extra_notes)
    if missing_frameworks:
        notes.append(
            f'The suite also runs {", ".join(missing_frameworks)}, which this '
            'submission does not implement; it ran only '
            f'{", ".join(record.get("frameworks", []))}.'
        )
    if job_failures:
        notes.append(
            f'{job_failures} trial(s) ended without a result (their job failed) and '
            'count as not reached; submit again to resume them.'
        )
    warnings = record.get('rules_warnings') or []
    lines = head + [''] + (failures + [''] if failures else [])
    lines += _leaderboard_lines(rep, own, baselines) + [''] + provenance
    lines += ['', '## Rules check', '']
    lines += [f'- warning: {w}' for w in warnings] or ['No findings.']
    if notes:
        lines += ['', '## Notes', ''] + [f'- {n}' for n in notes]
    lines += [
        '',
        '## Files',
        '',
        f'In {report_dir}: report.html (the full scoring report), '
        + ', '.join(sorted(n for n in rep.paths if n != 'report.html'))
        + '.',
    ]
    path = Path(report_dir) / SUMMARY_MD
    results.atomic_write_text(path, '\n'.join(lines) + '\n')
    html_path = Path(report_dir) / 'report.html'
    if html_path.exists():
        page = html_path.read_text(encoding='utf-8')
        cut = page.find('</h1>')
        cut = cut + len('</h1>') if cut >= 0 else page.find('<body>') + len('<body>')
        section = _html_section(
            head + ([''] + failures if failures else []),
            provenance
            + ['', '## Rules check', '']
            + ([f'- warning: {w}' for w in warnings] or ['No findings.']),
        )
        results.atomic_write_text(html_path, page[:cut] + '\n' + section + page[cut:])
    return path, head


def score_of(rep, entrant: str) -> Dict[str, Any]:
    """One entrant's row of the scores frame as a dict (for callers and tests)."""
    row = rep.scores[rep.scores['entrant'] == entrant]
    return row.iloc[0].to_dict() if len(row) else {}
