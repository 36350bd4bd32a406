"""Write every output of a ScoreReport into one directory.

Files: performance_profile.png/.svg, curves_<workload>.png (one per workload,
variants included), time_to_target.csv/.md, scores.csv, speedups.csv, and, when
their data exist, ctr.csv, teacher.csv and federated.csv; then report.html with all of them
embedded. Existing files of these names are overwritten; nothing else is touched.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict

import numpy as np

from harness.errors import UserInputError
from scoring import plots, tables
from scoring import report as report_mod
from scoring.federated import federated_table
from scoring.score_report import ScoreReport


def best_trials(rep: ScoreReport, workload_id: str) -> Dict[str, int]:
    """Per entrant, the trial to highlight: fastest to target, else best target metric."""
    studies = rep.studies[rep.studies['workload_id'] == workload_id]
    by_id = rep.trials.set_index('trial_id')
    best = {}
    for entrant, group in studies.groupby('entrant'):
        ids = group['selected_trial_id'].to_numpy()
        times = group['time'].to_numpy()
        if np.isfinite(times).any():
            best[entrant] = int(ids[np.argmin(times)])
        else:
            metric = by_id.loc[ids, 'best_metric'].to_numpy(dtype=np.float64)
            sign = -1.0 if by_id.loc[ids[0], 'target_mode'] == 'max' else 1.0
            key = np.nan_to_num(sign * metric, nan=np.inf)
            best[entrant] = int(ids[np.argmin(key)])
    return best


def write_outputs(rep: ScoreReport, out_dir: Path) -> Dict[str, Path]:
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserInputError(
            f'Cannot create the output directory {str(out_dir)!r}: {e}. Choose another with --out.'
        ) from e
    paths: Dict[str, Path] = {}
    colors = plots.entrant_colors(list(rep.scores['entrant']))
    experiments = ', '.join(rep.experiments)
    hw = ', '.join(rep.hardware_classes) or 'unknown hardware'
    fig = plots.profile_figure(
        rep.profile,
        rep.scores,
        rep.r_max,
        rep.time_col,
        colors,
        title=f'Performance profiles: {experiments}',
        subtitle=f'{plots.plural(len(rep.scored_workloads), "workload")} · '
        f'time to target in {rep.time_col} · '
        f'r_max = {rep.r_max:g} · {hw}',
    )
    png, svg = plots.save(fig, out_dir / 'performance_profile.png', dpi=150, svg=True)
    paths['performance_profile.png'], paths['performance_profile.svg'] = png, svg

    curves: Dict[str, Path] = {}
    used = set()
    for workload_id, group in rep.trials.groupby('workload_id', sort=True):
        name = plots.slug(workload_id)
        while name in used:
            name += '_'
        used.add(name)
        fig = plots.curves_figure(
            workload_id, group, rep.evals, best_trials(rep, workload_id), colors
        )
        curves[workload_id] = plots.save(fig, out_dir / f'curves_{name}.png', dpi=110)[0]
        paths[f'curves_{name}.png'] = curves[workload_id]

    header = [f'Experiments: {experiments}. Hardware: {hw}.', '']
    for p in tables.write_time_to_target(rep.times, rep.time_col, out_dir, header):
        paths[p.name] = p
    paths['scores.csv'] = tables.write_csv(rep.scores, out_dir / 'scores.csv')
    if rep.speedups is not None:
        merged = rep.speedups.merge(
            rep.speedup_summary[['entrant', 'geomean_speedup']], on='entrant'
        )
        merged.insert(0, 'reference', rep.reference)
        paths['speedups.csv'] = tables.write_csv(merged, out_dir / 'speedups.csv')
    if rep.ctr is not None:
        paths['ctr.csv'] = tables.write_csv(rep.ctr, out_dir / 'ctr.csv')
    if rep.teacher is not None:
        paths['teacher.csv'] = tables.write_csv(rep.teacher, out_dir / 'teacher.csv')
    federated = federated_table(rep.trials)
    if federated is not None:
        paths['federated.csv'] = tables.write_csv(federated, out_dir / 'federated.csv')
    html_path = out_dir / 'report.html'
    html_path.write_text(report_mod.render(rep, png, curves), encoding='utf-8')
    paths['report.html'] = html_path
    rep.out_dir = out_dir
    rep.paths = paths
    return paths
