"""The latest checkpoint of a trial: everything needed to continue it exactly.

``checkpoint/state.pkl`` holds host copies of params, optimizer state and
model state, plus the runner's counters (step, data-iterator position,
accumulated submission/eval/checkpoint time, evaluations written, preemption
count). The checkpoint written at the end of a trial also holds its outcome
(status, error), so a trial killed before its result.json is written resumes
to that outcome without training or evaluating again. It is written to a temp
file and renamed, so a kill during a save leaves the previous checkpoint
intact. Only the latest one is kept.

PyTorch states are saved with ``torch.save`` (tensors and state dicts); JAX
states as numpy arrays with pickle. Neither format is meant to travel between
frameworks: a trial resumes in the framework it started in.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any, Dict, Optional

from harness.results import CHECKPOINT_DIR, atomic_write_bytes

STATE_FILE = 'state.pkl'
FORMAT_VERSION = 1


def checkpoint_path(trial_dir: Path) -> Path:
    return Path(trial_dir) / CHECKPOINT_DIR / STATE_FILE


def save(trial_dir: Path, framework: str, payload: Dict[str, Any]) -> None:
    payload = {'format_version': FORMAT_VERSION, 'framework': framework, **payload}
    buffer = io.BytesIO()
    if framework == 'pytorch':
        import torch

        torch.save(payload, buffer)
    else:
        pickle.dump(payload, buffer, protocol=pickle.HIGHEST_PROTOCOL)
    atomic_write_bytes(checkpoint_path(trial_dir), buffer.getvalue())


def load(trial_dir: Path, framework: str) -> Optional[Dict[str, Any]]:
    path = checkpoint_path(trial_dir)
    if not path.exists():
        return None
    if framework == 'pytorch':
        import torch

        payload = torch.load(path, map_location='cpu', weights_only=False)
    else:
        with open(path, 'rb') as f:
            payload = pickle.load(f)
    if payload.get('format_version') != FORMAT_VERSION:
        raise ValueError(f'{path}: checkpoint format {payload.get("format_version")} is not '
                         f'{FORMAT_VERSION}; delete the trial directory to start it again')
    return payload
