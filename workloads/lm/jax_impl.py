"""The lm workload in JAX/flax (linen). Model math and choices: see ``workload.py``.

Shapes: B batch, T sequence, D width, N heads, H head width, V vocabulary.
"""

from __future__ import annotations

import functools
from typing import Any, Dict, Optional, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from harness import spec
from workloads._common import jax_utils, param_trees
from workloads._common.batches import MappedBatches
from workloads._common.rng import rng_to_seed
from workloads.lm import workload as lm
from workloads.lm.workload import LmConfig


def _rotary(x: jax.Array, base: float) -> jax.Array:
    """Rotary position embedding, rotate-half convention, of x: (B, T, N, H)."""
    t, h = x.shape[1], x.shape[-1]
    inv_freq = 1.0 / (base ** (jnp.arange(0, h, 2, dtype=jnp.float32) / h))  # (H/2,)
    angles = jnp.arange(t, dtype=jnp.float32)[:, None] * inv_freq[None, :]  # (T, H/2)
    cos, sin = jnp.cos(angles)[None, :, None, :], jnp.sin(angles)[None, :, None, :]
    x1, x2 = jnp.split(x.astype(jnp.float32), 2, axis=-1)
    return jnp.concatenate([x1 * cos - x2 * sin, x1 * sin + x2 * cos], -1).astype(x.dtype)


def _dropout(module: nn.Module, x: jax.Array, rate: float, deterministic: bool) -> jax.Array:
    if deterministic or rate == 0.0:
        return x
    keep = jax.random.bernoulli(module.make_rng('dropout'), 1.0 - rate, x.shape)
    return jnp.where(keep, x / (1.0 - rate), 0.0).astype(x.dtype)


class RMSNorm(nn.Module):
    eps: float

    @nn.compact
    def __call__(self, x):
        scale = self.param('scale', nn.initializers.ones, (x.shape[-1],), jnp.float32)
        x32 = x.astype(jnp.float32)
        y = x32 * jax.lax.rsqrt(jnp.mean(jnp.square(x32), axis=-1, keepdims=True) + self.eps)
        return (y * scale).astype(x.dtype)


class Attention(nn.Module):
    config: LmConfig

    @nn.compact
    def __call__(self, x):
        cfg = self.config
        b, t, d = x.shape
        dense = functools.partial(nn.Dense, use_bias=False, dtype=cfg.compute_dtype)
        shape = (b, t, cfg.n_heads, cfg.head_dim)
        q = _rotary(dense(d, name='q')(x).reshape(shape), cfg.rope_base)  # (B, T, N, H)
        k = _rotary(dense(d, name='k')(x).reshape(shape), cfg.rope_base)
        v = dense(d, name='v')(x).reshape(shape)
        # cuDNN's fused kernel on GPUs in half precision; XLA's otherwise.
        on_gpu = jax.default_backend() == 'gpu' and q.dtype in (jnp.bfloat16, jnp.float16)
        y = jax.nn.dot_product_attention(q, k, v, is_causal=True,
                                         implementation='cudnn' if on_gpu else None)
        return dense(d, name='o')(y.reshape(b, t, d))


class SwiGLU(nn.Module):
    config: LmConfig

    @nn.compact
    def __call__(self, x):
        cfg = self.config
        dense = functools.partial(nn.Dense, use_bias=False, dtype=cfg.compute_dtype)
        h = nn.silu(dense(cfg.mlp_hidden, name='gate')(x)) * dense(cfg.mlp_hidden, name='up')(x)
        return dense(cfg.d_model, name='down')(h)


class Block(nn.Module):
    config: LmConfig

    @nn.compact
    def __call__(self, x, dropout_rate: float, deterministic: bool):
        eps = self.config.norm_eps
        h = Attention(self.config, name='attn')(RMSNorm(eps, name='attn_norm')(x))
        x = x + _dropout(self, h, dropout_rate, deterministic)
        h = SwiGLU(self.config, name='mlp')(RMSNorm(eps, name='mlp_norm')(x))
        return x + _dropout(self, h, dropout_rate, deterministic)


class Transformer(nn.Module):
    config: LmConfig

    @nn.compact
    def __call__(self, tokens, dropout_rate: float = 0.0, deterministic: bool = True):
        cfg = self.config
        embed = nn.Embed(cfg.vocab_size, cfg.d_model, dtype=cfg.compute_dtype, name='embed')
        x = embed(tokens).astype(jnp.float32)  # (B, T, D); the residual stream stays float32
        for i in range(cfg.n_layers):
            x = Block(cfg, name=f'blocks_{i}')(x, dropout_rate, deterministic)
        x = RMSNorm(cfg.norm_eps, name='final_norm')(x)
        return embed.attend(x.astype(cfg.compute_dtype)).astype(jnp.float32)  # (B, T, V)


def _flax_path(name: str) -> Tuple[str, ...]:
    """Canonical name ('blocks.0.attn.q') -> flax params path (blocks_0, attn, q, kernel)."""
    if name == 'embed':
        return ('embed', 'embedding')
    parts = name.split('.')
    if parts[0] == 'blocks':
        parts = [f'blocks_{parts[1]}'] + parts[2:]
    return tuple(parts) + ('scale' if name.endswith('norm') else 'kernel',)


