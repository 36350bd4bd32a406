"""The lm workload in JAX/flax (linen). Model math and choices: see ``workload.py``.

Shapes: B batch, T sequence, D width, N heads, H head width, V vocabulary.
"""

from __future__ import annotations

import contextlib
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


def _dropout(module: nn.Module, x: jax.Array, rate: Any, deterministic: bool) -> jax.Array:
    """Inverted dropout. ``rate`` may be a Python number or a traced scalar (a submission
    that passes its hyperparameters into jit): then ``lax.cond`` skips the random draws
    whenever the rate is 0 at run time."""
    if deterministic or (_is_static(rate) and float(rate) == 0.0):
        return x
    key = module.make_rng('dropout')

    def drop():
        keep = jax.random.bernoulli(key, 1.0 - rate, x.shape)
        return jnp.where(keep, x / (1.0 - rate), 0.0).astype(x.dtype)

    if _is_static(rate):
        return drop()
    return jax.lax.cond(rate > 0.0, drop, lambda: x)


def _is_static(value: Any) -> bool:
    return isinstance(value, (int, float, np.number))


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
        # cuDNN's fused kernel on GPUs in half precision (the small size's step: 66 ms on an
        # H100, 144 ms with XLA's); XLA's otherwise.
        on_gpu = jax.default_backend() == 'gpu' and q.dtype in (jnp.bfloat16, jnp.float16)
        y = jax.nn.dot_product_attention(
            q, k, v, is_causal=True, implementation='cudnn' if on_gpu else None
        )
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
    def __call__(self, x, dropout_rate: Any, deterministic: bool):
        eps = self.config.norm_eps
        h = Attention(self.config, name='attn')(RMSNorm(eps, name='attn_norm')(x))
        x = x + _dropout(self, h, dropout_rate, deterministic)
        h = SwiGLU(self.config, name='mlp')(RMSNorm(eps, name='mlp_norm')(x))
        return x + _dropout(self, h, dropout_rate, deterministic)


class Transformer(nn.Module):
    config: LmConfig

    @nn.compact
    def __call__(self, tokens, dropout_rate: Any = 0.0, deterministic: bool = True):
        cfg = self.config
        # The lookup stays float32, as torch's autocast leaves nn.Embedding: a bfloat16 lookup
        # would also scatter-add its gradient in bfloat16 (and made the small size's step
        # 92 instead of 66 ms on an H100).
        embed = nn.Embed(cfg.vocab_size, cfg.d_model, dtype=jnp.float32, name='embed')
        x = embed(tokens)  # (B, T, D); the residual stream stays float32
        for i in range(cfg.n_layers):
            x = Block(cfg, name=f'blocks_{i}')(x, dropout_rate, deterministic)
        x = RMSNorm(cfg.norm_eps, name='final_norm')(x)
        table = embed.embedding.astype(cfg.compute_dtype)  # Tied head, in the compute dtype.
        logits = jnp.einsum('btd,vd->btv', x.astype(cfg.compute_dtype), table)
        return logits.astype(jnp.float32)  # (B, T, V)


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
        rate = 0.0 if dropout_rate is None else dropout_rate  # A number or a traced scalar.
        train = mode == spec.ForwardPassMode.TRAIN
        needs_rng = train and not (_is_static(rate) and float(rate) == 0.0)
        if needs_rng and rng is None:
            raise ValueError('lm model_fn: dropout in TRAIN mode needs an rng (a PRNG key).')
        # 'float32' means float32 matmuls on GPUs too, where XLA would use TF32 (torch does not).
        precision = (
            jax.default_matmul_precision('highest')
            if self.config.compute_dtype == 'float32'
            else contextlib.nullcontext()
        )
        with precision:
            logits = self._model.apply(
                {'params': params},
                augmented_and_preprocessed_input_batch['inputs'],
                dropout_rate=rate,
                deterministic=not train,
                rngs={'dropout': rng} if needs_rng else None,
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
        return {'summed': per_token.sum(), 'n_valid_examples': mask.sum(), 'per_example': per_token}

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
            raise ValueError(
                f"lm builds an input queue for split 'train' only, not {split!r}; "
                'evaluation uses fixed windows (eval_model).'
            )
        jax_utils.check_batch_divides(global_batch_size)
        return MappedBatches(
            self._train_batches(data_rng, data_dir, global_batch_size), jax_utils.shard_batch
        )

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
