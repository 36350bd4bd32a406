"""How Kronecker-factored optimizers (Shampoo, Sketchy) cut a parameter into blocks.

Framework-free, so that ``optim_jax`` and ``optim_torch`` cut every parameter
the same way (the parity tests rely on it).

Choices where the papers are silent:
- Axes of size 1 are dropped first: a (1, 256) parameter is a vector.
- A parameter with fewer than two remaining axes (biases, scales, scalars) or
  with an axis of ``max_preconditioner_dim`` or more (embedding tables) gets
  no preconditioner: it takes the grafted first-order update.
- An axis longer than ``block_size`` is split into the fewest blocks of at
  most ``block_size``, all of the same size ``ceil(d / n)``; the last block is
  zero-padded. Zero rows add nothing to the statistics, and the inverse root
  of a block-diagonal matrix is block-diagonal, so the padding changes no real
  entry of the update. Equal sizes let every block of a parameter go through
  one batched eigendecomposition.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Optional, Sequence, Tuple


@dataclasses.dataclass(frozen=True)
class BlockLayout:
    shape: Tuple[int, ...]  # the parameter's own shape
    squeezed: Tuple[int, ...]  # the shape without axes of size 1
    counts: Tuple[int, ...]  # blocks per squeezed axis
    sizes: Tuple[int, ...]  # block edge per squeezed axis

    @property
    def rank(self) -> int:
        return len(self.squeezed)

    @property
    def exponent(self) -> int:
        """p in the inverse root X^(-1/p): 2 per preconditioned axis (4 for a matrix)."""
        return 2 * self.rank

    @property
    def num_blocks(self) -> int:
        return math.prod(self.counts)

    @property
    def padded(self) -> Tuple[int, ...]:
        return tuple(n * b for n, b in zip(self.counts, self.sizes))

    @property
    def interleaved(self) -> Tuple[int, ...]:
        """The padded tensor viewed as (n1, b1, n2, b2, ...)."""
        return tuple(x for n, b in zip(self.counts, self.sizes) for x in (n, b))

    @property
    def to_blocks_perm(self) -> Tuple[int, ...]:
        """(n1, b1, n2, b2, ...) -> (n1, n2, ..., b1, b2, ...)."""
        k = self.rank
        return tuple(range(0, 2 * k, 2)) + tuple(range(1, 2 * k, 2))

    @property
    def from_blocks_perm(self) -> Tuple[int, ...]:
        """(n1, n2, ..., b1, b2, ...) -> (n1, b1, n2, b2, ...)."""
        k = self.rank
        return tuple(x for i in range(k) for x in (i, k + i))

    @property
    def padding(self) -> Tuple[Tuple[int, int], ...]:
        return tuple((0, p - d) for d, p in zip(self.squeezed, self.padded))


def block_layout(
    shape: Sequence[int], block_size: int, max_preconditioner_dim: int
) -> Optional[BlockLayout]:
    """The blocks of a parameter of ``shape``, or None when it is not preconditioned."""
    shape = tuple(int(d) for d in shape)
    squeezed = tuple(d for d in shape if d > 1)
    if len(squeezed) < 2 or max(squeezed) >= max_preconditioner_dim:
        return None
    counts = tuple(math.ceil(d / block_size) for d in squeezed)
    sizes = tuple(math.ceil(d / n) for d, n in zip(squeezed, counts))
    return BlockLayout(shape=shape, squeezed=squeezed, counts=counts, sizes=sizes)
