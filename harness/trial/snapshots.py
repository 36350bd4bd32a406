"""Timestamped snapshots of the training state between two evaluations.

Evaluating often enough to know a time to target to 1 % would cost more wall
time than training (AlgoPerf's Criteo workload spends 75 % of its runtime
evaluating). Instead, after every step (off the clock) the runner keeps a host
copy of the state with the clock's reading — MLPerf's "timestamped
checkpoints", in memory. When an evaluation finds the target met, the runner
bisects over the snapshots taken since the last evaluation that missed it
(``harness.trial.evaluation``): about log2(steps per evaluation period) extra
evaluations find the first evaluated step that meets the target, to one
snapshot's spacing.

Memory is bounded: when the snapshots of one window pass ``budget_bytes``,
every other one is dropped and the spacing doubles (1, 2, 4, ... steps), so the
resolution degrades gradually to what the budget allows — and the result
records the resolution it got. The optimizer state is kept only when the
submission has a ``prepare_for_eval`` (which takes it).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, List, Optional

import numpy as np

#: Default memory for one window's snapshots: 15 % of this machine's memory, at most 4 GiB.
DEFAULT_BUDGET_FRACTION = 0.15
DEFAULT_BUDGET_CAP_BYTES = 4 * 2**30


def default_budget_bytes() -> int:
    try:
        total = os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES')
    except (ValueError, OSError, AttributeError):
        total = 8 * 2**30
    return int(min(DEFAULT_BUDGET_FRACTION * total, DEFAULT_BUDGET_CAP_BYTES))


def nbytes(tree: Any) -> int:
    """Bytes of the arrays (numpy, torch) in a nested host structure."""
    if tree is None:
        return 0
    if isinstance(tree, dict):
        return sum(nbytes(v) for v in tree.values())
    if isinstance(tree, (list, tuple)):
        return sum(nbytes(v) for v in tree)
    size = getattr(tree, 'nbytes', None)
    if isinstance(size, (int, np.integer)):
        return int(size)
    element_size = getattr(tree, 'element_size', None)  # torch.Tensor
    if callable(element_size):
        return int(element_size() * tree.numel())
    return 0


@dataclasses.dataclass
class Snapshot:
    """The state after ``step``, and the counters the clock read then."""

    step: int
    submission_time_s: float
    examples_seen: int
    wall_time_s: float
    params: Any
    model_state: Any
    optimizer_state: Any = None
    #: The auxiliary model's time on the clock so far (lm_slm's teacher), if any.
    teacher_time_s: Optional[float] = None
    #: The submission's reported metrics as of this step (e.g. SALT's stage).
    reported: Optional[dict] = None
    #: What else the runner must know of this point to write its record (the federated
    #: runner: the simulator's counts and the submission's compute time then).
    extra: Optional[dict] = None
    nbytes: int = 0


class SnapshotBuffer:
    """The snapshots of the current evaluation window, in step order."""

    def __init__(self, budget_bytes: Optional[int] = None):
        self.budget_bytes = default_budget_bytes() if budget_bytes is None else int(budget_bytes)
        self.spacing = 1
        self.snapshots: List[Snapshot] = []
        #: Largest spacing any window needed (1 = every step): reported with the trial.
        self.max_spacing = 1

    @property
    def nbytes(self) -> int:
        return sum(s.nbytes for s in self.snapshots)

    def wants(self, step: int) -> bool:
        return self.budget_bytes > 0 and step % self.spacing == 0

    def add(self, snapshot: Snapshot) -> None:
        snapshot.nbytes = (nbytes(snapshot.params) + nbytes(snapshot.model_state)
                           + nbytes(snapshot.optimizer_state))
        self.snapshots.append(snapshot)
        while self.nbytes > self.budget_bytes and len(self.snapshots) > 1:
            self._thin()

    def _thin(self) -> None:
        """Keep every other snapshot (those on the doubled grid); double the spacing."""
        self.spacing *= 2
        self.max_spacing = max(self.max_spacing, self.spacing)
        kept = [s for s in self.snapshots if s.step % self.spacing == 0]
        # A single snapshot larger than the budget leaves nothing to bisect over.
        self.snapshots = kept if kept else self.snapshots[-1:]

    def clear(self) -> None:
        """A new window starts: the last one's snapshots are no longer needed.

        The spacing carries over (windows are alike), and halves when the last
        window used under a quarter of the budget (it was thinned for a longer one).
        """
        if self.spacing > 1 and self.nbytes < self.budget_bytes / 4:
            self.spacing //= 2
        self.snapshots = []
