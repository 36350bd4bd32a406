"""JAX side of the runner: PRNG keys, block_until_ready, host copies of pytrees."""

from __future__ import annotations

import math
from typing import Any, List, Optional, Tuple

import jax
import numpy as np

from harness import errors
from harness.errors import UserInputError
from harness.trial.backends.single_process import SingleProcess

_COMPILES = [0]
_BACKEND_COMPILE_EVENT = '/jax/core/compile/backend_compile_duration'


def _count_compiles(event: str, duration_s: float, **kwargs) -> None:
    if event == _BACKEND_COMPILE_EVENT:
        _COMPILES[0] += 1


jax.monitoring.register_event_duration_secs_listener(_count_compiles)


def _is_array(x) -> bool:
    return isinstance(x, (jax.Array, np.ndarray))


class JaxBackend(SingleProcess):
    name = 'jax'

    def processes_for(self, devices: Optional[int], global_batch_size: Optional[int]) -> int:
        """One process, data parallel over every device JAX sees (a mesh).

        Refuses, before anything is written, a device count JAX does not see and a
        global batch that does not split evenly over the devices.
        """
        n_devices = jax.device_count()
        if devices is not None and devices != n_devices:
            raise UserInputError(
                f'devices: {devices} asked for, but JAX sees {n_devices} device(s) and trains '
                'data parallel over all of them. Leave devices unset, or choose the devices JAX '
                'sees (CUDA_VISIBLE_DEVICES; on the CPU '
                f'XLA_FLAGS=--xla_force_host_platform_device_count={devices}).')
        if global_batch_size is not None:
            errors.check_batch_divides(global_batch_size, n_devices)
        return 1

    def initial_rng(self, seed: int):
        # A raw uint32[2] key: AlgoPerf v0.6 submissions expect jax.random.PRNGKey.
        return jax.random.PRNGKey(seed)

    def step_rngs(self, base_rng, step: int) -> Tuple[Any, Any, Any]:
        """(data_selection, update, eval) keys for one step: fold_in(base, step), split 3."""
        keys = jax.random.split(jax.random.fold_in(base_rng, step), 3)
        return keys[0], keys[1], keys[2]

    def init_rngs(self, base_rng) -> Tuple[Any, Any, Any]:
        """(model init, optimizer init, data) keys, independent of the step keys.

        Model init gets the base key itself: the PyTorch backend hands out the
        same two words, so both frameworks start from the same weights.
        """
        keys = jax.random.split(jax.random.fold_in(base_rng, 2**31 - 1), 3)
        return base_rng, keys[1], keys[2]

    def compile_count(self) -> int:
        """XLA compilations so far in this process (to flag recompiling submissions)."""
        return _COMPILES[0]

    def sync(self, *trees) -> None:
        """Wait for every array in ``trees``: the clock is read only after this."""
        jax.block_until_ready([t for t in jax.tree.leaves(trees) if isinstance(t, jax.Array)])

    def is_finite(self, value) -> bool:
        return bool(np.all(np.isfinite(np.asarray(value))))

    # ---- checkpoints ---------------------------------------------------------

    def params_to_host(self, params) -> Any:
        return jax.tree.map(np.asarray, params)

    def params_from_host(self, host_params, fresh_params) -> Any:
        """Put saved arrays back with the fresh params' structure and sharding."""
        fresh_leaves, treedef = jax.tree.flatten(fresh_params)
        saved_leaves = jax.tree.leaves(host_params)
        if len(saved_leaves) != len(fresh_leaves):
            raise ValueError(f'checkpoint has {len(saved_leaves)} parameter arrays, '
                             f'the model {len(fresh_leaves)}')
        out = []
        for saved, fresh in zip(saved_leaves, fresh_leaves):
            if tuple(saved.shape) != tuple(fresh.shape):
                raise ValueError(f'checkpoint shape {saved.shape} != model shape {fresh.shape}')
            sharding = getattr(fresh, 'sharding', None)
            out.append(jax.device_put(saved.astype(fresh.dtype), sharding))
        return jax.tree.unflatten(treedef, out)

    def state_to_host(self, tree) -> List[Any]:
        """Array leaves of any pytree (optimizer or model state), in tree order.

        Non-array leaves (an optax update function, Python scalars) are not
        saved: they are rebuilt by calling the submission's init again.
        """
        return [np.asarray(x) if _is_array(x) else None for x in jax.tree.leaves(tree)]

    def state_from_host(self, host_leaves: List[Any], fresh_tree) -> Any:
        fresh_leaves, treedef = jax.tree.flatten(fresh_tree)
        if len(host_leaves) != len(fresh_leaves):
            raise ValueError(f'checkpointed state has {len(host_leaves)} leaves, the freshly '
                             f'initialized one {len(fresh_leaves)}')
        out = []
        for saved, fresh in zip(host_leaves, fresh_leaves):
            if saved is None or not _is_array(fresh):
                out.append(fresh)
                continue
            sharding = getattr(fresh, 'sharding', None)
            value = np.asarray(saved).astype(fresh.dtype)
            out.append(jax.device_put(value, sharding) if isinstance(fresh, jax.Array) else value)
        return jax.tree.unflatten(treedef, out)

    def param_count(self, params) -> int:
        return int(sum(math.prod(x.shape) for x in jax.tree.leaves(params)))

    def device_description(self) -> str:
        devs = jax.devices()
        return f'{len(devs)} x {devs[0].device_kind}'
