"""Cut a parameter into equal blocks and back (layout from ``optim_blocks``), in PyTorch.

Mirrors ``optim_jax/_blocks.py`` function by function.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from submissions._lib.optim_blocks import BlockLayout


def to_blocks(x: torch.Tensor, layout: BlockLayout) -> torch.Tensor:
    """(shape) -> (N, b1, ..., bk), zero-padded."""
    # F.pad takes (before, after) pairs from the last axis backwards.
    pad = [n for before_after in reversed(layout.padding) for n in before_after]
    x = F.pad(x.reshape(layout.squeezed), pad)
    x = x.reshape(layout.interleaved).permute(layout.to_blocks_perm)
    return x.reshape((layout.num_blocks,) + layout.sizes)


def from_blocks(blocks: torch.Tensor, layout: BlockLayout) -> torch.Tensor:
    """(N, b1, ..., bk) -> (shape), padding dropped."""
    x = blocks.reshape(layout.counts + layout.sizes).permute(layout.from_blocks_perm)
    x = x.reshape(layout.padded)
    x = x[tuple(slice(0, d) for d in layout.squeezed)]
    return x.reshape(layout.shape)


def unfold(blocks: torch.Tensor, axis: int) -> torch.Tensor:
    """(N, b1, ..., bk) -> (N, b_axis, prod of the other edges): the mode-``axis`` matrix."""
    moved = torch.movedim(blocks, 1 + axis, 1)
    return moved.reshape(moved.shape[0], moved.shape[1], -1)


def apply_along(
    blocks: torch.Tensor, axis: int, op: Callable[[torch.Tensor], torch.Tensor]
) -> torch.Tensor:
    """Apply ``op`` ((N, R, b) -> (N, R, b), acting on the last axis) along ``axis``."""
    moved = torch.movedim(blocks, 1 + axis, -1)
    out = op(moved.reshape(moved.shape[0], -1, moved.shape[-1]))
    return torch.movedim(out.reshape(moved.shape), -1, 1 + axis)


def block_norms(blocks: torch.Tensor) -> torch.Tensor:
    """(N, ...) -> (N,) Frobenius norm of each block."""
    return torch.linalg.vector_norm(blocks.reshape(blocks.shape[0], -1), dim=-1)


def safe_ratio(num, den: torch.Tensor) -> torch.Tensor:
    """num / den, and 0 where den is 0 (a zero direction stays zero); no host sync."""
    positive = den > 0
    return torch.where(
        positive, num / torch.where(positive, den, torch.ones_like(den)), torch.zeros_like(den)
    )
