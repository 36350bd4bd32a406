"""Evaluation for the timed runner: off the clock, and the time to target to one snapshot.

A regular evaluation runs every ``eval_period_time_sec`` of submission time
and at the end (AlgoPerf's rule). Between two of them the runner keeps
timestamped snapshots of the state (``harness.trial.snapshots``). When a
regular evaluation finds the target met for the first time, the snapshots
taken since the last evaluated point that missed it are searched by
bisection — each probe restores a snapshot, runs the submission's
``prepare_for_eval`` on it (timed: it would have been on the clock had the
evaluation happened there) and evaluates the target's split on it
(``Workload.eval_target_split``: a probe needs no train metrics) — until the
first evaluated point meeting the target in training order is within max(1 %
of its time, one snapshot) of an evaluated point that missed. The time to
target is that point's clock reading; ``time_to_target_resolution_s`` is the
clock between it and the miss before it; every probe is an extra evaluation,
written to evals.jsonl (``kind: refine``) before the regular one, so the file
stays in training order. Probing never changes the trajectory:
the live state is put back exactly (as a resume restores it) before training
or the trial's end goes on.

Bisection (on the step grid: ``_dyadic_midpoint``) finds a boundary between a
miss and a hit; if the metric crosses the target several times inside one
window, the point found is still the
first *evaluated* point meeting it in training order (every evaluated point
before it missed), which is the rule; the resolution says how far the
previous evaluated miss is.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from harness import results
from harness.errors import call_submission
from harness.trial.snapshots import Snapshot


#: The search stops once the gap between the miss and the hit is at most this share of the
#: hit's time (or the two are adjacent snapshots): max(1 % of the time, one step).
RELATIVE_RESOLUTION = 0.01


class Evaluation:
    """Mixed into TrialRunner: its state (clock, backend, counters, snapshots) is ``self``'s."""

    # ---- measuring -----------------------------------------------------------

    def _eval_rng_for(self, step: int):
        """The evaluation rng of the point after ``step`` steps: a function of the step alone,
        so a resumed trial and a probe of a snapshot evaluate as the first pass would."""
        return self.backend.step_rngs(self.base_rng, step)[2]

    def _prepare(self, params, model_state, opt_state, step: int) -> Tuple[Any, Any, Any, float]:
        """The submission's prepare_for_eval, timed (seconds agreed over DDP ranks)."""
        if self.sub.prepare_for_eval is None:
            return opt_state, params, model_state, 0.0
        t0 = self.clock()
        out = call_submission(
            'prepare_for_eval', self.sub.prepare_for_eval, workload=self.view,
            current_param_container=params,
            current_params_types=self.workload.model_params_types,
            model_state=model_state, hyperparameters=self.hparams,
            loss_type=self.workload.loss_type, optimizer_state=opt_state,
            eval_results=list(self.c.eval_results), global_step=step,
            rng=self._eval_rng_for(step))
        opt_state, params, model_state = out
        self.backend.sync(params, opt_state, model_state)
        return opt_state, params, model_state, self._agreed_time(t0)

    def _measure(self, params, model_state, step: int,
                 target_split_only: bool = False) -> Tuple[Dict[str, float], float]:
        """The workload's metrics (off the clock) and how long the evaluation took.

        A probe of a snapshot needs only the target's split (``target_split_only``).
        """
        t0 = self.clock()
        if target_split_only:
            metrics = self.workload.eval_target_split(
                self.workload.eval_batch_size, params, model_state, self._eval_rng_for(step),
                self.data_dir, step)
        else:
            metrics = self.workload.eval_model(
                self.workload.eval_batch_size, params, model_state, self._eval_rng_for(step),
                self.data_dir, None, step)
        # Every DDP rank evaluates; the writer's numbers decide for all.
        metrics = self.backend.from_writer({k: float(v) for k, v in metrics.items()})
        duration_s = self.clock() - t0
        self.c.eval_time_s += duration_s
        return metrics, duration_s

    def _meets(self, metrics: Dict[str, float], time_s: float) -> bool:
        return time_s <= self.budget_s and self.workload.has_reached_validation_target(metrics)

    def _write(self, record: results.EvalRecord) -> None:
        self.c.num_evals += 1
        if self.backend.is_writer:
            results.append_eval(self.trial_dir, record)

    def _record(self, *, step, submission_time_s, examples_seen, wall_time_s, metrics,
                duration_s, teacher_time_s, reported, kind=None) -> results.EvalRecord:
        return results.EvalRecord(
            step=step, submission_time_s=submission_time_s, wall_time_s=wall_time_s,
            eval_time_s=self.c.eval_time_s, examples_seen=examples_seen, metrics=metrics,
            eval_duration_s=duration_s,
            tokens_seen=examples_seen * self.workload.tokens_per_example,
            checkpoint_time_s=self.c.checkpoint_time_s, teacher_time_s=teacher_time_s,
            reported_metrics=reported, kind=kind)

    # ---- snapshots -----------------------------------------------------------

    def _snapshot_now(self, with_optimizer: bool) -> Snapshot:
        t0 = self.wall_clock()
        snap = Snapshot(
            step=self.c.step, submission_time_s=self.c.submission_time_s,
            examples_seen=self.c.examples_seen, wall_time_s=self._wall_time_s(),
            params=self.backend.params_to_host(self.params),
            model_state=self.backend.state_to_host(self.model_state),
            optimizer_state=(self.backend.state_to_host(self.opt_state)
                             if with_optimizer else None),
            teacher_time_s=self._teacher_time_s(), reported=self._reported())
        self.c.snapshot_time_s += self.wall_clock() - t0
        return snap

    def _maybe_snapshot(self) -> None:
        """After a step that no evaluation follows: keep the state while the target is open."""
        if self.c.reached is None and self.snapshots.wants(self.c.step):
            self.snapshots.add(self._snapshot_now(self.sub.prepare_for_eval is not None))

    def _restore(self, snap: Snapshot) -> Tuple[Any, Any, Any]:
        """(opt_state, params, model_state) of ``snap``, loaded into the live objects."""
        params = self.backend.params_from_host(snap.params, self.params)
        model_state = self.backend.state_from_host(snap.model_state, self.model_state)
        opt_state = (self.backend.state_from_host(snap.optimizer_state, self.opt_state)
                     if snap.optimizer_state is not None else self.opt_state)
        return opt_state, params, model_state

    # ---- the regular evaluation ---------------------------------------------

    def _evaluate(self) -> bool:
        """Evaluate now; return True if the trial ends here (target met, diverged)."""
        ended = self._evaluate_and_decide()
        if not ended:
            self.contention.start()   # the next training window
        return ended

    def _evaluate_and_decide(self) -> bool:
        self.contention.stop()        # evaluation is off the clock: not a training window
        self.opt_state, self.params, self.model_state, prep_s = self._prepare(
            self.params, self.model_state, self.opt_state, self.c.step)
        self.c.submission_time_s += prep_s
        metrics, duration_s = self._measure(self.params, self.model_state, self.c.step)
        self.c.last_eval_submission_time_s = self.c.submission_time_s
        self.c.eval_results.append((self.c.step, metrics))
        record = self._record(
            step=self.c.step, submission_time_s=self.c.submission_time_s,
            examples_seen=self.c.examples_seen, wall_time_s=self._wall_time_s(),
            metrics=metrics, duration_s=duration_s, teacher_time_s=self._teacher_time_s(),
            reported=self._reported())

        losses = [k for k, v in metrics.items() if k.endswith('/loss') and not math.isfinite(v)]
        target_key = f'validation/{self.workload.target_metric_name}'
        if losses or not math.isfinite(metrics.get(target_key, 0.0)):
            self._write(record)
            self._log_eval(record)
            self.status = 'diverged'
            self.error = f'non-finite {", ".join(losses) or target_key} at step {self.c.step}'
            self.log(event='diverged', step=self.c.step)
            return True
        met = self.c.reached is None and self._meets(metrics, self.c.submission_time_s)
        if met:
            self.c.reached = self._refine(record)
        self._write(record)
        self._log_eval(record)
        if met:
            r = self.c.reached
            self.log(event='reached', step=r['step'], submission_time_s=r['time_s'],
                     resolution_s=r['resolution_s'], extra_evals=r['extra_evals'],
                     found_at_step=self.c.step)
            self.snapshots.clear()
            if self.config.stop_at_target:
                self.status = 'reached'
                return True
        elif self.c.reached is None:
            # A miss: the next window starts here.
            self.c.last_miss = {'step': self.c.step, 'time_s': self.c.submission_time_s}
            self.snapshots.clear()
        return False

    def _log_eval(self, record: results.EvalRecord) -> None:
        self.log(event='eval', step=record.step, submission_time_s=record.submission_time_s,
                 eval_duration_s=record.eval_duration_s, **record.metrics)
        self.on_event('eval', record.to_json())

    def _final_eval(self, status_if_not_reached: str) -> None:
        self._evaluate()
        if self.status is None:
            self.status = 'reached' if self.c.reached is not None else status_if_not_reached

    # ---- refining the first hit ---------------------------------------------

    def _refine(self, hit: results.EvalRecord) -> Dict[str, Any]:
        """The first evaluated point meeting the target, by bisection over the window's
        snapshots; writes the probes' records. ``hit`` is the regular evaluation that
        met it (the window's end)."""
        miss = self.c.last_miss
        window = [s for s in self.snapshots.snapshots if miss['step'] < s.step < hit.step]
        probed: List[Tuple[Snapshot, float, results.EvalRecord]] = []

        def probe(index: int) -> bool:
            snap = window[index]
            opt_state, params, model_state = self._restore(snap)
            _, params, model_state, prep_s = self._prepare(
                params, model_state, opt_state, snap.step)
            metrics, duration_s = self._measure(params, model_state, snap.step,
                                                target_split_only=True)
            time_s = snap.submission_time_s + prep_s
            probed.append((snap, time_s, self._record(
                step=snap.step, submission_time_s=time_s,
                examples_seen=snap.examples_seen, wall_time_s=snap.wall_time_s,
                metrics=metrics, duration_s=duration_s,
                teacher_time_s=snap.teacher_time_s, reported=snap.reported,
                kind='refine')))
            return self._meets(metrics, time_s)

        lo, hi = -1, len(window)
        if window:
            current = self._snapshot_now(with_optimizer=True)
            lo, hi = bisect_first_hit([s.step for s in window],
                                      [s.submission_time_s for s in window],
                                      miss['time_s'], hit.submission_time_s, probe)
            # Put the live state back, exactly (the trial may train on, and its final
            # checkpoint and predictions must hold the true final state).
            self.opt_state, self.params, self.model_state = self._restore(current)
        for _, _, record in sorted(probed, key=lambda p: p[0].step):
            self._write(record)
            self._log_eval(record)
        times = {id(s): t for s, t, _ in probed}
        if hi < len(window):
            snap = window[hi]
            found = {'time_s': times[id(snap)], 'step': snap.step, 'examples': snap.examples_seen,
                     'teacher_time_s': snap.teacher_time_s, 'reported': snap.reported}
        else:
            found = {'time_s': hit.submission_time_s, 'step': hit.step,
                     'examples': hit.examples_seen, 'teacher_time_s': hit.teacher_time_s,
                     'reported': hit.reported_metrics}
        miss_time_s = times[id(window[lo])] if lo >= 0 else miss['time_s']
        self.c.extra_evals += len(probed)
        found.update(resolution_s=found['time_s'] - miss_time_s, extra_evals=len(probed),
                     snapshot_spacing=self.snapshots.spacing)
        return found

    def _teacher_time_s(self) -> Optional[float]:
        """The teacher's time so far, as the harness's timer of the view measured it."""
        return None if self.teacher_timer is None else float(self.teacher_timer.time_s)

    def _reported(self) -> Optional[Dict[str, float]]:
        """The latest value of each metric the submission reported (e.g. SALT's stage)."""
        return dict(self.metrics_logger.last) or None


