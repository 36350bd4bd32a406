"""torch.compile for the PyTorch workloads: when it is on, where it runs, and its fallback.

The setting is the environment variable ``TIMETRIAL_TORCH_COMPILE``, read when
a workload builds its model (``init_model_fn``):

- ``auto`` (the default): compiled on GPUs, eager on the CPU. On a GPU a
  compile costs about what JAX's jit does and the compiled step is what makes
  the frameworks comparable. On the 2-core reference CPU inductor builds its
  kernels with the C++ compiler: a cold compile of lm ``tiny`` took ~100 s
  (ctr ~37 s; a loaded machine) of a 150 s budget, for a step ~1.4x faster,
  while JAX's first step took ~11 s there. The numbers and the commands that
  re-measure them: ``docs/torch_compile.md``.
- ``on``: compiled on any device; ``off``: eager everywhere.

What runs compiled: a workload's model in TRAIN mode (its forward, and through
AOTAutograd its backward), lm's training loss, and lm_slm's teacher forward,
all on the submission's clock. Evaluation (off the clock) runs eager: a
compile there would cost wall time and save nothing that is measured.

Timing rules, as for ``jax.jit``:

- Compilation happens inside the first call, i.e. inside the submission's
  first ``update_params``: on the clock. Nothing is warmed up beforehand.
- Each process compiles cold: unless ``TORCHINDUCTOR_CACHE_DIR`` names a
  folder of the user's, the first compile points inductor's on-disk caches at
  a fresh temporary folder (removed at exit), so a trial never profits from an
  earlier trial's compilation (JAX keeps no persistent cache here either).
- ``harness.trial.backends.torch_backend.compile_count`` counts dynamo's compiled
  graphs, so the runner flags recompiles after warm-up as it does for JAX.

The compiled wrapper (``torch.compile(module)``, parameters shared) never
leaves this module: a workload's params stay the eager ``nn.Module``, so
state dicts, checkpoints and submissions see the same names with compile on
or off (no ``_orig_mod.`` prefix). Under DDP the DDP-wrapped module is the one
compiled, as torch recommends (DDPOptimizer splits the graph at the gradient
buckets). Called inside a ``torch.func`` transform (the federated
submissions' ``vmap(grad(...))``) the model runs eager: dynamo does not
compile under an active functorch transform; such a submission compiles its
transformed function itself, as a JAX submission jits its own.

A compiling workload's first training call writes one line to the trial log
(through the workload's metrics logger), ``step:0 torch_compile:on
reason:'auto: compiled on a GPU'``; an eager one writes nothing. If compiling
fails, the call is run eager, the workload stays eager, and the reason is
logged and warned (``RuntimeWarning``): ``torch_compile:fallback
reason:'BackendCompilerFailed (RuntimeError): ...'``. ``grep torch_compile
trial.log`` shows both.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import warnings
import weakref
from typing import Any, Callable, Dict, Optional, Tuple

import torch

from harness.errors import UserInputError

ENV_VAR = 'TIMETRIAL_TORCH_COMPILE'
SETTINGS = ('auto', 'on', 'off')
#: torch.compile's backend for the workloads (tests swap in a fast or a failing one).
BACKEND: Any = 'inductor'
_CACHE_ENV_VAR = 'TORCHINDUCTOR_CACHE_DIR'

Report = Callable[[Dict[str, Any], int], None]


def setting() -> str:
    """The value of ``TIMETRIAL_TORCH_COMPILE`` (``auto`` when unset), checked."""
    raw = os.environ.get(ENV_VAR, '')
    value = raw.strip().lower() or 'auto'
    if value not in SETTINGS:
        raise UserInputError(
            f'{ENV_VAR}={raw!r} is not a setting: use one of {", ".join(SETTINGS)} '
            '(auto compiles on GPUs and runs eager on the CPU).'
        )
    return value


def decide(device: torch.device) -> Tuple[bool, str]:
    """(compile?, why) for a model on ``device`` under the current setting."""
    value = setting()
    if value != 'auto':
        return value == 'on', f'{ENV_VAR}={value}'
    if device.type == 'cuda':
        return True, 'auto: compiled on a GPU'
    return False, (
        f'auto: eager on the CPU (a cold compile with the C++ compiler costs more than it '
        f'saves at CPU sizes; {ENV_VAR}=on compiles)'
    )


def inside_functorch_transform() -> bool:
    """True inside ``torch.func.vmap``/``grad``/..., where dynamo runs code eager."""
    peek = getattr(getattr(torch._C, '_functorch', None), 'peek_interpreter_stack', None)
    return peek is not None and peek() is not None


def _use_private_inductor_cache() -> None:
    """Once per process: inductor's on-disk caches in a fresh folder (a cold compile).

    torch itself sets ``TORCHINDUCTOR_CACHE_DIR`` to its default folder when dynamo is
    imported (building a model on the meta device does that), so only another folder
    counts as the user's choice.
    """
    from torch._inductor.runtime.cache_dir_utils import default_cache_dir

    current = os.environ.get(_CACHE_ENV_VAR)
    if current and os.path.abspath(current) != os.path.abspath(default_cache_dir()):
        return  # the user's folder (a warm cache, on purpose), or ours from an earlier call
    folder = tempfile.mkdtemp(prefix='timetrial-inductor-')
    os.environ[_CACHE_ENV_VAR] = folder
    atexit.register(shutil.rmtree, folder, True)


def _warn(record: Dict[str, Any]) -> None:
    warnings.warn(' '.join(f'{k}:{v}' for k, v in record.items()), RuntimeWarning, stacklevel=3)


def _short(error: BaseException) -> str:
    """'Type (RootCauseType): first line of the root cause', at most ~300 characters."""
    root = error
    for _ in range(10):  # dynamo wraps the compiler's own error (inner_exception, __cause__)
        inner = getattr(root, 'inner_exception', None) or root.__cause__
        if inner is None or inner is root:
            break
        root = inner
    lines = str(root).strip().splitlines()
    kind = type(error).__name__ + (f' ({type(root).__name__})' if root is not error else '')
    return f'{kind}: {lines[0][:300] if lines else ""}'


class Compiler:
    """Calls a module (or function) compiled with ``torch.compile``, or eagerly.

    One per workload. ``compiler(fn, *args, **kwargs)`` is ``fn(*args, **kwargs)``,
    compiled on the first call for each ``fn`` when ``enabled``. ``report(record,
    calls)`` receives the log records ('on' at the first call, a fallback);
    ``calls`` is the number of earlier calls, the step of a submission that trains
    with one forward pass per step. A fallback is also a ``RuntimeWarning``.
    ``backend`` and ``mode`` go to ``torch.compile`` (tests use dynamo's fast
    ``'aot_eager'`` backend, or one that fails on purpose).
    """

    def __init__(
        self,
        enabled: bool,
        reason: str,
        report: Optional[Report] = None,
        backend: Any = 'inductor',
        mode: Optional[str] = None,
    ):
        self.enabled, self.reason = enabled, reason
        self._report = report or (lambda record, calls: None)
        self._backend, self._mode = backend, mode
        self._compiled: 'weakref.WeakKeyDictionary[Any, Callable]' = weakref.WeakKeyDictionary()
        self._calls = 0
        self._skipped_in_transform = False

    @classmethod
    def for_device(cls, device: torch.device, report: Optional[Report] = None) -> 'Compiler':
        """The compiler the setting asks for on ``device``."""
        return cls(*decide(device), report=report, backend=BACKEND)

    def __call__(self, fn: Callable, *args, **kwargs):
        if self._calls == 0 and self.enabled:
            self._report({'torch_compile': 'on', 'reason': repr(self.reason)}, 0)
        self._calls += 1
        if not self.enabled or hasattr(fn, '_orig_mod'):  # off, or compiled by the submission
            return fn(*args, **kwargs)
        if inside_functorch_transform():
            if not self._skipped_in_transform:
                self._skipped_in_transform = True
                self._report({'torch_compile': 'eager_in_transform', 'reason': repr(
                    'called inside a torch.func transform, where dynamo does not compile')},
                    self._calls - 1)
            return fn(*args, **kwargs)
        compiled = self._compiled.get(fn)
        if compiled is None:
            if self._backend == 'inductor':
                _use_private_inductor_cache()
            # dynamic=False: one static graph per input shape, as jax.jit specializes.
            compiled = torch.compile(fn, backend=self._backend, mode=self._mode, dynamic=False)
            self._compiled[fn] = compiled
        try:
            return compiled(*args, **kwargs)
        except Exception as error:  # noqa: BLE001 — any compiler failure: fall back, say why
            out = fn(*args, **kwargs)  # An error eager raises too is the caller's: it propagates.
            self.enabled = False
            self.reason = _short(error)
            record = {'torch_compile': 'fallback', 'reason': repr(self.reason)}
            self._report(record, self._calls - 1)
            _warn(record)
            return out


def workload_reporter(workload) -> Report:
    """Records to ``workload.metrics_logger``: the trial log (dropped without a logger)."""

    def report(record: Dict[str, Any], calls: int) -> None:
        logger = getattr(workload, 'metrics_logger', None)
        if logger is not None:
            logger.append_scalar_metrics(record, calls)

    return report


def compiler_of(workload) -> Compiler:
    """The workload's compiler, made from the setting on first use (``init_model_fn``)."""
    compiler = getattr(workload, '_torch_compiler', None)
    if compiler is None:
        from workloads._common.torch_utils import device

        compiler = Compiler.for_device(device(), workload_reporter(workload))
        workload._torch_compiler = compiler
    return compiler
