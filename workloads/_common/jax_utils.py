"""JAX glue: a one-axis device mesh, batch sharding, replication, numpy -> params.

The mesh spans ``jax.devices()`` along one axis named ``'batch'``: batches are
split along their first dimension, parameters are replicated (data parallelism,
as in AlgoPerf's ``jax_sharding_utils``). With one device both are no-ops.
"""

from __future__ import annotations

import functools
from typing import Any, Mapping

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from harness import errors

BATCH_AXIS = 'batch'


@functools.lru_cache(maxsize=None)
def mesh() -> Mesh:
    return Mesh(np.array(jax.devices()), (BATCH_AXIS,))


def batch_sharding() -> NamedSharding:
    """Split the leading (batch) dimension over all devices."""
    return NamedSharding(mesh(), PartitionSpec(BATCH_AXIS))


def replicated_sharding() -> NamedSharding:
    return NamedSharding(mesh(), PartitionSpec())


def check_batch_divides(global_batch_size: int, what: str = 'global batch size') -> None:
    """UserInputError unless ``global_batch_size`` splits evenly over the devices."""
    errors.check_batch_divides(global_batch_size, jax.device_count(), what=what)


def shard_batch(batch: Mapping[str, Any]) -> dict:
    """Numpy batch -> jax.Arrays split along the batch dimension over the devices."""
    sharding = batch_sharding()
    out = {}
    for key, value in batch.items():
        check_batch_divides(int(np.shape(value)[0]), f'batch dimension of {key!r}')
        out[key] = jax.device_put(value, sharding)
    return out


def replicate(tree: Any) -> Any:
    """Put every leaf of ``tree`` on all devices (numpy leaves become jax.Arrays)."""
    return jax.device_put(tree, replicated_sharding())


def to_numpy(tree: Any) -> Any:
    """jax.Array leaves -> numpy arrays (gathered to the host)."""
    return jax.tree_util.tree_map(np.asarray, tree)
