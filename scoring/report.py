"""report.html: one self-contained page (images as base64 data URLs, inline CSS, no
script, no external resource) that opens offline and can be mailed as one file.

Every table has an id (``table-scores``, ``table-time-to-target``, ...) and every
figure an ``img`` with alt text; ``report_contents`` lists them so tests can check
that a browser shows them all.
"""

from __future__ import annotations

import base64
import datetime
import html
from pathlib import Path
from typing import Dict, List

import pandas as pd

from scoring.federated import federated_section
from scoring import tables
from scoring import views
from scoring.salt import salt_section
from scoring.score_report import ScoreReport

_CSS = """
body { font-family: system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif; margin: 0 auto;
       max-width: 1200px; padding: 1.5em 2em 4em; color: #1d1d1f; line-height: 1.45; }
h1 { font-size: 1.7em; margin-bottom: 0.2em; }
h2 { border-bottom: 1px solid #ccc; padding-bottom: 0.2em; margin-top: 2em; }
.meta { color: #555; margin-top: 0; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.9em; }
th, td { border: 1px solid #d0d0d0; padding: 0.3em 0.6em; text-align: right; }
th { background: #f2f2f2; }
td:first-child, th:first-child { text-align: left; }
tr:nth-child(even) td { background: #fafafa; }
.scroll { overflow-x: auto; }
img { max-width: 100%; height: auto; border: 1px solid #eee; }
figure { margin: 1em 0 2em; }
figcaption { color: #555; font-size: 0.9em; }
.note { color: #555; font-size: 0.92em; }
.verdict { font-size: 1.08em; background: #f4f8ff; border-left: 4px solid #4a7bd0;
           padding: 0.5em 0.8em; }
code { background: #f4f4f4; padding: 0 0.25em; }
"""


_MIME = {'.png': 'image/png', '.svg': 'image/svg+xml'}


def _img(path: Path, alt: str) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode('ascii')
    mime = _MIME[Path(path).suffix]
    return f'<img src="data:{mime};base64,{data}" alt="{html.escape(alt)}">'


def _table(df: pd.DataFrame, table_id: str, index: bool = False) -> str:
    frame = df.reset_index() if index else df
    head = ''.join(f'<th>{html.escape(str(c))}</th>' for c in frame.columns)
    body = []
    for row in frame.itertuples(index=False):
        body.append('<tr>' + ''.join(f'<td>{html.escape(str(v))}</td>' for v in row) + '</tr>')
    return (
        f'<div class="scroll"><table id="{table_id}"><thead><tr>{head}</tr></thead>'
        f'<tbody>{"".join(body)}</tbody></table></div>'
    )


def report_contents(rep: ScoreReport) -> Dict[str, List[str]]:
    """The table ids and image alt texts report.html holds (for tests)."""
    ids = ['table-scores', 'table-time-to-target', 'table-speedup-summary', 'table-speedups',
           'table-trials']
    if rep.ctr is not None:
        ids.append('table-ctr')
    if rep.teacher is not None:
        ids.append('table-teacher')
    if rep.salt is not None:
        ids.append('table-salt')
    if federated_section(rep.trials):
        ids.append('table-federated')
    if views.hardware_view(rep) is not None:
        ids.append('table-hardware')
    alts = ['performance profile'] + [
        f'curves of {w}' for w in sorted(set(rep.trials['workload_id']))
    ]
    return {'tables': ids, 'images': alts}


