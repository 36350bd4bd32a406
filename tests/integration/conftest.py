"""Shared fixtures of the integration tests: real data, prepared once per session."""

import os
from pathlib import Path

import pytest


@pytest.fixture(scope='session')
def data_dir(tmp_path_factory) -> str:
    """$TIMETRIAL_DATA_DIR if set (a developer's cache), else a fresh dir prepared here."""
    root = os.environ.get('TIMETRIAL_DATA_DIR') or str(tmp_path_factory.mktemp('data'))
    from harness.prepare import prepare

    if not (Path(root) / 'lm' / 'train.bin').exists():
        prepare('lm', root, log=lambda m: None)
    return root
