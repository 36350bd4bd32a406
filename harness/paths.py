"""Where data, results and this machine's calibration live by default (stdlib only)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

DATA_DIR_ENV = 'TIMETRIAL_DATA_DIR'
TARGETS_ENV = 'TIMETRIAL_TARGETS_DIR'


def default_data_dir() -> Path:
    """``$TIMETRIAL_DATA_DIR``, else ``$XDG_CACHE_HOME/timetrial``, else ``~/.cache/timetrial``."""
    if os.environ.get(DATA_DIR_ENV):
        return Path(os.environ[DATA_DIR_ENV]).expanduser()
    cache = os.environ.get('XDG_CACHE_HOME') or os.path.join(os.path.expanduser('~'), '.cache')
    return Path(cache) / 'timetrial'


def resolve_data_dir(data_dir: Optional[str]) -> Path:
    return Path(data_dir).expanduser() if data_dir else default_data_dir()


def targets_dir() -> Path:
    """Calibration of this machine's hardware classes: targets, budgets, noise floors.

    ``$TIMETRIAL_TARGETS_DIR``, else ``$XDG_CONFIG_HOME/timetrial/targets``, else
    ``~/.config/timetrial/targets``.
    """
    if os.environ.get(TARGETS_ENV):
        return Path(os.environ[TARGETS_ENV]).expanduser()
    config = os.environ.get('XDG_CONFIG_HOME') or os.path.join(os.path.expanduser('~'), '.config')
    return Path(config) / 'timetrial' / 'targets'


def noise_floor_file(hardware_class: str) -> Path:
    """Where ``timetrial noise`` records this hardware class's noise floors."""
    return targets_dir() / f'{hardware_class}.noise.json'
