"""The ``ctr`` workload, framework-free: sizes, variants, targets, data, metrics.

Click-through-rate prediction with DCN-V2 (see ``model.py``). The loss, written
once as math (``jax_impl`` and ``torch_impl`` implement exactly this):

    per_example_i = w_i [max(z_i, 0) - z_i y~_i + log(1 + exp(-|z_i|))]
    y~_i = y_i (1 - s) + s / 2        (label smoothing s, 0 by default)

which is -[y~ log σ(z) + (1 - y~) log(1 - σ(z))] computed without overflow;
``summed`` = Σ per_example, ``n_valid_examples`` = Σ w_i (w = mask, 1 without).

Metrics (numpy, ``metrics.py``), each on a fixed set of rows: ``loss`` (mean
log loss, the target, lower is better), ``normalized_entropy`` (log loss over
the entropy of the training click rate, He et al. 2014; 1 = predicting the
base rate), ``auc`` (ROC AUC) and ``calibration`` (Σ predicted probability /
Σ clicks; 1 is calibrated), for ``validation`` and for an equally large
strided subset of ``train``.

Variants keep the budget of their size and set their own target:
``lowrank`` (cross layers W ≈ U Vᵀ, rank D/4), ``moe`` (4 low-rank experts of
rank D/8 with softmax gates), ``parallel`` (cross ‖ deep), and the data
variants ``synthetic`` (generated, Criteo schema) and ``criteo`` (your Criteo
files). Without a data variant, ``tiny`` trains on MovieLens-100k and ``base``
on the synthetic set (MovieLens cannot fill a million-row table or a GPU).
"""

from __future__ import annotations

import abc
from typing import Dict, Optional, Tuple

import numpy as np

from harness import spec
from harness.errors import UserInputError, unknown_name_error
from workloads.ctr import criteo_reader, data, metrics, movielens, synthetic
from workloads.ctr.model import ModelConfig, flops_per_example

SIZES = ('tiny', 'base')
MODEL_VARIANTS = ('lowrank', 'moe', 'parallel')
DATA_VARIANTS = ('synthetic', 'criteo')
VARIANTS = MODEL_VARIANTS + DATA_VARIANTS

# Width of the network per size. The embedding width is chosen per data schema
# so that x0 is about 500 wide at tiny: MovieLens has 8 categorical features
# (D = 23 + 8 x 64 = 535), the Criteo schema 26 (D = 13 + 26 x 16 = 429).
# tiny holds ~3M dense parameters, like the lm workload's tiny; smaller
# networks reach the MovieLens target within a few seconds on 2 cores, too
# soon for a 10 s eval period to see it before they overfit.
_SIZE_MODEL = {
    'tiny': dict(num_cross_layers=3, deep_widths=(1024, 1024, 512)),
    'base': dict(num_cross_layers=3, deep_widths=(1024, 1024, 512)),
}
_EMBED_DIM = {
    ('tiny', 'movielens'): 64,
    ('tiny', 'criteo-schema'): 16,
    ('base', 'movielens'): 64,
    ('base', 'criteo-schema'): 32,
}
# Rows of each Criteo table per size (the prepared ids are folded modulo this).
_CRITEO_TABLE_CAP = {'tiny': 1 << 14, 'base': 1 << 20}
_DEFAULT_BATCH = {'tiny': 256, 'base': 8192}
_EVAL_BATCH = {'tiny': 4096, 'base': 1 << 15}

