"""workloads/_common: shape/type trees, weight loading, mapped batch iterators (used by lm first)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from harness import spec
from workloads._common import param_trees, torch_utils
from workloads._common.batches import MappedBatches


def test_shape_and_type_trees_follow_the_structure():
    tree = {'dense': {'kernel': np.zeros((3, 4)), 'bias': np.zeros(4)}, 'scale': np.ones(2)}
    shapes = param_trees.shape_tree(tree)
    assert shapes == {
        'dense': {'kernel': spec.ShapeTuple((3, 4)), 'bias': spec.ShapeTuple((4,))},
        'scale': spec.ShapeTuple((2,)),
    }

    def type_of(path):
        return spec.ParameterType.BIAS if path.endswith('bias') else spec.ParameterType.WEIGHT

    types = param_trees.type_tree(tree, type_of)
    assert types['dense']['bias'] == spec.ParameterType.BIAS
    assert types['scale'] == spec.ParameterType.WEIGHT
    assert param_trees.count_params(tree) == 12 + 4 + 2
    flat = {'a.weight': np.zeros((2, 2))}  # torch style: a flat dict keyed by parameter name
    assert param_trees.type_tree(flat, type_of) == {'a.weight': spec.ParameterType.WEIGHT}


def test_load_numpy_params_reports_every_problem():
    module = torch.nn.Linear(3, 2)
    with pytest.raises(ValueError) as err:
        torch_utils.load_numpy_params(module, {'weight': np.zeros((3, 2)), 'extra': np.zeros(1)})
    message = str(err.value)
    assert 'missing: bias' in message and 'unexpected: extra' in message
    assert 'weight: module has shape (2, 3), array has (3, 2)' in message
    torch_utils.load_numpy_params(module, {'weight': np.ones((2, 3)), 'bias': np.arange(2.0)})
    np.testing.assert_array_equal(torch_utils.module_to_numpy(module)['bias'], [0.0, 1.0])


class _Counter(spec.BatchIterator):
    def __next__(self):
        value = self.position
        self.position += 1
        return {'x': np.array([value])}


def test_mapped_batches_share_the_inner_position():
    mapped = MappedBatches(_Counter(), lambda b: {'x': b['x'] * 10})
    assert next(mapped)['x'][0] == 0 and next(mapped)['x'][0] == 10
    assert mapped.state_dict() == {'position': 2}
    mapped.load_state_dict({'position': 7})
    assert next(mapped)['x'][0] == 70 and mapped.inner.position == 8


def test_torch_to_device_casts_per_key():
    batch = torch_utils.to_device({'inputs': np.arange(4, dtype=np.int32)}, {'inputs': torch.int64})
    assert batch['inputs'].dtype == torch.int64
    assert batch['inputs'].device == torch_utils.device()
