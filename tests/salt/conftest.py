"""Fixtures for the SALT tests: generated text, prepared lm data and a 2-step teacher."""

from __future__ import annotations

import pytest

from tests.salt.slm_fixtures import make_slm_data
from tests.workloads.conftest import write_generated_plays


@pytest.fixture(scope='session')
def slm_data_dir(tmp_path_factory):
    """A data root with lm/ and the base workload's tiny teacher (treat as read-only)."""
    text = tmp_path_factory.mktemp('slm_text')
    write_generated_plays(text)
    return make_slm_data(tmp_path_factory.mktemp('slm_data'), text)