# Targets and budgets (validation log loss; submission seconds) per size, for
# the reference hardware of each: tiny = a 2-core CPU, base = one GPU.
#
# tiny, measured with `python -m workloads.ctr.measure` (the adamw baseline's
# recipe: lr 2e-3, weight decay 0.03, warmup + cosine over step_hint, batch
# 256), seed 0, on 2 cores (taskset) of an Intel Xeon host, first-step
# compilation included, evals every 10 s:
#   variant      step ms jax/torch  best val loss  first eval <= target, jax/torch
#   (movielens)  36 / 44            0.555 / 0.550  20 s / 20 s   (AUC 0.79, calib 1.01)
#   lowrank      36 / 50            0.552 / 0.553  20 s / 20 s
#   moe          56 / 61            0.553 / 0.551  30 s / 30 s
#   parallel     36 / 57            0.550 / 0.547  20 s / 20 s
#   synthetic    32 / 49            0.328 / 0.346  60 s / 70 s   (AUC 0.89-0.90)
# (moe in this table had the earlier mixture without g and C; recheck below.)
# synthetic's Bayes-optimal validation log loss (the true probabilities' expected
# log loss, recorded by prepare in meta.json) is 0.188 at tiny and 0.209 at base:
# the targets 0.360 / 0.390 sit ~0.17 above it.
# MovieLens target, recalibrated 2026-12-06 (the earlier 0.565 sat 0.01 above the
# best loss, inside the eval-to-eval jitter). Validation loss against steps, on
# the 2-core Intel Xeon VM above while other jobs loaded it (load average ~7:
# step times 2-10x the quiet ones, so only losses against steps were used):
#   for s in 0 1 2; do for fw in jax pytorch; do python -m workloads.ctr.measure \
#     --framework $fw --size tiny --data-dir DIR --eval-every-steps 50 \
#     --max-train-s 100000 --seed $s; done; done       (pytorch seed 2 not run)
#   run          best (step)    level held for 300 steps   sd of loss, steps 300-900
#   jax s0       0.5470 (600)   0.5609 (300-600)           0.012
#   jax s1       0.5468 (900)   0.5618 (400-700)           0.008
#   jax s2       0.5502 (750)   0.5606 (450-750)           0.004
#   pytorch s0   0.5469 (600)   0.5637 (300-600)           0.013
#   pytorch s1   0.5468 (900)   0.5637 (400-700)           0.008
# Same seed, same init and data order: JAX and PyTorch trace the same curve.
# The loss jumps by up to 0.044 at the start of each epoch (312 steps; it
# overfits from ~900 steps and reaches 0.62 by step 1500), so the best value is
# seen only by an eval that happens to land before an epoch ends. A 10 s eval
# period is ~280 steps (JAX) / ~230 (PyTorch) on the quiet machine, so the
# target must hold for 300 consecutive steps: the highest such level is 0.564,
# and the target adds ~0.011 (one sd of the loss there): 0.575. Every run first
# meets it at step 200 (~8 s of training on the quiet machine, so at the first
# or second eval), and 12-15 of the 20 evals of its first 1000 steps do; the
# 90 s budget stays (>= 3x the time to target). The lowrank, moe and parallel
# variants share the data and its epoch jumps (best 0.547-0.553 above) and take
# the same target (moe rechecked below; lowrank and parallel not remeasured).
# moe recheck with the published mixture (JAX seed 0, the loop above with
# --variant moe): best 0.5528 (step 900), level held for 300 steps 0.5664
# (300-600), first at or below 0.575 at step 200, 15 of its first 20 evals.
# The harness's own procedure, to re-run on a quiet machine:
# `timetrial calibrate ctr --size tiny` (then per variant with --variant).
# `synthetic` has 500k fresh rows and keeps improving over the budget.
# criteo (tiny and base) and every base entry are uncalibrated: no Criteo data
# here, and base was measured only for the default (synthetic-base, one H100:
# val loss 0.382 after one epoch = 977 steps of 8192, 16 s with JAX's 10 s
# compile; torch 0.390 at 1234 steps, 25 s; both overfit after 2 epochs). Run
# `timetrial calibrate ctr --size base` on your GPU.
_MOVIELENS_TINY = dict(max_allowed_runtime_sec=90.0, eval_period_time_sec=10.0, step_hint=1500)
_BASE = dict(max_allowed_runtime_sec=120.0, eval_period_time_sec=10.0, step_hint=2000)
BUDGETS: Dict[tuple, spec.Budget] = {
    ('tiny', None): spec.Budget(validation_target_value=0.575, **_MOVIELENS_TINY),
    ('tiny', 'lowrank'): spec.Budget(validation_target_value=0.575, **_MOVIELENS_TINY),
    ('tiny', 'moe'): spec.Budget(validation_target_value=0.575, **_MOVIELENS_TINY),
    ('tiny', 'parallel'): spec.Budget(validation_target_value=0.575, **_MOVIELENS_TINY),
    ('tiny', 'synthetic'): spec.Budget(
        0.360, max_allowed_runtime_sec=180.0, eval_period_time_sec=10.0, step_hint=3000
    ),
    # Criteo's reported full-training DCN-V2 log loss is 0.4406 (arXiv:2008.13535).
    ('tiny', 'criteo'): spec.Budget(
        0.470, max_allowed_runtime_sec=600.0, eval_period_time_sec=60.0, step_hint=10000
    ),
    ('base', None): spec.Budget(validation_target_value=0.390, **_BASE),
    ('base', 'lowrank'): spec.Budget(validation_target_value=0.390, **_BASE),
    ('base', 'moe'): spec.Budget(validation_target_value=0.390, **_BASE),
    ('base', 'parallel'): spec.Budget(validation_target_value=0.390, **_BASE),
    ('base', 'synthetic'): spec.Budget(validation_target_value=0.390, **_BASE),
    ('base', 'criteo'): spec.Budget(
        0.450, max_allowed_runtime_sec=1800.0, eval_period_time_sec=60.0, step_hint=20000
    ),
}


