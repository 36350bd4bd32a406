"""The federated search for the first server update meeting the target, and the straggler shares."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np

from harness import results
from harness.trial.federated import evaluation
from harness.trial.federated.evaluation import group_shares
from harness.trial.snapshots import SnapshotBuffer

ACCURACY = results.Target(metric='validation/accuracy', value=0.5, mode='max')


class _Fake:
    """What the Evaluation mixin reads of the runner: a model whose accuracy is a table
    of its server version (the params are the version), on a clock of 100 s an update."""

    def __init__(self, tmp_path, accuracy, target=0.5):
        self.accuracy, self.evaluated = accuracy, []
        self.dir, self.groups = tmp_path, {}
        self.first_reach, self.last_miss = None, evaluation.no_miss_yet()
        self.extra_evals, self.eval_time_s, self.evals_written = 0, 0.0, 0
        self.snapshots = SnapshotBuffer(2**20)
        self._last_eval = None
        self.version_time_s = 0.0
        self.contention = SimpleNamespace(start=lambda: None, stop=lambda: None)
        self.sim = SimpleNamespace(counts={'dispatched': 0}, clock_s=0.0)
        self.backend = SimpleNamespace(version=0, examples_delivered=0, compute_time_s=0.0,
                                       take_window=dict, eval_params=lambda: self.backend.version)
        self.workload = SimpleNamespace(
            eval_clients=self._eval, tree_to_numpy=np.asarray, tree_from_numpy=int,
            has_reached_validation_target=lambda m: m['validation/accuracy'] >= target)
        self.target = lambda: ACCURACY
        self.log = lambda line: None

    def _eval(self, params, groups):
        self.evaluated.append(int(params))
        return {'validation/accuracy': self.accuracy[int(params)], 'validation/loss': 1.0}

    def group_shares(self):
        return {}

    def update(self):
        self.backend.version += 1
        self.sim.clock_s = self.version_time_s = 100.0 * self.backend.version
        self.snapshot_now(wall_time_s=self.sim.clock_s)


class _Runner(evaluation.Evaluation, _Fake):
    """The mixin under test on the fake runner's state."""


def test_the_first_evaluated_update_meeting_the_target_is_found_by_bisection(tmp_path):
    # Versions 1..20; the target (0.5) is first met at version 13, never left after.
    accuracy = {v: (0.1 if v < 13 else 0.6) for v in range(21)}
    run = _Runner(tmp_path, accuracy)
    for _ in range(8):
        run.update()
    run.evaluate(800.0, 800.0, 'regular')       # a miss at version 8: the window starts
    assert run.last_miss == {'step': 8, 'time_s': 800.0} and not run.snapshots.snapshots
    for _ in range(12):
        run.update()
    run.evaluate(2000.0, 2000.0, 'regular')     # met at version 20
    assert run.first_reach['step'] == 13 and run.first_reach['time_s'] == 1300.0
    assert run.first_reach['resolution_s'] == 100.0
    rows = results.read_jsonl(tmp_path / results.EVALS_JSONL)
    assert [r['step'] for r in rows] == sorted(r['step'] for r in rows)  # training order
    assert [r['eval_kind'] for r in rows] == (
        ['regular'] + ['refine'] * run.extra_evals + ['regular'])
    assert [r.get('kind') for r in rows] == [None] + ['refine'] * run.extra_evals + [None]
    assert 12 in [r['step'] for r in rows] and run.extra_evals <= 4  # log2(11 models) probes
    # The same version is not evaluated twice: a regular evaluation with no new model
    # reuses the numbers.
    run.evaluate(2100.0, 2100.0, 'regular')
    assert run.evaluated.count(20) == 1


def test_a_window_without_kept_models_keeps_the_regular_time(tmp_path):
    run = _Runner(tmp_path, {v: 0.1 * v for v in range(10)})
    run.snapshots = SnapshotBuffer(0)           # no memory for models: nothing to search
    for _ in range(6):
        run.update()
    run.evaluate(650.0, 650.0, 'regular')
    # Seen at 650 s, made at 600 s: the model's time is when it was made.
    assert run.first_reach == {'time_s': 600.0, 'step': 6, 'examples': 0,
                               'resolution_s': 600.0, 'snapshot_spacing': 1}
    assert run.extra_evals == 0


def test_group_shares():
    counts = {
        'dispatched': 10,
        'dispatched_fast': 8,
        'dispatched_stragglers': 2,
        'delivered': 4,
        'delivered_fast': 3,
        'delivered_stragglers': 1,
        'delivered_on_time': 0,
        'delivered_on_time_fast': 0,
        'delivered_on_time_stragglers': 0,
    }
    shares = group_shares(counts, ['fast', 'stragglers'])
    assert shares['dispatched_share_stragglers'] == 0.2
    assert shares['delivered_share_fast'] == 0.75
    assert math.isnan(shares['delivered_on_time_share_stragglers'])
