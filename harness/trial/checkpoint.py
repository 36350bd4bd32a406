"""A trial's checkpoints: everything needed to continue it exactly, in two generations.

``checkpoint/state.pkl`` holds host copies of params, optimizer state and
model state, plus the runner's counters (step, data-iterator position,
accumulated submission/eval/checkpoint time, evaluations written, preemption
count). The checkpoint written at the end of a trial also holds its outcome
(status, error), so a trial killed before its result.json is written resumes
to that outcome without training or evaluating again.

Two generations are kept: a save first moves the latest to
``state.prev.pkl``, then writes the new one (temp file + fsync + rename). Each
file starts with a magic string and the SHA-256 of its payload, so a truncated
or corrupted file is recognised, not half-read: loading then falls back to the
previous generation and says so (the trial redoes the steps in between — the
trajectory is the same, and the time of the redone steps is counted from the
older checkpoint's accumulated time, never twice). If no generation can be
read, the resume is refused with a message naming the files and how to start
over (``CheckpointUnreadable``, a UserInputError: exit status 2).

PyTorch states are serialised with ``torch.save`` (tensors and state dicts);
JAX states as numpy arrays with pickle. Neither format is meant to travel
between frameworks: a trial resumes in the framework it started in.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import sys
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

from harness.errors import UserInputError
from harness.results import CHECKPOINT_DIR, atomic_write_bytes

STATE_FILE = 'state.pkl'
PREVIOUS_FILE = 'state.prev.pkl'
FORMAT_VERSION = 2
_MAGIC = b'TIMETRIAL-CHECKPOINT-2\n'
_DIGEST_BYTES = 32


class CheckpointUnreadable(UserInputError):
    """No generation of a trial's checkpoint can be read."""


def checkpoint_path(trial_dir: Path) -> Path:
    return Path(trial_dir) / CHECKPOINT_DIR / STATE_FILE


def previous_path(trial_dir: Path) -> Path:
    return Path(trial_dir) / CHECKPOINT_DIR / PREVIOUS_FILE


def save(trial_dir: Path, framework: str, payload: Dict[str, Any]) -> None:
    payload = {'format_version': FORMAT_VERSION, 'framework': framework, **payload}
    buffer = io.BytesIO()
    if framework == 'pytorch':
        import torch

        torch.save(payload, buffer)
    else:
        pickle.dump(payload, buffer, protocol=pickle.HIGHEST_PROTOCOL)
    body = buffer.getvalue()
    latest = checkpoint_path(trial_dir)
    if latest.exists():
        # A kill between these two renames leaves only the previous generation: load
        # falls back to it.
        os.replace(latest, previous_path(trial_dir))
    atomic_write_bytes(latest, _MAGIC + hashlib.sha256(body).digest() + body)


def _checked_body(path: Path) -> bytes:
    """The payload bytes of one generation; ValueError if the header or hash is wrong."""
    data = path.read_bytes()
    if not data.startswith(_MAGIC):
        raise ValueError('not a TimeTrial checkpoint of this version (no header)')
    digest = data[len(_MAGIC):len(_MAGIC) + _DIGEST_BYTES]
    body = data[len(_MAGIC) + _DIGEST_BYTES:]
    if hashlib.sha256(body).digest() != digest:
        raise ValueError(f'its SHA-256 does not match ({len(data):,} bytes): truncated or '
                         'corrupted')
    return body


def _read(path: Path, framework: str) -> Dict[str, Any]:
    """One generation; ValueError (with the reason) if it cannot be trusted."""
    body = _checked_body(path)
    try:
        if framework == 'pytorch':
            import torch

            payload = torch.load(io.BytesIO(body), map_location='cpu', weights_only=False)
        else:
            payload = pickle.loads(body)
    except Exception as e:  # noqa: BLE001 — any unpickling failure means unreadable
        raise ValueError(f'cannot be unpickled ({type(e).__name__}: {e})') from None
    if not isinstance(payload, dict) or payload.get('format_version') != FORMAT_VERSION:
        raise ValueError(f'format {payload.get("format_version")!r} is not {FORMAT_VERSION}')
    if payload.get('framework') != framework:
        raise ValueError(f'it was written by {payload.get("framework")}, not {framework}')
    return payload


def _warn(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _unreadable(trial_dir: Path, problems: List[str]) -> CheckpointUnreadable:
    return CheckpointUnreadable(
        'Cannot resume: no checkpoint of this trial can be read. '
        + ' '.join(f'{p}.' for p in problems)
        + f' To start the trial over, delete {Path(trial_dir)} (or run it under another '
        '--experiment name).')


def verify(trial_dir: Path) -> None:
    """Refuse (CheckpointUnreadable) before anything runs when a trial has checkpoints
    and none passes its hash check; reads bytes only, unpickles nothing."""
    candidates = [p for p in (checkpoint_path(trial_dir), previous_path(trial_dir)) if p.exists()]
    problems: List[str] = []
    for path in candidates:
        try:
            _checked_body(path)
            return
        except (OSError, ValueError) as e:
            problems.append(f'{path}: {e}')
    if problems:
        raise _unreadable(trial_dir, problems)


def load(trial_dir: Path, framework: str,
         warn: Callable[[str], None] = _warn) -> Optional[Dict[str, Any]]:
    """The newest readable generation, or None when the trial has no checkpoint yet.

    Falls back to the previous generation (with a message through ``warn``) when
    the latest cannot be read; raises CheckpointUnreadable when none can.
    """
    candidates = [p for p in (checkpoint_path(trial_dir), previous_path(trial_dir)) if p.exists()]
    if not candidates:
        return None
    problems: List[str] = []
    for path in candidates:
        try:
            payload = _read(path, framework)
        except (OSError, ValueError) as e:
            problems.append(f'{path}: {e}')
            continue
        if problems:
            step = (payload.get('counters') or {}).get('step')
            warn(f'checkpoint: {problems[0]}; resuming from the previous checkpoint {path.name} '
                 f'(step {step}) instead')
        return payload
    raise _unreadable(trial_dir, problems)