def source_of(size: str, variant: Optional[str]) -> str:
    return data.source_for(size, variant)


def _tables(size: str, source: str):
    """(number of dense features, rows of each embedding table)."""
    if source == 'movielens':
        return len(movielens.DENSE_FEATURES), tuple(movielens.SPARSE_FEATURES.values())
    if source == 'criteo':
        cap = _CRITEO_TABLE_CAP[size]
        return 13, tuple(min(v, cap) for v in criteo_reader.CRITEO_VOCAB_SIZES)
    gen = synthetic.SPECS[source.split('-', 1)[1]]
    return 13, tuple(int(c) for c in synthetic.cardinalities(gen))


def model_config(size: str, variant: Optional[str]) -> ModelConfig:
    source = source_of(size, variant)
    num_dense, tables = _tables(size, source)
    schema = 'movielens' if source == 'movielens' else 'criteo-schema'
    kwargs = dict(
        _SIZE_MODEL[size],
        embed_dim=_EMBED_DIM[size, schema],
        num_dense=num_dense,
        table_sizes=tables,
    )
    width = ModelConfig(**kwargs).input_dim
    if variant == 'lowrank':
        kwargs.update(cross='lowrank', rank=max(1, width // 4))
    elif variant == 'moe':
        kwargs.update(cross='moe', rank=max(1, width // 8), num_experts=4)
    elif variant == 'parallel':
        kwargs.update(structure='parallel')
    return ModelConfig(**kwargs)


class CtrWorkload(spec.Workload):
    """Framework-free part of ``ctr``; ``jax_impl`` and ``torch_impl`` add the model."""

    name = 'ctr'
    sizes = SIZES
    variants = VARIANTS

    def __init__(
        self,
        size: Optional[str] = None,
        variant: Optional[str] = None,
        budget: Optional[spec.Budget] = None,
        *args,
        **kwargs,
    ):
        super().__init__(size, variant, budget, *args, **kwargs)
        self.config = model_config(self.size, variant)
        self.source = source_of(self.size, variant)
        self._data: Optional[data.CtrData] = None

    # ---- budget, sizes, counts --------------------------------------------------

    def default_budget(self, size: Optional[str], variant: Optional[str]) -> spec.Budget:
        if size not in SIZES:
            raise unknown_name_error("size of workload 'ctr'", str(size), SIZES)
        if variant is not None and variant not in VARIANTS:
            raise unknown_name_error("variant of workload 'ctr'", str(variant), VARIANTS)
        return BUDGETS[(size, variant)]

    @property
    def target_metric_name(self) -> str:
        return 'loss'

    @property
    def loss_type(self) -> spec.LossType:
        return spec.LossType.SIGMOID_CROSS_ENTROPY

    @property
    def default_batch_size(self) -> int:
        return _DEFAULT_BATCH[self.size]

    @property
    def eval_batch_size(self) -> int:
        return _EVAL_BATCH[self.size]

    def _counts(self):
        """(train rows, validation rows) of the source, from its definition or its meta."""
        if self.source == 'movielens':
            return movielens.NUM_TRAIN, movielens.NUM_VALIDATION
        if self.source.startswith('synthetic-'):
            gen = synthetic.SPECS[self.source.split('-', 1)[1]]
            return gen.num_train, gen.num_validation
        if self._data is None:
            raise ValueError(
                'The criteo example counts are known once the data is opened '
                '(eval_model or _build_input_queue with its data_dir).'
            )
        return self._data.num_train, self._data.num_rows - self._data.num_train

    @property
    def num_train_examples(self) -> int:
        return self._counts()[0]

    @property
    def num_validation_examples(self) -> int:
        return min(self._counts()[1], data.MAX_EVAL_EXAMPLES)

    def flops_per_example(self) -> float:
        return flops_per_example(self.config)

    def eval_metric_keys(self):
        return [
            'validation/loss',
            'validation/normalized_entropy',
            'validation/auc',
            'validation/calibration',
            'train/loss',
        ]

    # ---- data ---------------------------------------------------------------------

    def check_data(self, data_dir: str) -> None:
        data.check_prepared(data_dir, self.source)

    def _open(self, data_dir) -> data.CtrData:
        directory = data.check_prepared(data_dir, self.source)
        if self._data is None or self._data.directory != directory:
            self._data = data.CtrData(directory)
            expected = self.config.num_dense, len(self.config.table_sizes)
            found = self._data.dense.shape[1], self._data.sparse.shape[1]
            if expected != found:
                raise UserInputError(
                    f'{directory} holds {found[0]} dense and {found[1]} categorical features, '
                    f'the ctr model expects {expected[0]} and {expected[1]}: re-run '
                    f'`{data.prepare_command(self.source)} --data-dir {data_dir}`.'
                )
        return self._data

    def _numpy_train_batches(self, seed: int, data_dir, global_batch_size: int):
        return data.TrainBatches(
            self._open(data_dir), seed, global_batch_size, self.config.table_sizes
        )

    # ---- evaluation ---------------------------------------------------------------

    @abc.abstractmethod
    def _eval_logits(self, params, model_state, inputs: np.ndarray) -> np.ndarray:
        """Logits (B,) of one padded eval batch, gathered to the host as float32."""

    def _split_logits(self, params, model_state, data_dir, split: str):
        """(labels, logits) over the split's fixed eval rows, in row order."""
        ctr_data = self._open(data_dir)
        rows = ctr_data.eval_rows(split, self.num_validation_examples)
        logits = [
            self._eval_logits(params, model_state, batch['inputs'])
            for batch in data.eval_batches(
                ctr_data, rows, self.eval_batch_size, self.config.table_sizes
            )
        ]
        logits = np.concatenate(logits)[: len(rows)]
        return np.asarray(ctr_data.labels[rows]), logits

    def _evaluate(self, params, model_state, data_dir,
                  splits: Tuple[str, ...] = ('train', 'validation')) -> Dict[str, float]:
        results = {}
        base_rate = self._open(data_dir).train_click_rate
        for split in splits:
            labels, logits = self._split_logits(params, model_state, data_dir, split)
            for key, value in metrics.ctr_metrics(labels, logits, base_rate).items():
                results[f'{split}/{key}'] = value
        return results

    def eval_target_split(self, global_batch_size, params, model_state, rng, data_dir,
                          global_step) -> Dict[str, float]:
        # The train subset is as large as the validation split: a probe skips it.
        del global_batch_size, rng, global_step
        return self._evaluate(params, model_state, data_dir, splits=('validation',))

    def validation_predictions(self, params, model_state, data_dir) -> np.ndarray:
        """Click probabilities (float32) of the validation rows, in their fixed order.

        The harness saves them at the end of a trial; the replica prediction
        difference compares them between identically trained replicas.
        """
        _, logits = self._split_logits(params, model_state, data_dir, 'validation')
        return metrics.sigmoid(logits).astype(np.float32)

    def _check_split(self, split: str) -> None:
        if split != 'train':
            raise ValueError(
                f'ctr builds input queues for the train split only, not '
                f'{split!r}: evaluation reads its fixed rows in eval_model.'
            )


def numpy_loss(label_batch, logits_batch, mask_batch=None, label_smoothing: float = 0.0):
    """The loss of the module docstring in numpy (the reference for both frameworks)."""
    y = np.asarray(label_batch, np.float64)
    y = y * (1.0 - label_smoothing) + 0.5 * label_smoothing
    per_example = metrics.sigmoid_cross_entropy(y, logits_batch)
    mask = np.ones_like(per_example) if mask_batch is None else np.asarray(mask_batch)
    per_example = per_example * mask
    return {'summed': per_example.sum(), 'n_valid_examples': mask.sum(), 'per_example': per_example}
