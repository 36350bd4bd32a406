"""The figures: performance profiles and per-workload validation curves.

Uses ``matplotlib.figure.Figure`` directly (no pyplot): no global backend switch
and no GUI needed, so scoring runs the same on a head-less cluster node.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Dict, List

import numpy as np
import pandas as pd
from matplotlib import rc_context
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from matplotlib.lines import Line2D
from matplotlib.textpath import TextToPath

_LINESTYLES = ('-', '--', '-.', ':')
_LEGEND_PT = 8.5
#: A legend entry's handle, gaps and frame, in em, beside its label.
_HANDLE_EM = 4.5
_TEXT_PATH = TextToPath()
_TIME_LABELS = {'seconds': 'submission time', 'steps': 'steps', 'examples': 'examples'}


def entrant_colors(entrants: List[str]) -> Dict[str, tuple]:
    """A fixed colour per entrant (sorted names), shared by every figure."""
    from matplotlib import colormaps

    cmap = colormaps['tab10' if len(entrants) <= 10 else 'tab20']
    return {e: cmap(i % cmap.N) for i, e in enumerate(sorted(entrants))}


def plural(n: int, noun: str) -> str:
    return f'{n} {noun}' if n == 1 else f'{n} {noun}s'


def slug(text: str) -> str:
    return re.sub(r'[^A-Za-z0-9_.-]+', '_', text).strip('_') or 'workload'


def profile_figure(
    steps: pd.DataFrame,
    scores: pd.DataFrame,
    r_max: float,
    time_col: str,
    colors: Dict[str, tuple],
    title: str,
    subtitle: str,
) -> Figure:
    """Step-function profiles, best score first; the legend carries B_s and its CI."""
    fig = Figure(figsize=(11.0, 5.8), layout='constrained')
    ax = fig.add_subplot()
    for i, row in enumerate(scores.itertuples()):
        part = steps[steps['entrant'] == row.entrant]
        label = f'{row.entrant}   B = {row.score:.3f}'
        if np.isfinite(getattr(row, 'score_ci_low', np.nan)):
            label += f' [{row.score_ci_low:.3f}, {row.score_ci_high:.3f}]'
        ax.step(
            part['tau'],
            part['rho'],
            where='post',
            color=colors[row.entrant],
            linestyle=_LINESTYLES[i % len(_LINESTYLES)],
            linewidth=2.2,
            alpha=0.9,
            label=label,
        )
    if r_max > 10:
        ax.set_xscale('log')
    ax.set_xlim(1.0, r_max)
    ax.set_ylim(-0.03, 1.03)
    unit = _TIME_LABELS[time_col]
    ax.set_xlabel(f'τ: {unit} to target ÷ fastest entrant\'s {unit} on that workload')
    ax.set_ylabel('ρ(τ): fraction of workloads within τ')
    ax.grid(True, alpha=0.35)
    ax.set_title(f'{title}\n{subtitle}', fontsize=11)
    has_ci = bool(scores['score_ci_low'].notna().any())
    if not np.isfinite(scores['score'].to_numpy()).any() or scores['score'].max() == 0:
        ax.text(
            0.5,
            0.5,
            'no entrant reached a target within r_max',
            transform=ax.transAxes,
            ha='center',
            va='center',
            fontsize=12,
            color='0.35',
        )
    # Outside the axes: profiles of weak entrants run along the bottom right, where a
    # legend inside would hide them.
    ax.legend(
        loc='upper left',
        bbox_to_anchor=(1.01, 1.0),
        fontsize=9,
        title='entrant, score [95% CI]' if has_ci else 'entrant, score',
        title_fontsize=9,
    )
    return fig


def curves_figure(
    workload_id: str,
    trials: pd.DataFrame,
    evals: pd.DataFrame,
    best_trial_ids: Dict[str, int],
    colors: Dict[str, tuple],
) -> Figure:
    """Target metric against submission time for the given trials of one workload.

    ``trials``: the trials to draw; scoring passes each study's selected trial (the
    one that gives the study its time). Thin lines: those trials, coloured by
    entrant. Thick line: the entrant's best trial
    (fastest to target, else best metric), a star where it first met the target.
    Dashed black: the target. The y axis is logarithmic when a positive metric spans
    more than a factor 20; the top is clipped to the 99.5th percentile so that a
    diverged trial does not flatten the rest.
    """
    metric = trials['target_metric'].iloc[0]
    target = float(trials['target_value'].iloc[0])
    mode = trials['target_mode'].iloc[0]
    counts = trials.groupby('entrant', sort=True).size()
    labels = {e: f'{e} ({plural(int(n), "trial")})' for e, n in counts.items()}
    target_label = f'target {metric} {"≤" if mode == "min" else "≥"} {target:g}'
    # Fixed margins, the legend's width measured from its labels' glyphs (~3 ms),
    # instead of a layout engine or bbox_inches='tight': both lay out every text of
    # the figure once more (measured: 15-25% of the time to write a figure).
    font = FontProperties(size=_LEGEND_PT)
    longest_pt = max(_TEXT_PATH.get_text_width_height_descent(label, font, ismath=False)[0]
                     for label in [*labels.values(), target_label])
    legend_in = (longest_pt + _HANDLE_EM * _LEGEND_PT) / 72.0
    axes_in, left_in, right_in = 8.4, 0.85, 0.3
    width_in = left_in + axes_in + right_in + legend_in
    fig = Figure(figsize=(width_in, 5.4))
    fig.subplots_adjust(left=left_in / width_in, right=(left_in + axes_in) / width_in,
                        bottom=0.1, top=0.88)
    ax = fig.add_subplot()
    # Per-trial arrays by slicing one sorted array: per-trial pandas selection was
    # the slowest part of writing the curves of 10,000 trials.
    rows = evals[evals['trial_id'].isin(trials['trial_id'])]
    if metric in rows.columns:
        rows = rows[['trial_id', 'submission_time_s', metric]].dropna()
    else:
        rows = rows.iloc[0:0].assign(**{metric: []})
    ids = rows['trial_id'].to_numpy()
    xy = rows[['submission_time_s', metric]].to_numpy(dtype=np.float64)
    order = np.argsort(ids, kind='stable')
    ids, xy = ids[order], xy[order]
    starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]]) if len(ids) else np.array([], int)
    pieces = np.split(xy, starts[1:]) if len(ids) else []
    by_trial = {int(ids[s]): piece for s, piece in zip(starts, pieces)}
    handles = []
    all_values = xy[:, 1]
    hits = trials.set_index('trial_id')[['reached', 'evals_time_to_target_s']]
    for entrant, group in trials.groupby('entrant', sort=True):
        color = colors[entrant]
        segments = [by_trial[t] for t in group['trial_id'] if t in by_trial]
        if segments:
            # autolim off: the limits are set below from the data (faster than per segment).
            ax.add_collection(
                LineCollection(segments, colors=[color], linewidths=0.8, alpha=0.45),
                autolim=False,
            )
        best = best_trial_ids.get(entrant)
        if best is not None and best in by_trial:
            curve = by_trial[best]
            ax.plot(curve[:, 0], curve[:, 1], color=color, linewidth=2.4)
            t_hit = float(hits.at[best, 'evals_time_to_target_s'])
            if hits.at[best, 'reached'] and np.isfinite(t_hit):
                y_hit = curve[curve[:, 0] == t_hit, 1]
                if len(y_hit):
                    ax.plot(
                        [t_hit],
                        [y_hit[0]],
                        marker='*',
                        markersize=13,
                        color=color,
                        markeredgecolor='black',
                        zorder=5,
                    )
        handles.append(Line2D([], [], color=color, linewidth=2.4, label=labels[entrant]))
    ax.axhline(target, color='black', linestyle='--', linewidth=1.3)
    handles.append(Line2D([], [], color='black', linestyle='--', label=target_label))
    finite = all_values[np.isfinite(all_values)]
    if len(finite):
        lo = min(float(finite.min()), target)
        hi = max(float(np.percentile(finite, 99.5)), target)
        if lo > 0 and hi / lo > 20:
            ax.set_yscale('log')
            ax.set_ylim(lo / 1.1, hi * 1.1)
        else:
            pad = 0.05 * (hi - lo or abs(hi) or 1.0)
            ax.set_ylim(lo - pad, hi + pad)
        ax.set_xlim(0.0, float(xy[:, 0].max()) * 1.02 or 1.0)
    ax.set_xlabel('submission time (s)')
    ax.set_ylabel(metric)
    ax.grid(True, alpha=0.35)
    ax.set_title(
        f'{workload_id}: {metric} during training\n'
        "thin: each study's selected trial · thick: best trial per entrant · ★: target reached",
        fontsize=10,
    )
    # Outside the axes: with hundreds of curves no corner is empty, and loc='best'
    # would test every segment for overlap (slow with 10,000 trials).
    ax.legend(handles=handles, fontsize=_LEGEND_PT, loc='upper left',
              bbox_to_anchor=(1.01, 1.0))
    return fig


def save(fig: Figure, path: Path, dpi: int = 120, svg: bool = False) -> List[Path]:
    """PNG (and SVG); a figure with a layout engine is cropped to its contents."""
    path = Path(path)
    # 'tight' grows the canvas to fit a legend outside the axes with long names (the
    # profile); a figure without a layout engine has sized its canvas itself.
    crop = dict(bbox_inches='tight', pad_inches=0.15) if fig.get_layout_engine() else {}
    # zlib level 3 instead of 6: ~30% less time encoding, files ~7% larger (measured).
    fig.savefig(path, dpi=dpi, pil_kwargs={'compress_level': 3}, **crop)
    written = [path]
    if svg:
        svg_path = path.with_suffix('.svg')
        fig.savefig(svg_path, metadata={'Date': None}, **crop)
        written.append(svg_path)
    return written


def save_svg(fig: Figure, path: Path) -> Path:
    """SVG with its text as text: no glyphs to rasterize and no PNG to encode, ~40% of
    the time to write a PNG of the same figure (measured), half the bytes, and sharp
    at any zoom. The viewer draws the text with its own copy of the font (DejaVu
    Sans, else its sans-serif)."""
    path = Path(path)
    with rc_context({'svg.fonttype': 'none'}):
        fig.savefig(path, format='svg', metadata={'Date': None})
    return path
