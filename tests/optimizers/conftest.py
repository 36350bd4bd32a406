"""Lets the optimizer tests import their shared ``optim_problems`` module."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
