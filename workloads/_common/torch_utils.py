"""PyTorch glue: the device, batches on it (this DDP rank's rows), numpy weights in and out."""

from __future__ import annotations

import functools
import os
from typing import Any, Dict, Mapping

import numpy as np
import torch
import torch.distributed as dist

from harness.errors import UserInputError


@functools.lru_cache(maxsize=None)
def device() -> torch.device:
    """This process's GPU (``cuda:LOCAL_RANK`` under DDP, else cuda:0), or the CPU.

    LOCAL_RANK is torchrun's convention, which the harness's DDP launcher follows.
    """
    if torch.cuda.is_available():
        return torch.device('cuda', int(os.environ.get('LOCAL_RANK', '0')))
    return torch.device('cpu')


def local_rows(batch: Mapping[str, Any]) -> Dict[str, Any]:
    """This DDP rank's equal share of a global numpy batch (all of it in one process).

    Every rank draws the same global batch (same seed, same position) and keeps
    rows ``[rank·B/W, (rank+1)·B/W)``: the data order, and a resume, are those
    of one process.
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return dict(batch)
    world, rank = dist.get_world_size(), dist.get_rank()
    out = {}
    for key, value in batch.items():
        rows = int(np.shape(value)[0])
        if rows % world:
            raise UserInputError(
                f'The batch dimension of {key!r} ({rows}) has to be divisible by the number '
                f'of DDP processes ({world}): choose a multiple of {world} in get_batch_size.')
        share = rows // world
        out[key] = value[rank * share : (rank + 1) * share]
    return out


def unwrap(module: torch.nn.Module) -> torch.nn.Module:
    """The model inside a DistributedDataParallel wrapper (names without 'module.')."""
    inner = getattr(module, 'module', None)
    return inner if isinstance(inner, torch.nn.Module) else module


def to_device(batch: Mapping[str, Any], dtypes: Mapping[str, torch.dtype] = None) -> dict:
    """Numpy batch -> tensors on ``device()``, optionally cast per key.

    Pinned memory plus ``non_blocking`` lets the host-to-GPU copy overlap compute.
    """
    dev = device()
    dtypes = dtypes or {}
    out = {}
    for key, value in batch.items():
        tensor = torch.from_numpy(np.ascontiguousarray(value))
        if key in dtypes:
            tensor = tensor.to(dtypes[key])
        if dev.type == 'cuda':
            tensor = tensor.pin_memory().to(dev, non_blocking=True)
        out[key] = tensor
    return out


def load_numpy_params(module: torch.nn.Module, arrays: Mapping[str, np.ndarray]) -> None:
    """Copy ``{named_parameters name: array}`` into ``module``, checking every name and shape.

    All problems (missing, unexpected, wrong shape) are reported together.
    """
    params = dict(unwrap(module).named_parameters())
    problems = []
    missing = sorted(set(params) - set(arrays))
    unexpected = sorted(set(arrays) - set(params))
    if missing:
        problems.append(f'missing: {", ".join(missing)}')
    if unexpected:
        problems.append(f'unexpected: {", ".join(unexpected)}')
    for name in sorted(set(params) & set(arrays)):
        if tuple(params[name].shape) != tuple(np.shape(arrays[name])):
            problems.append(
                f'{name}: module has shape {tuple(params[name].shape)}, '
                f'array has {tuple(np.shape(arrays[name]))}'
            )
    if problems:
        raise ValueError('Cannot load weights into the module: ' + '; '.join(problems))
    with torch.no_grad():
        for name, param in params.items():
            param.copy_(torch.as_tensor(np.array(arrays[name], copy=True), dtype=param.dtype))


def module_to_numpy(module: torch.nn.Module) -> Dict[str, np.ndarray]:
    """``{named_parameters name: float array}`` copied to the host."""
    return {
        name: p.detach().cpu().float().numpy() for name, p in unwrap(module).named_parameters()
    }
