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


@pytest.fixture(scope='session', autouse=True)
def quick_teacher(data_dir):
    """lm_slm's reference teachers take minutes to train on a CPU; these tests only need
    one that loads and runs, so a 20-step tiny teacher is trained unless one exists."""
    from workloads.lm_slm import data as slm_data
    from harness.registry import make_workload

    workload = make_workload('lm_slm', 'pytorch', 'tiny')
    try:
        workload.check_data(data_dir)
    except Exception:  # noqa: BLE001 — not prepared yet
        slm_data.prepare(data_dir, sizes=['tiny'], steps=20, log=lambda m: None)
