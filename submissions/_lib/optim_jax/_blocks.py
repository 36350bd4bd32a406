"""Cut a parameter into equal blocks and back (layout from ``optim_blocks``), in JAX.

Mirrors ``optim_torch/_blocks.py`` function by function.
"""

from __future__ import annotations

from typing import Callable

import jax.numpy as jnp

from submissions._lib.optim_blocks import BlockLayout


def to_blocks(x: jnp.ndarray, layout: BlockLayout) -> jnp.ndarray:
    """(shape) -> (N, b1, ..., bk), zero-padded."""
    x = jnp.pad(x.reshape(layout.squeezed), layout.padding)
    x = x.reshape(layout.interleaved).transpose(layout.to_blocks_perm)
    return x.reshape((layout.num_blocks,) + layout.sizes)


def from_blocks(blocks: jnp.ndarray, layout: BlockLayout) -> jnp.ndarray:
    """(N, b1, ..., bk) -> (shape), padding dropped."""
    x = blocks.reshape(layout.counts + layout.sizes).transpose(layout.from_blocks_perm)
    x = x.reshape(layout.padded)
    x = x[tuple(slice(0, d) for d in layout.squeezed)]
    return x.reshape(layout.shape)


def unfold(blocks: jnp.ndarray, axis: int) -> jnp.ndarray:
    """(N, b1, ..., bk) -> (N, b_axis, prod of the other edges): the mode-``axis`` matrix."""
    moved = jnp.moveaxis(blocks, 1 + axis, 1)
    return moved.reshape(moved.shape[0], moved.shape[1], -1)


def apply_along(
    blocks: jnp.ndarray, axis: int, op: Callable[[jnp.ndarray], jnp.ndarray]
) -> jnp.ndarray:
    """Apply ``op`` ((N, R, b) -> (N, R, b), acting on the last axis) along ``axis``."""
    moved = jnp.moveaxis(blocks, 1 + axis, -1)
    out = op(moved.reshape(moved.shape[0], -1, moved.shape[-1]))
    return jnp.moveaxis(out.reshape(moved.shape), -1, 1 + axis)


def block_norms(blocks: jnp.ndarray) -> jnp.ndarray:
    """(N, ...) -> (N,) Frobenius norm of each block."""
    return jnp.sqrt(jnp.sum(jnp.square(blocks).reshape(blocks.shape[0], -1), axis=-1))


def safe_ratio(num: jnp.ndarray, den: jnp.ndarray) -> jnp.ndarray:
    """num / den, and 0 where den is 0 (a zero direction stays zero)."""
    return jnp.where(den > 0, num / jnp.where(den > 0, den, 1.0), 0.0)
