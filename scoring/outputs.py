"""Write every output of a ScoreReport into one directory.

Files: performance_profile.png/.svg, curves_<workload>.svg (one per workload,
variants included), time_to_target.csv/.md, scores.csv, speedups.csv,
trials.csv, and, when their data exist, ctr.csv, teacher.csv, salt.csv and
federated.csv; then
report.html with all of them embedded. Existing files of these names are
overwritten; nothing else is touched.

The figures are most of the time (~0.1 s of CPU each, most of it matplotlib's
text layout): they are drawn by forked worker processes, one per
usable core (``scoring.parallel``), while this process writes the tables.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np

from harness.errors import UserInputError
from scoring import plots, tables, views
from scoring import report as report_mod
from scoring.federated import federated_table
from scoring.parallel import fork_map, usable_cores
from scoring.score_report import ScoreReport

#: Fewer figures than this are drawn in this process (forking would not pay).
PARALLEL_MIN_FIGURES = 4


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


def _curve_files(rep: ScoreReport) -> List[Tuple[str, str]]:
    """(workload_id, file name) for every workload; names made unique."""
    files, used = [], set()
    for workload_id in sorted(set(rep.trials['workload_id'])):
        name = plots.slug(workload_id)
        while name in used:
            name += '_'
        used.add(name)
        files.append((workload_id, f'curves_{name}.svg'))
    return files


def write_outputs(
    rep: ScoreReport, out_dir: Path, workers: Optional[int] = None
) -> Dict[str, Path]:
    """Write every file; ``workers``: processes drawing figures (None: every usable core)."""
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserInputError(
            f'Cannot create the output directory {str(out_dir)!r}: {e}. Choose another with --out.'
        ) from e
    colors = plots.entrant_colors(list(rep.scores['entrant']))
    experiments = ', '.join(rep.experiments)
    hw = ', '.join(rep.hardware_classes) or 'unknown hardware'
    curve_files = _curve_files(rep)
    # Each study's selected trial (the one that gives the study its time): drawing every
    # trial of a search made a blot of 50 lines per entrant, and most of the drawing time.
    selected = rep.trials[rep.trials['trial_id'].isin(rep.studies['selected_trial_id'])]
    by_workload = dict(iter(selected.groupby('workload_id', sort=False)))

    def draw(job: Tuple[str, str]) -> List[Path]:
        workload_id, name = job
        if workload_id is None:
            fig = plots.profile_figure(
                rep.profile, rep.scores, rep.r_max, rep.time_col, colors,
                title=f'Performance profiles: {experiments}',
                subtitle=f'{plots.plural(len(rep.scored_workloads), "workload")} · '
                f'time to target in {rep.time_col} · r_max = {rep.r_max:g} · {hw}',
            )
            return plots.save(fig, out_dir / name, dpi=150, svg=True)
        fig = plots.curves_figure(workload_id, by_workload[workload_id], rep.evals,
                                  best_trials(rep, workload_id), colors)
        return [plots.save_svg(fig, out_dir / name)]

    paths: Dict[str, Path] = {}

    def write_tables() -> None:  # while the workers draw
        header = [f'Experiments: {experiments}. Hardware: {hw}. '
                  f'Ties are with {rep.reference}.', '']
        for p in tables.write_time_to_target(rep.times, rep.time_col, out_dir, header):
            paths[p.name] = p
        paths['scores.csv'] = tables.write_csv(rep.scores, out_dir / 'scores.csv')
        if rep.speedups is not None:
            merged = rep.speedups.merge(
                rep.speedup_summary[['entrant', 'reference', 'geomean_ratio', 'geomean_ci_low',
                                     'geomean_ci_high', 'geomean_speedup']],
                on=['entrant', 'reference'])
            merged.insert(0, 'reference', merged.pop('reference'))
            paths['speedups.csv'] = tables.write_csv(merged, out_dir / 'speedups.csv')
        paths['trials.csv'] = tables.write_csv(views.trials_csv(rep), out_dir / 'trials.csv')
        if rep.ctr is not None:
            paths['ctr.csv'] = tables.write_csv(rep.ctr, out_dir / 'ctr.csv')
        if rep.teacher is not None:
            paths['teacher.csv'] = tables.write_csv(rep.teacher, out_dir / 'teacher.csv')
        if rep.salt is not None:
            paths['salt.csv'] = tables.write_csv(rep.salt, out_dir / 'salt.csv')
        federated = federated_table(rep.trials)
        if federated is not None:
            paths['federated.csv'] = tables.write_csv(federated, out_dir / 'federated.csv')

    jobs = [(None, 'performance_profile.png')] + curve_files
    if workers is None:
        workers = usable_cores() if len(jobs) >= PARALLEL_MIN_FIGURES else 1
    drawn = fork_map(draw, jobs, workers, while_waiting=write_tables)
    png, svg = drawn[0]
    paths['performance_profile.png'], paths['performance_profile.svg'] = png, svg
    curves: Dict[str, Path] = {}
    for (workload_id, name), (path,) in zip(curve_files, drawn[1:]):
        curves[workload_id] = paths[name] = path
    html_path = out_dir / 'report.html'
    html_path.write_text(report_mod.render(rep, png, curves), encoding='utf-8')
    paths['report.html'] = html_path
    rep.out_dir = out_dir
    rep.paths = paths
    return paths