def render(rep: ScoreReport, profile_png: Path, curves: Dict[str, Path]) -> str:
    now = datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')
    experiments = ', '.join(rep.experiments)
    esc = html.escape
    unit = {
        'seconds': 'seconds of submission time',
        'steps': 'steps',
        'examples': 'training examples',
    }[rep.time_col]
    parts = [
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f'<title>TimeTrial scores: {esc(experiments)}</title><style>{_CSS}</style></head><body>',
        f'<h1>TimeTrial scores: {esc(experiments)}</h1>',
        f'<p class="meta">Hardware class: <b>{esc(", ".join(rep.hardware_classes) or "unknown")}'
        f'</b> · generated {esc(now)} · results: <code>{esc(str(rep.results_dir))}</code><br>'
        f'Time to target in {esc(unit)} · r_max = {rep.r_max:g} · '
        f'{esc(views.summary_line(rep))}<br>Noise floor: {esc(rep.noise_floor_source)}</p>',
        f'<p id="comparison" class="verdict">{esc(rep.comparison_sentence)}</p>',
        '<h2 id="scores">Benchmark score</h2>',
        '<p class="note">B = (1/(r_max − 1)) ∫₁<sup>r_max</sup> ρ(τ) dτ, integrated exactly '
        '(AlgoPerf samples 100 points; the two agree to within the grid error). 1 means '
        'fastest on every workload; 0 means never within r_max of the fastest. Intervals: '
        'bootstrap over studies.</p>',
        _table(views.scores_view(rep), 'table-scores'),
        '<h2 id="profile">Performance profile</h2>',
        f'<figure>{_img(profile_png, "performance profile")}<figcaption>ρ(τ): the fraction '
        'of workloads on which an entrant reached the target within τ times the fastest '
        'entrant\'s time. Higher and further left is better.</figcaption></figure>',
        f'<h2 id="time-to-target">Time to target ({esc(unit)})</h2>',
        '<p class="note">Median over studies of each study\'s fastest trial, '
        '[95% bootstrap interval], r = ratio to the fastest entrant. ∞: never reached; '
        '→ ∞: penalised (over r_max, or a held-out variant missed); failed: every trial '
        f'failed (the first error). · tie: not distinguishable from {esc(str(rep.reference))}; '
        '· k failed, ⚠ k disturbed: trials that failed, or whose clock other work '
        'disturbed (listed under Trials).</p>',
        _table(tables.time_pivot(rep.times, rep.time_col), 'table-time-to-target', index=True),
    ]
    summary, wide = views.speedup_views(rep)
    parts += [
        f'<h2 id="speedups">Against {esc(str(rep.reference))}: time ratios and ties</h2>',
        '<p class="note">Time to target ÷ the reference\'s, per workload, before penalties '
        '(above 1: slower). Paired by study where the studies share their seeds (study '
        '<i>s</i> of both saw the same data order and initialization): the median over '
        'studies of the per-study ratios, with a bootstrap interval that redraws studies '
        'for both at once; unpaired otherwise (ratio of the medians). A tie: the 95% '
        'interval holds 1, or the ratio is within the noise floor (the larger CV of the '
        f'two, across seeds). Noise floor: {esc(rep.noise_floor_source)}. The summary is '
        'the geometric mean over the workloads both reached.</p>',
        _table(summary, 'table-speedup-summary'),
        _table(wide, 'table-speedups', index=True),
        '<h2 id="curves">Training curves</h2>',
    ]
    for workload_id in sorted(curves):
        parts.append(
            f'<figure>{_img(curves[workload_id], f"curves of {workload_id}")}'
            f'<figcaption>{esc(workload_id)}</figcaption></figure>'
        )
    if rep.ctr is not None:
        view = tables.formatted(
            rep.ctr,
            {
                'final_auc': tables.fmt_num,
                'final_calibration': tables.fmt_num,
                'rpd': tables.fmt_num,
                'rpd_min': tables.fmt_num,
                'rpd_max': tables.fmt_num,
                'rpd_step': lambda v: tables.fmt_num(v, digits=0),
            },
        )
        parts += [
            '<h2 id="ctr">Click-through-rate workloads</h2>',
            '<p class="note">Final validation AUC and calibration (Σ predictions / '
            'Σ clicks; 1 is ideal), median over studies. RPD: replica prediction '
            'difference between studies that share their hyperparameters (0 = identical '
            'predictions), at the step all of them stopped at (rpd_step); mean, min and '
            'max over pairs. Replicas stopped at different steps get none (see problems).</p>',
            _table(view, 'table-ctr'),
        ]
    if rep.teacher is not None:
        view = tables.formatted(
            rep.teacher,
            {
                'teacher_time_s': tables.fmt_num,
                'teacher_share_of_submission_time': tables.fmt_num,
                'teacher_training_time_s': tables.fmt_num,
                'teacher_training_flops': tables.fmt_num,
            },
        )
        parts += [
            '<h2 id="teacher">Teacher cost</h2>',
            '<p class="note">Teacher forward time is part of the submission time '
            '(already in the scores); teacher training is off the clock and shown '
            'here so comparisons can charge it. Medians over studies.</p>',
            _table(view, 'table-teacher'),
        ]
    if rep.salt is not None:
        parts.append(salt_section(rep.salt))
    trials, n_trials = views.trials_view(rep)
    parts += [
        '<h2 id="trials">Trials</h2>',
        f'<p class="note">{len(trials)} of {n_trials} trials: each study\'s selected trial '
        '(the one that gives the study its time) and every failed, unfinished or disturbed '
        'trial; all of them are in trials.csv. Resolution: the gap between the evaluation '
        'that met the target and the last one that missed. ⚠ disturbed: other work on the '
        'machine took CPU time from the trial, so its time may be too long.</p>',
        _table(trials, 'table-trials'),
    ]
    federated_html = federated_section(rep.trials)
    if federated_html:
        parts.append(federated_html)
    hardware = views.hardware_view(rep)
    if hardware is not None:
        parts += ['<h2 id="hardware">Hardware</h2>', _table(hardware, 'table-hardware')]
    if rep.notes:
        parts += ['<h2 id="notes">Notes</h2><ul>']
        parts += [f'<li>{esc(n)}</li>' for n in rep.notes]
        parts.append('</ul>')
    if rep.problems:
        parts += [f'<h2 id="problems">Files skipped ({len(rep.problems)})</h2><ul>']
        parts += [
            f'<li><code>{esc(p.path)}</code>: {esc(p.reason)}</li>' for p in rep.problems[:200]
        ]
        if len(rep.problems) > 200:
            parts.append(f'<li>… and {len(rep.problems) - 200} more</li>')
        parts.append('</ul>')
    parts.append('</body></html>\n')
    return '\n'.join(parts)
