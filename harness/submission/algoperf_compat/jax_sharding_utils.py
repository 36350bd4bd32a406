"""AlgoPerf's ``algoperf.jax_sharding_utils`` names, for AlgoPerf-style JAX submissions.

One mesh axis, 'batch', over all local devices: parameters replicated, batches
split along their first dimension (the data-parallel layout TimeTrial's JAX
workloads use).
"""

from __future__ import annotations

import functools

import jax
from jax.sharding import Mesh, NamedSharding, PartitionSpec


@functools.lru_cache(maxsize=None)
def _mesh() -> Mesh:
    return Mesh(jax.devices(), ('batch',))


def get_replicate_sharding() -> NamedSharding:
    return NamedSharding(_mesh(), PartitionSpec())


def get_batch_dim_sharding() -> NamedSharding:
    return NamedSharding(_mesh(), PartitionSpec('batch'))


def shard_along_batch_dim(tree):
    return jax.tree.map(lambda x: jax.device_put(x, get_batch_dim_sharding()), tree)


def replicate(tree):
    return jax.tree.map(lambda x: jax.device_put(x, get_replicate_sharding()), tree)
