"""Prepared lm data plus a quickly trained lm_slm teacher, for tests (no network)."""

from __future__ import annotations

from pathlib import Path


def make_slm_data(root: Path, text_dir: Path, teachers=('quarter',), steps: int = 2) -> str:
    """``root`` with lm/ prepared from ``text_dir`` and tiny teachers trained ``steps`` steps.

    ``quarter`` is the base workload's teacher. A real recipe trains for hundreds of steps;
    two are enough to test loading, parity and accounting (such a teacher is flagged as not
    current, so a real prepare retrains it).
    """
    from workloads.lm import data as lm_data
    from workloads.lm_slm import train_teacher

    lm_data.prepare(str(root), source=str(text_dir), log=lambda _: None)
    for name in teachers:
        train_teacher.train_teacher(
            str(root), 'tiny', name, framework='jax', steps=steps, log=lambda _: None
        )
    return str(root)
