"""A file scoring could not use, and why (reported, never raised)."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Problem:
    """A file that could not be used, and why."""

    path: str
    reason: str

    def __str__(self) -> str:
        return f'{self.path}: {self.reason}'