def bisect_first_hit(steps: Sequence[int], times_s: Sequence[float], miss_time_s: float,
                     hit_time_s: float, meets: Callable[[int], bool]) -> Tuple[int, int]:
    """Bisect one window between an evaluated miss and an evaluated hit; ``(lo, hi)``.

    ``steps`` and ``times_s`` are the window's snapshots (in step order, strictly between
    the miss and the hit); ``meets(i)`` evaluates snapshot ``i`` and says whether it meets
    the target. On return ``lo`` is the last evaluated miss (-1: the miss before the
    window) and ``hi`` the first evaluated hit after it (``len(steps)``: the hit that ends
    the window); they are adjacent, or closer than ``RELATIVE_RESOLUTION`` of the hit's
    time — the resolution the rule asks for, so no probe goes beyond it. The centralized
    and the federated runner both search this way.
    """
    def clock_s(index: int) -> float:
        if index < 0:
            return miss_time_s
        return times_s[index] if index < len(steps) else hit_time_s

    lo, hi = -1, len(steps)
    while hi - lo > 1 and clock_s(hi) - clock_s(lo) > RELATIVE_RESOLUTION * clock_s(hi):
        mid = _dyadic_midpoint(steps, lo, hi)
        if meets(mid):
            hi = mid
        else:
            lo = mid
    return lo, hi


def _dyadic_midpoint(steps: Sequence[int], lo: int, hi: int) -> int:
    """The index in (lo, hi) to probe next: the step with the most factors of two (the
    nearest to the middle among equals).

    Bisection over the steps of one window would probe points that depend on where the
    regular evaluations fell, which depends on the clock; with a metric that wobbles
    around the target, two runs of the same seed would then find different crossings.
    Probing on the step grid 2^k (a binary search over step numbers from step 0) makes
    the points probed, and so the step found, a function of the trajectory alone.
    """
    def rank(i: int) -> tuple:
        step = steps[i]
        twos = (step & -step).bit_length() if step else 64
        return (twos, -abs(2 * i - lo - hi))
    return max(range(lo + 1, hi), key=rank)
