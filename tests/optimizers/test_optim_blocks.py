"""Block layouts, and cutting into blocks and back, in both frameworks."""

import jax.numpy as jnp
import numpy as np
import pytest
import torch

from submissions._lib.optim_blocks import block_layout
from submissions._lib.optim_jax import _blocks as jax_blocks
from submissions._lib.optim_torch import _blocks as torch_blocks


def test_layout_choices():
    assert block_layout((7,), 4, 100) is None  # vector
    assert block_layout((1, 7, 1), 4, 100) is None  # squeezes to a vector
    assert block_layout((200, 3), 1024, 200) is None  # embedding-sized axis
    layout = block_layout((1536, 256), 1024, 10**6)
    assert (layout.counts, layout.sizes) == ((2, 1), (768, 256))  # two equal halves
    layout = block_layout((1, 5, 3, 1), 4, 100)
    assert layout.squeezed == (5, 3) and layout.exponent == 4 and layout.padded == (6, 3)


@pytest.mark.parametrize('shape,block_size', [((6, 5), 4), ((3, 1, 4, 2), 2), ((9, 9), 9)])
def test_round_trip_and_same_blocks(shape, block_size):
    layout = block_layout(shape, block_size, 10**6)
    x = np.arange(np.prod(shape), dtype=np.float32).reshape(shape) + 1.0
    jax_cut = np.asarray(jax_blocks.to_blocks(jnp.asarray(x), layout))
    torch_cut = torch_blocks.to_blocks(torch.tensor(x), layout).numpy()
    np.testing.assert_array_equal(jax_cut, torch_cut)
    assert jax_cut.shape == (layout.num_blocks,) + layout.sizes
    assert np.count_nonzero(jax_cut) == x.size  # every entry once; padding zero
    np.testing.assert_array_equal(np.asarray(jax_blocks.from_blocks(jax_cut, layout)), x)
    np.testing.assert_array_equal(
        torch_blocks.from_blocks(torch.tensor(jax_cut), layout).numpy(), x
    )
    # The first block is the top-left corner.
    corner = x.reshape(layout.squeezed)[tuple(slice(0, b) for b in layout.sizes)]
    np.testing.assert_array_equal(jax_cut[0], corner)
