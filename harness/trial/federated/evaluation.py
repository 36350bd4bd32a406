"""When the federated runner evaluates beyond its period, and the straggler shares it records.

Evaluation costs no simulated time, so near the target the runner evaluates
after every server update; ``near_target`` says when a regular evaluation is
near. ``group_shares`` turns the simulator's per-group counts into the shares
result.json and evals.jsonl record (``federated/delivered_share_stragglers``...).
"""

from __future__ import annotations

import math
from typing import Dict, List, Optional, Tuple

from harness import results

#: Evaluate after every server update once the target is at most this many
#: evaluation periods away at the average pace since the first evaluation ...
NEAR_TARGET_PERIODS = 2.0
#: ... or within this fraction of the target's value (a plateau just short of it).
NEAR_TARGET_FRACTION = 0.01


def near_target(
    value: Optional[float],
    first_gap: Optional[float],
    periods_since_first: int,
    target: results.Target,
) -> Tuple[bool, Optional[float]]:
    """(is a regular evaluation of ``value`` near the target?, its gap to the target).

    The gap is how far the value is from meeting the target (negative once met);
    ``first_gap`` is the first regular evaluation's, ``periods_since_first`` the
    evaluation periods since it. Near: the gap is at most ``NEAR_TARGET_FRACTION``
    of the target's magnitude, or, at the average pace since the first evaluation
    (gap closed per period), it closes within ``NEAR_TARGET_PERIODS`` periods. The
    average pace is steadier than the last period's (evaluations are noisy) and,
    as training slows, errs towards evaluating early. The runner keeps evaluating
    after every update once an evaluation was near, until the target is met."""
    if value is None or not math.isfinite(value):
        return False, None
    gap = target.value - value if target.mode == 'max' else value - target.value
    if gap <= NEAR_TARGET_FRACTION * abs(target.value):
        return True, gap
    if first_gap is None or periods_since_first < 1:
        return False, gap
    pace = (first_gap - gap) / periods_since_first
    return pace > 0 and gap <= NEAR_TARGET_PERIODS * pace, gap


def group_shares(counts: Dict[str, int], groups: List[str]) -> Dict[str, float]:
    """Per latency group, its share of the dispatches (``dispatched_share_<g>``), of
    the reports handed to server_update (``delivered_share_<g>``) and of those
    delivered in their own round (``delivered_on_time_share_<g>``); NaN before
    there are any."""
    out = {}
    for group in groups:
        for what in ('dispatched', 'delivered', 'delivered_on_time'):
            total = counts[what]
            out[f'{what}_share_{group}'] = (
                counts[f'{what}_{group}'] / total if total else float('nan')
            )
    return out
