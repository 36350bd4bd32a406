"""PyTorch DDP inside one rank: its device, world size, and the runner's control messages.

A PyTorch trial on several devices runs as ``world`` processes (launched by
``harness.trial.ddp``). Inside each, the runner uses these helpers: the step's
time is the maximum over ranks (``agree_max``), every step starts with a
``barrier`` (no rank's clock runs while the writer checkpoints or logs), and
the writer's evaluation metrics are broadcast to all (``from_writer``), so
every rank takes the same decisions.
"""

from __future__ import annotations

import os
from typing import Any, List, Optional, Sequence

import torch
import torch.distributed as dist

from harness import errors
from harness.errors import UserInputError

_CONTROL_GROUP: List[Any] = []


# ---- inside a rank --------------------------------------------------------------------


def local_device() -> torch.device:
    """This process's device: ``cuda:LOCAL_RANK`` when there are GPUs, else the CPU."""
    if torch.cuda.is_available():
        return torch.device('cuda', int(os.environ.get('LOCAL_RANK', '0')))
    return torch.device('cpu')


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def _control_group():
    """A gloo group for the runner's small messages (times, flags, metrics).

    Under NCCL a collective needs CUDA tensors and a stream; the control
    messages are host values, so they go through gloo in every case.
    """
    if not _CONTROL_GROUP:
        _CONTROL_GROUP.append(
            dist.new_group(backend='gloo') if dist.get_backend() != 'gloo' else dist.group.WORLD)
    return _CONTROL_GROUP[0]


def agree_max(values: Sequence[float]) -> List[float]:
    tensor = torch.tensor([float(v) for v in values], dtype=torch.float64)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX, group=_control_group())
    return tensor.tolist()


def barrier() -> None:
    dist.barrier(group=_control_group())


def from_writer(obj: Any) -> Any:
    box = [obj]
    dist.broadcast_object_list(box, src=0, group=_control_group())
    return box[0]


def wrap_model(module: torch.nn.Module) -> torch.nn.Module:
    from torch.nn.parallel import DistributedDataParallel

    device = local_device()
    # TimeTrial's models have no buffers that training changes (no batch norm): not
    # syncing buffers keeps every forward free of collectives, so that evaluation,
    # which every rank runs on its own, never has to be in lockstep.
    return DistributedDataParallel(
        module, device_ids=[device.index] if device.type == 'cuda' else None,
        forward_sync_buffers=False)


# ---- choosing the number of processes -------------------------------------------------


def world_size_for(requested: Optional[int]) -> int:
    """How many DDP processes a PyTorch trial runs: every visible GPU unless ``requested``.

    On a machine without GPUs ``requested`` processes share the CPU (gloo).
    """
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if requested is None:
        return max(gpus, 1)
    if gpus and requested > gpus:
        raise UserInputError(
            f'devices: {requested} asked for, but this machine shows {gpus} GPU(s) '
            f'(CUDA_VISIBLE_DEVICES={os.environ.get("CUDA_VISIBLE_DEVICES", "unset")}). Ask for '
            f'at most {gpus}, or leave devices unset to use every visible GPU.')
    return int(requested)


def check_batch_divides(global_batch_size: int, world: int) -> None:
    errors.check_batch_divides(
        global_batch_size, world, parts_name='DDP processes',
        fix=(f'each device trains on an equal share. Choose a multiple of {world} in '
             f'get_batch_size, or set devices to a divisor of {global_batch_size}.'))
