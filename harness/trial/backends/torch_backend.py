"""PyTorch side of the runner: numpy-based RNG, cuda synchronize, state dicts, DDP.

Under DDP (``harness.trial.backends.torch_ddp``) each rank has its own backend: the
device is ``cuda:LOCAL_RANK`` and the collectives of ``agree_max`` /
``from_writer`` keep the ranks' clocks and decisions in step.
"""

from __future__ import annotations

import copy
import sys
from typing import Any, Optional, Tuple

import numpy as np
import torch

from harness.trial.backends import torch_ddp
from harness.trial.backends.single_process import SingleProcess


def _rng_array(*words: int) -> np.ndarray:
    seq = np.random.SeedSequence([int(w) & 0xFFFFFFFF for w in words])
    return seq.generate_state(2, dtype=np.uint32)


class TorchBackend(SingleProcess):
    name = 'pytorch'

    def __init__(self):
        self.device = torch_ddp.local_device()

    # ---- several processes (DDP); the SingleProcess answers otherwise ------------

    def processes_for(self, devices: Optional[int], global_batch_size: Optional[int]) -> int:
        """DDP processes for a trial: every visible GPU, or ``devices`` (gloo on a CPU).

        Refuses, before anything is written, more GPUs than visible and a global
        batch that does not split evenly over the processes.
        """
        world = torch_ddp.world_size_for(devices)
        if global_batch_size is not None:
            torch_ddp.check_batch_divides(global_batch_size, world)
        return world

    @property
    def world_size(self) -> int:
        return torch_ddp.world_size()

    @property
    def rank(self) -> int:
        return torch_ddp.rank()

    @property
    def is_writer(self) -> bool:
        return self.rank == 0

    def agree_max(self, values):
        if self.world_size == 1:
            return super().agree_max(values)
        return torch_ddp.agree_max(values)

    def barrier(self) -> None:
        if self.world_size > 1:
            torch_ddp.barrier()

    def from_writer(self, obj):
        return obj if self.world_size == 1 else torch_ddp.from_writer(obj)

    def prepare_model(self, params):
        if self.world_size == 1 or not isinstance(params, torch.nn.Module):
            return params
        return torch_ddp.wrap_model(params)

    def initial_rng(self, seed: int) -> np.ndarray:
        # The same words as jax.random.PRNGKey(seed), so that a workload's
        # init_model_fn derives the same initial weights in both frameworks.
        return np.array([0, seed], dtype=np.uint32)

    def step_rngs(self, base_rng, step: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        b = [int(x) for x in np.asarray(base_rng).ravel()]
        return tuple(_rng_array(*b, step, i) for i in range(3))

    def init_rngs(self, base_rng) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        # Model init gets the base key itself (same words as JAX's PRNGKey(seed)).
        b = [int(x) for x in np.asarray(base_rng).ravel()]
        return np.asarray(base_rng, dtype=np.uint32), _rng_array(*b, 2**31 - 1, 1), \
            _rng_array(*b, 2**31 - 1, 2)

    def compile_count(self) -> int:
        """Graphs torch.compile (dynamo) compiled so far in this process (0 when eager).

        The runner flags the ones compiled inside steps after warm-up, as it does
        for JAX's XLA compilations.
        """
        return _dynamo_graphs()

    def sync(self, *trees) -> None:
        if self.device.type == 'cuda':
            torch.cuda.synchronize()

    def is_finite(self, value) -> bool:
        if torch.is_tensor(value):
            return bool(torch.isfinite(value).all())
        return bool(np.all(np.isfinite(np.asarray(value))))

    # ---- checkpoints ---------------------------------------------------------
    # PyTorch params are the nn.Module (AlgoPerf); optimizer states are any
    # structure of objects with state_dict()/load_state_dict() (optimizers,
    # schedulers), tensors and plain values.

    def params_to_host(self, module) -> Any:
        return {k: v.detach().cpu().clone() for k, v in _unwrap(module).state_dict().items()}

    def params_from_host(self, host_params, fresh_module) -> Any:
        _unwrap(fresh_module).load_state_dict(host_params)
        return fresh_module

    def state_to_host(self, tree) -> Any:
        if hasattr(tree, 'state_dict') and callable(tree.state_dict):
            return {'__state_dict__': copy.deepcopy(tree.state_dict())}
        if isinstance(tree, dict):
            return {k: self.state_to_host(v) for k, v in tree.items()}
        if isinstance(tree, (list, tuple)):
            return type(tree)(self.state_to_host(v) for v in tree) if isinstance(tree, list) \
                else tuple(self.state_to_host(v) for v in tree)
        if torch.is_tensor(tree):
            return tree.detach().cpu().clone()
        if callable(tree):
            return None  # rebuilt by the submission's init
        return copy.deepcopy(tree)

    def state_from_host(self, saved, fresh) -> Any:
        if isinstance(saved, dict) and '__state_dict__' in saved:
            fresh.load_state_dict(saved['__state_dict__'])
            return fresh
        if isinstance(fresh, dict):
            return {k: self.state_from_host(saved[k], v) if k in saved else v
                    for k, v in fresh.items()}
        if isinstance(fresh, (list, tuple)):
            out = [self.state_from_host(s, f) for s, f in zip(saved, fresh)]
            return out if isinstance(fresh, list) else tuple(out)
        if torch.is_tensor(fresh):
            with torch.no_grad():
                fresh.copy_(saved.to(fresh.device))
            return fresh
        if saved is None:
            return fresh
        return saved

    def param_count(self, module) -> int:
        return int(sum(p.numel() for p in _unwrap(module).parameters()))

    def device_description(self) -> str:
        ddp = f', DDP over {self.world_size} processes' if self.world_size > 1 else ''
        if self.device.type == 'cuda':
            return f'{torch.cuda.device_count()} x {torch.cuda.get_device_name(0)}{ddp}'
        return f'cpu ({torch.get_num_threads()} threads){ddp}'


_GRAPHS = {'seen': 0, 'total': 0}


def _dynamo_graphs() -> int:
    """dynamo's count of compiled graphs, kept monotonic across ``counters.clear()``."""
    if 'torch._dynamo' not in sys.modules:
        return _GRAPHS['total']  # Nothing was compiled: do not import dynamo for it.
    from torch._dynamo.utils import counters

    now = int(counters['stats']['unique_graphs'])
    seen = _GRAPHS['seen']
    _GRAPHS['total'] += now - seen if now >= seen else now  # Cleared since: all of it is new.
    _GRAPHS['seen'] = now
    return _GRAPHS['total']


def _unwrap(module):
    """The module inside DistributedDataParallel / torch.compile wrappers."""
    while hasattr(module, 'module') and isinstance(module.module, torch.nn.Module):
        module = module.module
    return getattr(module, '_orig_mod', module)
