"""One integer seed from either framework's random state.

The harness gives JAX workloads a raw ``jax.random.PRNGKey(seed)`` (uint32[2],
``[0, seed]`` for seeds below 2**32) and PyTorch workloads
``np.array([0, seed], dtype=np.uint32)``. ``rng_to_seed`` maps both to the same
integer, so a workload can draw its numpy initialization and data order from
one seed in both frameworks.
"""

from __future__ import annotations

from typing import Any

import numpy as np

_UINT32_LIMIT = 2**32


def _key_data(rng: Any) -> Any:
    """The uint32 words of a JAX typed key (``jax.random.key``); anything else as is."""
    module = type(rng).__module__.split('.')[0]
    if module not in ('jax', 'jaxlib'):
        return rng  # Never import JAX for a numpy or torch user.
    import jax

    if jax.dtypes.issubdtype(rng.dtype, jax.dtypes.prng_key):
        return jax.random.key_data(rng)
    return rng


def rng_to_seed(rng: Any) -> int:
    """The integer seed behind a random state.

    Accepts a JAX raw key (uint32[2]), a JAX typed key with threefry's two words,
    a numpy (or torch) array of two unsigned 32-bit words, or a non-negative int.
    Two words ``[hi, lo]`` give ``hi * 2**32 + lo``: ``PRNGKey(s)`` and
    ``np.array([0, s], np.uint32)`` both give ``s``; split keys give other seeds.
    """
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
        if rng < 0:
            raise ValueError(f'A seed must be non-negative, got {rng}.')
        return int(rng)
    words = np.asarray(_key_data(rng))
    if words.shape != (2,) or not np.issubdtype(words.dtype, np.integer):
        raise ValueError(
            'Expected a random state of two unsigned 32-bit words (a JAX PRNGKey or '
            f'np.array([0, seed], np.uint32)), got dtype {words.dtype} and shape {words.shape}.'
        )
    hi, lo = (int(w) for w in words)
    if not (0 <= hi < _UINT32_LIMIT and 0 <= lo < _UINT32_LIMIT):
        raise ValueError(f'Random state words must lie in [0, 2**32), got {[hi, lo]}.')
    return hi * _UINT32_LIMIT + lo
