"""Federated Shakespeare in JAX/flax: the model and the framework glue.

Same functions in the same order as ``torch_impl.py``. Params are the flax
params dict; ``model_fn`` and ``loss_fn`` are pure, so submissions can
``jax.vmap`` them over clients.
"""

from __future__ import annotations

import functools
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from harness import spec
from workloads._common.rng import rng_to_seed
from workloads.federated_shakespeare import data
from workloads.federated_shakespeare.workload import (
    FederatedShakespeareWorkload,
    init_weights,
    param_type,
)

LN_EPS = 1e-5
NEG_INF = -1e9  # causal mask fill; finite so a fully masked row cannot produce NaN


class Block(nn.Module):
    num_heads: int
    d_ff: int

    @nn.compact
    def __call__(self, x):
        batch, length, d_model = x.shape
        head_dim = d_model // self.num_heads
        h = nn.LayerNorm(epsilon=LN_EPS, name='ln1')(x)
        q, k, v = jnp.split(nn.Dense(3 * d_model, name='qkv')(h), 3, axis=-1)
        q, k, v = (t.reshape(batch, length, self.num_heads, head_dim) for t in (q, k, v))
        scores = jnp.einsum('bqhd,bkhd->bhqk', q, k) / math.sqrt(head_dim)  # (B, H, T, T)
        causal = jnp.tril(jnp.ones((length, length), dtype=bool))
        att = jax.nn.softmax(jnp.where(causal, scores, NEG_INF), axis=-1)
        y = jnp.einsum('bhqk,bkhd->bqhd', att, v).reshape(batch, length, d_model)
        x = x + nn.Dense(d_model, name='out')(y)
        h = nn.LayerNorm(epsilon=LN_EPS, name='ln2')(x)
        h = jax.nn.gelu(nn.Dense(self.d_ff, name='fc')(h), approximate=True)
        return x + nn.Dense(d_model, name='proj')(h)


class CharTransformer(nn.Module):
    d_model: int
    num_layers: int
    num_heads: int
    d_ff: int
    vocab_size: int = data.VOCAB_SIZE
    seq_len: int = data.SEQ_LEN

    @nn.compact
    def __call__(self, inputs):  # (B, T) int -> (B, T, V) logits
        pos = self.param('pos_embedding', nn.initializers.zeros, (self.seq_len, self.d_model))
        x = nn.Embed(self.vocab_size, self.d_model, name='embed')(inputs)
        x = x + pos[: inputs.shape[-1]]
        for i in range(self.num_layers):
            x = Block(self.num_heads, self.d_ff, name=f'block_{i}')(x)
        x = nn.LayerNorm(epsilon=LN_EPS, name='ln_f')(x)
        return nn.Dense(self.vocab_size, name='head')(x)


class FederatedShakespeareJaxWorkload(FederatedShakespeareWorkload):
    framework = 'jax'

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        c = self.config
        self._model = CharTransformer(c['d_model'], c['num_layers'], c['num_heads'], c['d_ff'])

    def init_model_fn(self, rng):
        c = self.config
        weights = init_weights(
            self._rng_to_seed(rng), c['d_model'], c['num_layers'], c['num_heads'], c['d_ff']
        )
        params = jax.tree.map(jnp.asarray, weights)
        self._param_shapes = jax.tree.map(lambda x: spec.ShapeTuple(x.shape), weights)
        self._param_types = jax.tree_util.tree_map_with_path(
            lambda path, _: param_type([p.key for p in path]), weights
        )
        return params, None

    def model_fn(
        self,
        params,
        augmented_and_preprocessed_input_batch,
        model_state,
        mode,
        rng,
        update_batch_norm,
        dropout_rate=None,
    ):
        del mode, rng, update_batch_norm, dropout_rate  # no dropout, no batch norm
        logits = self._model.apply(
            {'params': params}, augmented_and_preprocessed_input_batch['inputs']
        )
        return logits, model_state

    def loss_fn(self, label_batch, logits_batch, mask_batch=None, label_smoothing=0.0):
        log_probs = jax.nn.log_softmax(logits_batch, axis=-1)
        # -sum_k q_k log p_k with q = (1 - s) onehot(y) + s / V.
        true_class = jnp.take_along_axis(log_probs, label_batch[..., None], axis=-1)[..., 0]
        per_example = -(1.0 - label_smoothing) * true_class
        if label_smoothing:
            per_example = per_example - label_smoothing * log_probs.mean(axis=-1)
        if mask_batch is None:
            mask_batch = jnp.ones_like(per_example)
        per_example = per_example * mask_batch
        return {
            'summed': per_example.sum(),
            'n_valid_examples': mask_batch.sum(),
            'per_example': per_example,
        }

    def _to_device(self, batch):
        return {k: jnp.asarray(v) for k, v in batch.items()}

    @functools.partial(jax.jit, static_argnums=0)
    def _eval_stats(self, params, batch):
        logits, _ = self.model_fn(params, batch, None, spec.ForwardPassMode.EVAL, None, False)
        weights = batch['weights']
        loss = self.loss_fn(batch['targets'], logits, weights)['per_example']
        correct = (jnp.argmax(logits, axis=-1) == batch['targets']) * weights
        return correct.sum(-1), loss.sum(-1), weights.sum(-1)

    def _eval_batch(self, params, batch):
        stats = self._eval_stats(params, self._to_device(batch))
        return tuple(np.asarray(s, dtype=np.float64) for s in stats)

    def _rng_to_seed(self, rng):
        return rng_to_seed(rng)

    # ---- glue for the federated runner ---------------------------------------------

    def tree_stack(self, trees):
        return jax.tree.map(lambda *xs: jnp.stack(xs), *trees)

    def tree_unstack(self, tree, count):
        return [jax.tree.map(lambda x, i=i: x[i], tree) for i in range(count)]

    def tree_to_numpy(self, tree):
        return jax.device_get(tree)

    def tree_from_numpy(self, tree):
        return jax.tree.map(jnp.asarray, tree)

    def make_rng(self, seed):
        return jax.random.PRNGKey(int(seed))

    def synchronize(self, tree):
        jax.block_until_ready(tree)
