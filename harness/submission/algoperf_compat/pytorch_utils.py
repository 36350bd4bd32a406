"""AlgoPerf's ``algoperf.pytorch_utils`` names, for AlgoPerf-style PyTorch submissions."""

from __future__ import annotations

import os
from typing import Tuple

import torch
import torch.distributed as dist


def pytorch_setup() -> Tuple[bool, int, torch.device, int]:
    """(use_ddp, local_rank, device, n_gpus); DDP when launched with LOCAL_RANK set."""
    use_ddp = 'LOCAL_RANK' in os.environ
    rank = int(os.environ['LOCAL_RANK']) if use_ddp else 0
    device = torch.device(f'cuda:{rank}' if torch.cuda.is_available() else 'cpu')
    return use_ddp, rank, device, torch.cuda.device_count()


def sync_ddp_time(time_s: float, device: torch.device) -> float:
    """The maximum of ``time_s`` over DDP ranks (the slowest rank's clock)."""
    t = torch.tensor(time_s, dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return float(t.item())
