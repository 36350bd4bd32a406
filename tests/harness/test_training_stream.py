"""The input queue a submission draws from: counted as drawn, and no way to the data behind."""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest

from harness.submission import view as view_mod
from harness.trial.run import run_trial
from tests.harness import toy


class _Batches:
    def __init__(self):
        self.position = 0
        self.tokens = np.memmap  # stands in for a workload's data file handle

    def __next__(self):
        self.position += 1
        return {'inputs': np.zeros((4, 3)), 'targets': np.zeros(4)}

    def state_dict(self):
        return {'position': self.position}

    def load_state_dict(self, state):
        self.position = state['position']


def test_draws_are_counted_and_the_iterator_stays_out_of_reach():
    stream = view_mod.TrainingStream(_Batches())
    next(stream), next(stream)
    assert view_mod.drawn_since_last(stream) == 8
    assert view_mod.drawn_since_last(stream) == 0
    assert view_mod.stream_state(stream) == {'position': 2}
    for route in (lambda: stream.tokens, lambda: stream.__dict__, lambda: vars(stream),
                  lambda: object.__getattribute__(stream, '_queue')):
        with pytest.raises((AttributeError, TypeError)):
            route()
    assert object.__getattribute__(stream, '_n') in view_mod._STREAMS  # a number, nothing more
    for route in (lambda: pickle.dumps(stream), lambda: copy.copy(stream),
                  lambda: copy.deepcopy(stream)):
        with pytest.raises(TypeError, match='cannot be pickled or copied'):
            route()
    with pytest.raises(AttributeError, match='may not set'):
        stream.position = 0


def test_a_pool_drawn_and_partly_used_counts_in_full(toy_env, monkeypatch):
    """Examples to target count every example drawn: a submission that draws two batches
    and trains on one has seen both."""
    make_config, loaded = toy_env
    toy.COSTS.update(step=0.01)

    def pool_selection(workload, input_queue, optimizer_state, current_param_container,
                       model_state, hyperparameters, global_step, rng):
        first, _ = next(input_queue), next(input_queue)
        return first

    monkeypatch.setattr(loaded, 'data_selection', pool_selection)
    result = run_trial(make_config(max_steps=5, stop_at_target=False), clock=toy.CLOCK,
                       wall_clock=toy.CLOCK)
    assert result['final_step'] == 5
    assert result['examples_seen'] == 5 * 2 * 8
