"""What a backend does about other processes when there are none (JAX, one-process PyTorch).

JAX runs data parallel inside one process (a device mesh), so its runner never
has to agree with anyone. PyTorch DDP runs one process per device
(``harness.trial.backends.torch_ddp``) and overrides these with collectives.
"""

from __future__ import annotations

from typing import Any, List, Sequence


class SingleProcess:
    world_size = 1
    rank = 0
    #: Only the writer writes results files, logs and checkpoints.
    is_writer = True

    def agree_max(self, values: Sequence[float]) -> List[float]:
        """The elementwise maximum of ``values`` over all processes of the trial."""
        return [float(v) for v in values]

    def barrier(self) -> None:
        """Wait until every process of the trial gets here."""

    def from_writer(self, obj: Any) -> Any:
        """The writer's ``obj`` in every process (so that all take the same decision)."""
        return obj

    def prepare_model(self, params: Any) -> Any:
        """Wrap a freshly built or restored model for multi-process training (DDP)."""
        return params
