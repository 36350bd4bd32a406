"""PyTorch glue: the device, batches on it, numpy weights into and out of a module."""

from __future__ import annotations

import functools
from typing import Any, Dict, Mapping

import numpy as np
import torch


@functools.lru_cache(maxsize=None)
def device() -> torch.device:
    """The first CUDA GPU if there is one, else the CPU (one process, one device)."""
    return torch.device('cuda:0' if torch.cuda.is_available() else 'cpu')


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
    params = dict(module.named_parameters())
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
    return {name: p.detach().cpu().float().numpy() for name, p in module.named_parameters()}
