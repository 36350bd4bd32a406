"""Framework glue for the runner: RNG, device sync, checkpoint conversion.

``get_backend('jax')`` imports jax only; ``get_backend('pytorch')`` imports
torch only.
"""

from __future__ import annotations

import functools

from harness.errors import unknown_name_error
from harness.spec import FRAMEWORKS


@functools.lru_cache(maxsize=None)
def get_backend(framework: str):
    if framework == 'jax':
        from harness.trial.backends.jax_backend import JaxBackend

        return JaxBackend()
    if framework == 'pytorch':
        from harness.trial.backends.torch_backend import TorchBackend

        return TorchBackend()
    raise unknown_name_error('framework', framework, FRAMEWORKS)
