"""Performance ratios, performance profiles and the benchmark score, computed exactly.

r(s, w) = t(s, w) / min_s' t(s', w); ratios above r_max become ∞ (a workload no
entrant reaches has ∞ for everyone). W is the entrant's track: the workloads of its
contract (centralized or federated); those of the other track are NaN, in no minimum,
no count and no score. ρ_s(τ) = #{w : r(s, w) ≤ τ} / |W| is a right-
continuous step function of τ, so its integral has a closed form:

    ∫_1^{r_max} 1[r ≤ τ] dτ = max(0, r_max − r)        for r ≥ 1,
    B_s = Σ_w max(0, r_max − r(s, w)) / (|W| · (r_max − 1)).

AlgoPerf instead samples ρ on 100 evenly spaced τ in [1, r_max] and integrates with
the trapezoid rule (``scoring.algoperf_reference``); the two differ by at most
h / (2|W|(r_max − 1)) per ratio strictly inside (1, r_max], h the grid step, and are
equal when every ratio is 1 or above r_max.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from scoring.time_to_target import _nanmin


def performance_ratios(times: pd.DataFrame, r_max: float) -> pd.DataFrame:
    """entrants x workloads: t / (column minimum); above r_max, ∞ or NaN become ∞."""
    values = times.to_numpy(dtype=np.float64)
    ratios = _ratios(values, r_max)
    return pd.DataFrame(ratios, index=times.index, columns=times.columns)


def _ratios(values: np.ndarray, r_max: float) -> np.ndarray:
    """Works on [..., entrant, workload] arrays (the bootstrap passes 3-D ones).

    NaN (a workload of another track) stays NaN and is not in the column's minimum.
    """
    best = _nanmin(values, axis=-2)
    with np.errstate(invalid='ignore', divide='ignore'):
        ratios = values / best
    ratios = np.where(np.isfinite(ratios) & (ratios <= r_max), ratios, np.inf)
    return np.where(np.isnan(values), np.nan, ratios)


def _applicable_count(ratios: np.ndarray) -> np.ndarray:
    """|W| per entrant: its track's workloads (the non-NaN ones)."""
    return (~np.isnan(ratios)).sum(axis=-1)


def exact_scores(ratios: pd.DataFrame, r_max: float) -> pd.Series:
    """B_s: the exact integral of the step-function profile, normalised to [0, 1]."""
    return pd.Series(
        _scores(ratios.to_numpy(dtype=np.float64), r_max), index=ratios.index, name='score'
    )


def _scores(ratios: np.ndarray, r_max: float) -> np.ndarray:
    n_workloads = _applicable_count(ratios)
    with np.errstate(invalid='ignore', divide='ignore'):
        area = np.where(np.isfinite(ratios), np.clip(r_max - ratios, 0.0, r_max - 1.0), 0.0)
        scores = area.sum(axis=-1) / (n_workloads * (r_max - 1.0))
    return np.where(n_workloads > 0, scores, 0.0)


def rho(ratios: pd.DataFrame, taus: np.ndarray) -> pd.DataFrame:
    """ρ_s(τ) at the given τ values: entrants x taus."""
    r = ratios.to_numpy(dtype=np.float64)
    n_workloads = np.maximum(_applicable_count(r), 1)[:, None]
    values = (r[:, :, None] <= np.asarray(taus)[None, None, :]).sum(axis=1) / n_workloads
    return pd.DataFrame(values, index=ratios.index, columns=np.asarray(taus))


def profile_steps(ratios: pd.DataFrame, r_max: float) -> pd.DataFrame:
    """Every point where a profile changes: long frame (entrant, tau, rho).

    For each entrant: τ = 1 then each finite ratio in (1, r_max] in order, then r_max;
    ρ holds from that τ to the next (draw with ``drawstyle='steps-post'``).
    """
    rows = []
    for entrant, r in ratios.iterrows():
        values = r.to_numpy(dtype=np.float64)
        n_workloads = max(int((~np.isnan(values)).sum()), 1)
        finite = np.sort(values[np.isfinite(values)])
        taus = np.unique(np.concatenate([[1.0], finite[finite > 1.0], [r_max]]))
        for tau in taus:
            rows.append((entrant, float(tau), float((finite <= tau).sum() / n_workloads)))
    return pd.DataFrame(rows, columns=['entrant', 'tau', 'rho'])
