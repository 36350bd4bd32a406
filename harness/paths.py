"""Where data and results live by default."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

DATA_DIR_ENV = 'TIMETRIAL_DATA_DIR'


def default_data_dir() -> Path:
    """``$TIMETRIAL_DATA_DIR``, else ``$XDG_CACHE_HOME/timetrial``, else ``~/.cache/timetrial``."""
    if os.environ.get(DATA_DIR_ENV):
        return Path(os.environ[DATA_DIR_ENV]).expanduser()
    cache = os.environ.get('XDG_CACHE_HOME') or os.path.join(os.path.expanduser('~'), '.cache')
    return Path(cache) / 'timetrial'


def resolve_data_dir(data_dir: Optional[str]) -> Path:
    return Path(data_dir).expanduser() if data_dir else default_data_dir()