def _nest(flat: Dict[str, Any]) -> Dict[str, Any]:
    """{canonical name: leaf} -> the flax params tree holding those leaves."""
    tree: Dict[str, Any] = {}
    for name, leaf in flat.items():
        *parents, last = _flax_path(name)
        node = tree
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = leaf
    return tree


class LmJaxWorkload(lm.BaseLmWorkload):
    framework = 'jax'

    def init_model_fn(self, rng: spec.RandomState) -> spec.ModelInitState:
        cfg = self.config
        self._model_vocab = cfg.vocab_size
        self._model = Transformer(cfg)
        flat = lm.init_params(cfg, rng_to_seed(rng))
        self._param_shapes = param_trees.shape_tree(_nest(flat))
        self._param_types = _nest({name: lm.param_type(name) for name in flat})
        self._eval_sums = jax.jit(self._eval_sums_impl)
        return self.params_from_canonical(flat), None

    def model_fn(
        self,
        params: spec.ParameterContainer,
        augmented_and_preprocessed_input_batch: Dict[str, spec.Tensor],
        model_state: spec.ModelAuxiliaryState,
        mode: spec.ForwardPassMode,
        rng: spec.RandomState,
        update_batch_norm: bool,
        dropout_rate: Optional[float] = None,
    ) -> Tuple[spec.Tensor, spec.ModelAuxiliaryState]:
        del update_batch_norm  # No batch norm.
        rate = float(dropout_rate or 0.0)
        train = mode == spec.ForwardPassMode.TRAIN
        logits = self._model.apply(
            {'params': params},
            augmented_and_preprocessed_input_batch['inputs'],
            dropout_rate=rate,
            deterministic=not train,
            rngs={'dropout': rng} if train and rate > 0.0 else None,
        )
        return logits, model_state

    def loss_fn(
        self,
        label_batch: spec.Tensor,
        logits_batch: spec.Tensor,
        mask_batch: Optional[spec.Tensor] = None,
        label_smoothing: float = 0.0,
    ) -> Dict[str, spec.Tensor]:
        logits = logits_batch.astype(jnp.float32)  # (B, T, V)
        lse = jax.nn.logsumexp(logits, axis=-1)
        z_y = jnp.take_along_axis(logits, label_batch[..., None].astype(jnp.int32), -1)[..., 0]
        per_token = lse - (1.0 - label_smoothing) * z_y
        if not (isinstance(label_smoothing, (int, float)) and label_smoothing == 0):
            per_token = per_token - label_smoothing * jnp.mean(logits, axis=-1)
        if mask_batch is None:
            mask = jnp.ones_like(per_token)
        else:
            mask = mask_batch.astype(jnp.float32)
        per_token = per_token * mask
        return {'summed': per_token.sum(), 'n_valid_examples': mask.sum(),
                'per_example': per_token}

    def _build_input_queue(
        self,
        data_rng: spec.RandomState,
        split: str,
        data_dir: str,
        global_batch_size: int,
        cache: Optional[bool] = None,
        repeat_final_dataset: Optional[bool] = None,
        num_batches: Optional[int] = None,
    ) -> spec.BatchIterator:
        del cache, repeat_final_dataset, num_batches  # The stream is infinite and in memory.
        if split != 'train':
            raise ValueError(f"lm builds an input queue for split 'train' only, not {split!r}; "
                             'evaluation uses fixed windows (eval_model).')
        jax_utils.check_batch_divides(global_batch_size)
        return MappedBatches(self._train_batches(data_rng, data_dir, global_batch_size),
                             jax_utils.shard_batch)

    def eval_model(
        self,
        global_batch_size: int,
        params: spec.ParameterContainer,
        model_state: spec.ModelAuxiliaryState,
        rng: spec.RandomState,
        data_dir: str,
        imagenet_v2_data_dir: Optional[str],
        global_step: int,
    ) -> Dict[str, float]:
        del model_state, rng, imagenet_v2_data_dir, global_step

        def sums(batch):
            summed, n_valid = self._eval_sums(params, jax_utils.shard_batch(batch))
            return float(summed), float(n_valid)

        return self._evaluate(data_dir, global_batch_size, sums, jax.device_count())

    # ---- helpers (not part of the AlgoPerf API)

    def _eval_sums_impl(self, params, batch):
        logits, _ = self.model_fn(params, batch, None, spec.ForwardPassMode.EVAL, None, False)
        out = self.loss_fn(batch['targets'], logits, batch['weights'])
        return out['summed'], out['n_valid_examples']

    def params_from_canonical(self, flat: Dict[str, np.ndarray]) -> Dict[str, Any]:
        """Canonical numpy weights (``workload.init_params`` layout) -> replicated flax params."""
        return jax_utils.replicate(_nest({k: np.asarray(v, np.float32) for k, v in flat.items()}))

    def params_to_canonical(self, params: Dict[str, Any]) -> Dict[str, np.ndarray]:
        """Flax params -> canonical numpy weights (the inverse of ``params_from_canonical``)."""
        out = {}
        for name in lm.param_specs(self.config):
            node = params
            for key in _flax_path(name):
                node = node[key]
            out[name] = np.asarray(node, np.float32)
        return out
