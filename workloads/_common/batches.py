"""A resumable batch iterator that transforms another one (e.g. puts it on a device)."""

from __future__ import annotations

from typing import Any, Callable, Dict

from harness import spec


class MappedBatches(spec.BatchIterator):
    """``fn(batch)`` for each batch of ``inner``; ``position`` is the inner one's.

    Setting ``position`` (or ``load_state_dict``) seeks the inner iterator, so a
    framework wrapper stays exactly as resumable as the numpy pipeline under it.
    """

    def __init__(self, inner: spec.BatchIterator, fn: Callable[[Dict[str, Any]], Dict[str, Any]]):
        self.inner = inner
        self.fn = fn

    @property
    def position(self) -> int:  # type: ignore[override]
        return self.inner.position

    @position.setter
    def position(self, value: int) -> None:
        self.inner.position = int(value)

    def __next__(self) -> Dict[str, Any]:
        return self.fn(next(self.inner))
