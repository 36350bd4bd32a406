"""Results files of one trial: DESIGN.md's layout, written append-only or atomically.

A killed process never leaves a half-written ``result.json``, ``trial.yaml``
or ``meta.json`` (temp file + fsync + rename) and never a torn line in
``evals.jsonl`` that a reader would trust (readers skip an unterminated last
line).
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Dict, List, Optional

import yaml

TRIAL_YAML = 'trial.yaml'
META_JSON = 'meta.json'
EVALS_JSONL = 'evals.jsonl'
RESULT_JSON = 'result.json'
CHECKPOINT_DIR = 'checkpoint'
LOG_FILE = 'trial.log'
ERROR_FILE = 'error.txt'

STATUSES = ('reached', 'budget_exhausted', 'diverged', 'failed', 'training_complete')


def _json_default(obj):
    if hasattr(obj, 'item'):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f'not JSON serializable: {type(obj).__name__}')


def _clean(value):
    """JSON has no NaN/inf: write them as null (scoring reads null as missing)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f'.{path.name}.', suffix='.tmp')
    try:
        with os.fdopen(fd, 'wb') as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode('utf-8'))


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(_clean(obj), indent=2, sort_keys=True,
                                       default=_json_default) + '\n')


def atomic_write_yaml(path: Path, obj: Any) -> None:
    atomic_write_text(path, yaml.safe_dump(_clean(obj), sort_keys=False))


def append_jsonl(path: Path, obj: Dict[str, Any]) -> None:
    """Append one line and fsync it; the line is written in a single call."""
    line = json.dumps(_clean(obj), sort_keys=True, default=_json_default) + '\n'
    with open(path, 'a', encoding='utf-8') as f:
        f.write(line)
        f.flush()
        os.fsync(f.fileno())


def read_jsonl(path: Path) -> List[Dict[str, Any]]:
    """All complete lines; a torn last line (no newline) is ignored."""
    path = Path(path)
    if not path.exists():
        return []
    rows = []
    with open(path, encoding='utf-8') as f:
        for line in f:
            if not line.endswith('\n'):
                break
            if line.strip():
                rows.append(json.loads(line))
    return rows


def truncate_evals(path: Path, keep: int) -> None:
    """Keep the first ``keep`` evaluations: on resume, evaluations after the
    checkpoint are redone, so their earlier copies are dropped (atomically)."""
    rows = read_jsonl(path)[:keep]
    atomic_write_text(path, ''.join(json.dumps(r, sort_keys=True) + '\n' for r in rows))


def read_json(path: Path) -> Optional[Dict[str, Any]]:
    path = Path(path)
    if not path.exists():
        return None
    with open(path, encoding='utf-8') as f:
        return json.load(f)


def read_yaml(path: Path) -> Optional[Dict[str, Any]]:
    path = Path(path)
    if not path.exists():
        return None
    with open(path, encoding='utf-8') as f:
        return yaml.safe_load(f)
