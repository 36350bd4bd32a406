"""Federated evaluation, and the time to target to one server update.

Regular evaluations happen every ``eval_period_time_sec`` simulated seconds and
at the end. Between two of them the runner keeps a host copy of the server's
evaluation parameters after every server update, with the simulated clock's
reading and the simulator's counts then (``harness.trial.snapshots``). When an
evaluation first finds the target met, the window's snapshots are searched by
bisection (``harness.trial.evaluation.bisect_first_hit``, the centralized
runner's search) until the first evaluated model meeting the target is one
server update, or 1 % of its time, after an evaluated model that missed it. The
simulated time at which that model was made (its server update) is the time to
target — also when it is the regular evaluation's own model, which that
evaluation saw later, on its grid.

Evaluating every server update near the target would find the same crossing
when the metric rises steadily, but costs one evaluation per update: on the
tiny workload an evaluation takes longer than the update it follows, so half
the wall time went to evaluating. Bisection needs about log2(updates per
period) evaluations, for the window that meets the target only.

``group_shares`` turns the simulator's per-group counts into the shares
result.json and evals.jsonl record (``federated/delivered_share_stragglers``...).
"""

from __future__ import annotations

import math
import time
from typing import Any, Dict, List

from harness import results
from harness.trial.evaluation import bisect_first_hit
from harness.trial.snapshots import Snapshot


class Evaluation:
    """Mixed into the federated runner's ``_Trial``: its state (simulator, backend,
    counters, snapshots) is ``self``'s."""

    def _eval_clients(self, params, version: int) -> Dict[str, float]:
        """The workload's evaluation of ``params`` (server version ``version``), timed.

        The same version evaluates to the same numbers: a regular evaluation with no
        server update since the last evaluation reuses them instead of paying again."""
        if self._last_eval is not None and self._last_eval[0] == version:
            return dict(self._last_eval[1])
        self.contention.stop()  # evaluation is not training: out of the windows
        start = time.perf_counter()
        metrics = self.workload.eval_clients(params, self.groups)
        self.eval_time_s += time.perf_counter() - start
        self.contention.start()
        self._last_eval = (version, dict(metrics))
        return metrics

    def _counts_now(self) -> Dict[str, float]:
        counts = {f'federated/{k}': v for k, v in self.sim.counts.items()}
        counts.update({f'federated/{k}': v for k, v in self.group_shares().items()})
        return counts

    def _meets(self, metrics: Dict[str, float]) -> bool:
        value = metrics.get(self.target().metric)
        return (value is not None and math.isfinite(value)
                and bool(self.workload.has_reached_validation_target(metrics)))

    def evaluate(self, time_s: float, wall_time_s: float, kind: str) -> Dict[str, Any]:
        """Evaluate the current model; ``kind`` is regular or final. The first evaluation
        that meets the target is refined over the window's snapshots first."""
        metrics = self._eval_clients(self.backend.eval_params(), self.backend.version)
        metrics.update(self.backend.take_window())
        metrics.update(self._counts_now())
        record = results.EvalRecord(
            step=self.backend.version, submission_time_s=time_s, wall_time_s=wall_time_s,
            eval_time_s=self.eval_time_s, examples_seen=self.backend.examples_delivered,
            metrics=metrics,
            extra={'compute_time_s': self.backend.compute_time_s, 'eval_kind': kind},
        )
        if self.first_reach is None and self._meets(metrics):
            self.first_reach = self._refine(record)
            self.snapshots.clear()
        elif self.first_reach is None:
            # A miss: the next window starts here.
            self.last_miss = {'step': record.step, 'time_s': time_s}
            self.snapshots.clear()
        self._write(record)
        return metrics

    def _write(self, record: results.EvalRecord) -> None:
        results.append_eval(self.dir, record)
        self.evals_written += 1
        metrics = record.metrics
        groups = ''.join(
            f' val_accuracy_{g}:{metrics.get(f"validation/accuracy_{g}", float("nan")):.4f}'
            for g in self.groups
        )
        self.log(
            f'step:{record.step} sim_time:{record.submission_time_s:.0f}s '
            f'val_accuracy:{metrics.get("validation/accuracy", float("nan")):.4f}{groups} '
            f'val_loss:{metrics.get("validation/loss", float("nan")):.4f} '
            f'compute_time:{record.extra["compute_time_s"]:.1f}s '
            f'wall_time:{record.wall_time_s:.1f}s'
            + (f' ({record.extra["eval_kind"]})' if record.extra['eval_kind'] != 'regular' else '')
        )

    # ---- snapshots and the search ----------------------------------------------------

    def snapshot_now(self, wall_time_s: float) -> None:
        """Keep the current server model while the target is open (after a server update)."""
        version = self.backend.version
        if self.first_reach is not None or not self.snapshots.wants(version):
            return
        self.snapshots.add(Snapshot(
            step=version, submission_time_s=self.version_time_s,
            examples_seen=self.backend.examples_delivered, wall_time_s=wall_time_s,
            params=self.workload.tree_to_numpy(self.backend.eval_params()), model_state=None,
            extra={'compute_time_s': self.backend.compute_time_s, 'counts': self._counts_now()},
        ))

    def _refine(self, hit: results.EvalRecord) -> Dict[str, Any]:
        """The first evaluated model meeting the target, by bisection over the window's
        snapshots; writes the probes' records (``eval_kind: refine``) in training order,
        before ``hit``'s."""
        miss = self.last_miss
        window: List[Snapshot] = [
            s for s in self.snapshots.snapshots if miss['step'] < s.step < hit.step
        ]
        probed: Dict[int, results.EvalRecord] = {}

        def probe(index: int) -> bool:
            snap = window[index]
            metrics = self._eval_clients(self.workload.tree_from_numpy(snap.params), snap.step)
            metrics.update(snap.extra['counts'])
            probed[index] = results.EvalRecord(
                step=snap.step, submission_time_s=snap.submission_time_s,
                wall_time_s=snap.wall_time_s, eval_time_s=self.eval_time_s,
                examples_seen=snap.examples_seen, metrics=metrics, kind='refine',
                extra={'compute_time_s': snap.extra['compute_time_s'], 'eval_kind': 'refine'},
            )
            return self._meets(metrics)

        live = self._last_eval  # the live model's numbers stay the ones to reuse
        # The hit's model was made before the evaluation that saw it: its time is then.
        hit_time_s = self.version_time_s
        lo, hi = bisect_first_hit([s.step for s in window],
                                  [s.submission_time_s for s in window],
                                  miss['time_s'], hit_time_s, probe)
        self._last_eval = live
        for index in sorted(probed):
            self._write(probed[index])
        self.extra_evals += len(probed)
        found = probed[hi] if hi < len(window) else hit
        found_time_s = found.submission_time_s if hi < len(window) else hit_time_s
        miss_time_s = window[lo].submission_time_s if lo >= 0 else miss['time_s']
        return {
            'time_s': found_time_s,
            'step': found.step,
            'examples': found.examples_seen,
            'resolution_s': found_time_s - miss_time_s,
            'snapshot_spacing': self.snapshots.spacing,
        }

    def group_shares(self) -> Dict[str, float]:
        return group_shares(self.sim.counts, list(self.groups))


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


def no_miss_yet() -> Dict[str, Any]:
    """The window's start before any evaluation: the initial model, at time 0."""
    return {'step': 0, 'time_s': 0.0}

