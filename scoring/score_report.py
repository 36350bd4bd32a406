"""``ScoreReport``: everything one scoring run computed, handed to the writers of outputs."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Dict, List, Optional

import pandas as pd

from scoring.problems import Problem


@dataclasses.dataclass
class ScoreReport:
    """Everything scoring computed; frames are documented in scoring/README.md."""

    results_dir: Path
    out_dir: Optional[Path]
    time_col: str
    r_max: float
    trials: pd.DataFrame
    evals: pd.DataFrame
    #: one row per (entrant, workload_id, experiment, study)
    studies: pd.DataFrame
    #: one row per (workload_id, entrant), every pair, with intervals and penalties
    times: pd.DataFrame
    #: entrants x scored workloads, ∞ beyond r_max
    ratios: pd.DataFrame
    #: one row per entrant, best first
    scores: pd.DataFrame
    #: (entrant, tau, rho): where each profile steps
    profile: pd.DataFrame
    reference: Optional[str]
    #: per (workload_id, entrant): paired time ratio to the reference, interval, tie
    speedups: Optional[pd.DataFrame]
    #: per entrant: geometric mean of those ratios, interval, vs_reference
    speedup_summary: Optional[pd.DataFrame]
    #: one sentence: which entrants are distinguishable from the reference, which tie
    comparison_sentence: str
    #: where the noise floors came from, or "none measured (...)"
    noise_floor_source: str
    ctr: Optional[pd.DataFrame]
    teacher: Optional[pd.DataFrame]
    #: lm_slm's teacher entrants paired with their base optimizer (scoring.salt), or None
    salt: Optional[pd.DataFrame]
    hardware_classes: List[str]
    hardware: Dict[str, dict]
    experiments: List[str]
    scored_workloads: List[str]
    variants: Dict[str, str]
    problems: List[Problem]
    notes: List[str]
    paths: Dict[str, Path] = dataclasses.field(default_factory=dict)
    #: seconds spent loading, scoring and writing the outputs (``score`` fills it in)
    timings_s: Dict[str, float] = dataclasses.field(default_factory=dict)
