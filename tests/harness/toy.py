"""A toy workload and submissions for driving the runner with a fake clock.

Linear regression in PyTorch, small enough to run hundreds of steps in a
second. Costs are charged to a FakeClock: a step costs ``STEP_COST_S``, the
first update an extra ``COMPILE_COST_S`` (as a JIT compile would), an
evaluation ``EVAL_COST_S``; the tests then check the runner's accounting.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from harness import spec


class FakeClock:
    def __init__(self):
        self.t = 0.0

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


CLOCK = FakeClock()
COSTS = {'step': 1.0, 'compile': 0.0, 'eval': 100.0, 'init': 0.0, 'data': 0.0, 'prepare': 0.0}

DIM = 4
TRUE_W = np.arange(1, DIM + 1, dtype=np.float32)


class ToyBatches(spec.BatchIterator):
    def __init__(self, seed: int, batch_size: int):
        self.seed, self.batch_size, self.position = seed, batch_size, 0

    def __next__(self):
        rng = np.random.default_rng([self.seed, self.position])
        self.position += 1
        x = rng.normal(size=(self.batch_size, DIM)).astype(np.float32)
        return {'inputs': torch.from_numpy(x), 'targets': torch.from_numpy(x @ TRUE_W)}


class ToyWorkload(spec.Workload):
    name = 'toy'
    framework = 'pytorch'
    sizes = ('tiny',)
    variants = ()
    BUDGET = spec.Budget(validation_target_value=1e-3, max_allowed_runtime_sec=20.0,
                         eval_period_time_sec=5.0, step_hint=20)

    def default_budget(self, size, variant):
        return self.BUDGET

    @property
    def target_metric_name(self):
        return 'loss'

    @property
    def loss_type(self):
        return spec.LossType.MEAN_SQUARED_ERROR

    @property
    def num_train_examples(self):
        return 10_000

    @property
    def eval_batch_size(self):
        return 64

    @property
    def num_validation_examples(self):
        return 64

    @property
    def default_batch_size(self):
        return 8

    def init_model_fn(self, rng):
        seed = int(np.asarray(rng)[-1])
        torch.manual_seed(seed)
        model = torch.nn.Linear(DIM, 1, bias=False)
        with torch.no_grad():
            model.weight.zero_()
        self._param_shapes = {'weight': spec.ShapeTuple((1, DIM))}
        self._param_types = {'weight': spec.ParameterType.WEIGHT}
        return model, None

    def model_fn(self, params, augmented_and_preprocessed_input_batch, model_state, mode, rng,
                 update_batch_norm, dropout_rate=None):
        return params(augmented_and_preprocessed_input_batch['inputs']).squeeze(-1), model_state

    def loss_fn(self, label_batch, logits_batch, mask_batch=None, label_smoothing=0.0):
        per = (logits_batch - label_batch) ** 2
        return {'summed': per.sum(), 'n_valid_examples': per.numel(), 'per_example': per}

    def _build_input_queue(self, data_rng, split, data_dir, global_batch_size, cache=None,
                           repeat_final_dataset=None, num_batches=None):
        return ToyBatches(int(np.asarray(data_rng)[-1]), global_batch_size)

    def eval_model(self, global_batch_size, params, model_state, rng, data_dir,
                   imagenet_v2_data_dir, global_step):
        CLOCK.advance(COSTS['eval'])
        with torch.no_grad():
            err = float(((params.weight.detach().numpy().ravel() - TRUE_W) ** 2).sum())
        return {'validation/loss': err if math.isfinite(err) else float('nan'),
                'train/loss': err}


INFO = spec.WorkloadInfo(name='toy', sizes=('tiny',), variants=(),
                         classes={'pytorch': 'tests.harness.toy:ToyWorkload'},
                         prepare='tests.harness.toy:prepare')


def prepare(data_dir, variant=None, source=None, log=print):
    log('toy data needs no preparation')
