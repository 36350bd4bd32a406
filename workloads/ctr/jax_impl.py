"""``ctr`` in JAX/flax: DCN-V2 and its glue. Reads side by side with torch_impl.py."""

from __future__ import annotations

from typing import Dict, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from harness import spec
from workloads._common import jax_utils, param_trees
from workloads._common.batches import MappedBatches
from workloads._common.rng import rng_to_seed
from workloads.ctr.model import ModelConfig, init_weights, param_type
from workloads.ctr.workload import CtrWorkload


class CrossLayer(nn.Module):
    """x0 ⊙ (W x + b) + x, W full or low-rank (U Vᵀ); or the gated mixture of low-rank experts."""

    cfg: ModelConfig

    @nn.compact
    def __call__(self, x0, x):  # (B, D), (B, D) -> (B, D)
        cfg, d = self.cfg, x.shape[-1]
        zeros = nn.initializers.zeros  # real values come from model.init_weights
        bias = self.param('bias', zeros, (d,))
        if cfg.cross == 'full':
            return x0 * (x @ self.param('kernel', zeros, (d, d)) + bias) + x
        if cfg.cross == 'lowrank':
            u = self.param('u', zeros, (d, cfg.rank))
            v = self.param('v', zeros, (d, cfg.rank))
            return x0 * ((x @ v) @ u.T + bias) + x
        k, r = cfg.num_experts, cfg.rank
        u = self.param('u', zeros, (k, d, r))
        v = self.param('v', zeros, (k, d, r))
        c = self.param('c', zeros, (k, r, r))
        gates = jax.nn.softmax(x @ self.param('gate', zeros, (d, k)), axis=-1)  # (B, K)
        low = nn.relu(jnp.einsum('bd,kdr->bkr', x, v))  # g(Vᵀ x): (B, K, r)
        low = nn.relu(jnp.einsum('bkr,krs->bks', low, c))  # g(C g(Vᵀ x)): (B, K, r)
        experts = x0[:, None, :] * (jnp.einsum('bkr,kdr->bkd', low, u) + bias)  # (B, K, D)
        return jnp.einsum('bk,bkd->bd', gates, experts) + x


def _known_zero(rate) -> bool:
    """True if ``rate`` is None or a concrete 0; False for a traced value (a jit argument)."""
    if rate is None:
        return True
    try:
        return float(rate) == 0.0
    except jax.errors.ConcretizationTypeError:
        return False


class DCNv2(nn.Module):
    cfg: ModelConfig

    @nn.compact
    def __call__(self, inputs, dropout: bool = False, dropout_rate=0.0):
        cfg = self.cfg
        dense = inputs[:, : cfg.num_dense]  # (B, n_dense)
        ids = inputs[:, cfg.num_dense :].astype(jnp.int32)  # (B, F)
        embedded = [
            nn.Embed(rows, cfg.embed_dim, name=f'embedding_{f}')(ids[:, f])
            for f, rows in enumerate(cfg.table_sizes)
        ]
        x0 = jnp.concatenate([dense, *embedded], axis=-1)  # (B, D)
        x = x0
        for layer in range(cfg.num_cross_layers):
            x = CrossLayer(cfg, name=f'cross_{layer}')(x0, x)
        h = x0 if cfg.structure == 'parallel' else x
        for layer, width in enumerate(cfg.deep_widths):
            h = nn.relu(nn.Dense(width, name=f'dense_{layer}')(h))
            if dropout:  # the rate may be traced: no Python branch on its value
                keep = jax.random.bernoulli(self.make_rng('dropout'), 1.0 - dropout_rate, h.shape)
                h = jnp.where(keep, h / (1.0 - dropout_rate), 0.0)
        top = jnp.concatenate([x, h], axis=-1) if cfg.structure == 'parallel' else h
        return nn.Dense(1, name='output')(top)[:, 0]  # (B,) logits


class CtrJaxWorkload(CtrWorkload):
    framework = 'jax'

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._model = DCNv2(self.config)
        self._predict = jax.jit(
            lambda params, inputs: self._model.apply({'params': params}, inputs),
            out_shardings=jax_utils.replicated_sharding(),
        )

    def init_model_fn(
        self,
        rng: spec.RandomState,
        dropout_rate: Optional[float] = None,
        aux_dropout_rate: Optional[float] = None,
    ) -> spec.ModelInitState:
        del dropout_rate, aux_dropout_rate
        params = jax.tree_util.tree_map(jnp.asarray, init_weights(self.config, rng_to_seed(rng)))
        self._param_shapes = param_trees.shape_tree(params)
        self._param_types = param_trees.type_tree(params, param_type)
        return jax_utils.replicate(params), None

    def model_fn(
        self,
        params,
        augmented_and_preprocessed_input_batch: Dict[str, spec.Tensor],
        model_state,
        mode: spec.ForwardPassMode,
        rng: spec.RandomState,
        update_batch_norm: bool,
        dropout_rate: Optional[float] = None,
    ):
        del update_batch_norm
        # Submissions may pass dropout_rate as a traced jit argument: then dropout
        # runs at that rate (0 keeps every unit).
        dropout = mode == spec.ForwardPassMode.TRAIN and not _known_zero(dropout_rate)
        if dropout and rng is None:
            raise ValueError('model_fn needs an rng for dropout (dropout_rate > 0 in TRAIN mode).')
        logits = self._model.apply(
            {'params': params},
            augmented_and_preprocessed_input_batch['inputs'],
            dropout=dropout,
            dropout_rate=dropout_rate if dropout else 0.0,
            rngs={'dropout': rng} if dropout else {},
        )
        return logits, model_state

    def loss_fn(self, label_batch, logits_batch, mask_batch=None, label_smoothing: float = 0.0):
        y = label_batch * (1.0 - label_smoothing) + 0.5 * label_smoothing
        z = logits_batch
        per_example = jnp.maximum(z, 0.0) - z * y + jnp.log1p(jnp.exp(-jnp.abs(z)))
        mask = jnp.ones_like(per_example) if mask_batch is None else mask_batch
        per_example = per_example * mask
        return {
            'summed': per_example.sum(),
            'n_valid_examples': mask.sum(),
            'per_example': per_example,
        }

    def _build_input_queue(
        self,
        data_rng,
        split: str,
        data_dir: str,
        global_batch_size: int,
        cache=None,
        repeat_final_dataset=None,
        num_batches=None,
    ):
        self._check_split(split)
        jax_utils.check_batch_divides(global_batch_size)
        batches = self._numpy_train_batches(rng_to_seed(data_rng), data_dir, global_batch_size)
        return MappedBatches(batches, jax_utils.shard_batch)

    def eval_model(
        self,
        global_batch_size,
        params,
        model_state,
        rng,
        data_dir,
        imagenet_v2_data_dir,
        global_step,
    ) -> Dict[str, float]:
        del global_batch_size, rng, imagenet_v2_data_dir, global_step
        return self._evaluate(params, model_state, data_dir)

    def _eval_logits(self, params, model_state, inputs: np.ndarray) -> np.ndarray:
        jax_utils.check_batch_divides(len(inputs), 'eval batch size')
        inputs = jax.device_put(inputs, jax_utils.batch_sharding())
        return np.asarray(self._predict(params, inputs), dtype=np.float32)
