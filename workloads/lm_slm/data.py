"""``timetrial prepare lm_slm``: the lm data (if missing), then the teachers.

The student's data is lm's, under ``<data_dir>/lm/`` (prepared by ``lm``'s own
``prepare``, which ``source`` is passed to); the teachers live under
``<data_dir>/lm_slm/<size>/<teacher>/`` (format: ``teacher.py``).

Which teachers, where the command line is silent:

- ``variant=None`` prepares the base workload's (weak) teacher only, and a
  variant its own: what a trial of it needs, nothing more (``timetrial run``
  prepares each workload entry of a suite this way; the other teachers take
  most of the ~45 minutes all of them cost on 2 CPU cores). Every teacher:
  ``timetrial prepare lm_slm`` once per variant.
- Sizes: ``tiny`` always; ``small`` only when the training framework sees an
  accelerator (training it on a CPU would take days). ``sizes=`` overrides;
  ``python -m workloads.lm_slm.train_teacher --size small ...`` trains one.
- A teacher already trained with the current recipe on the current lm data is
  kept; a changed recipe or re-prepared lm data retrains it.
- Every teacher is then checked against its regime (``teacher.regime_problems``)
  with the student's shipped target: a weak teacher that ends within
  ``teacher.WEAK_MARGIN_NATS`` of the target (or beats it) fails ``prepare`` with
  the numbers, after every teacher has been trained; the strong control that does
  not beat the target is reported in the log.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional, Sequence, Union

from harness.errors import DataNotPreparedError, UserInputError
from workloads.lm import data as lm_data
from workloads.lm import workload as lm
from workloads.lm_slm import teacher as teacher_lib
from workloads.lm_slm import train_teacher
from workloads.lm_slm.workload import VARIANTS

Log = Callable[[str], None]
PathLike = Union[str, Path]


def prepare(
    data_dir: PathLike,
    variant: Optional[str] = None,
    source: Optional[PathLike] = None,
    log: Log = print,
    *,
    sizes: Optional[Sequence[str]] = None,
    framework: Optional[str] = None,
    steps: Optional[int] = None,
) -> Path:
    """Prepare lm's data if needed, then train the teachers (see the module docstring).

    ``steps`` overrides the recipe's step count (tests only: such a teacher is
    not the reference one, and a later plain ``prepare`` retrains it).
    """
    if variant is not None and variant not in VARIANTS:
        raise UserInputError(
            f'lm_slm has no variant {variant!r}; its variants: '
            f'{", ".join(VARIANTS)} (or none: the default teacher).'
        )
    unknown = [s for s in (sizes or ()) if s not in teacher_lib.RECIPES]
    if unknown:
        raise UserInputError(
            f'lm_slm has no size(s) {", ".join(map(repr, unknown))}; '
            f'its sizes: {", ".join(teacher_lib.RECIPES)}.'
        )
    data_dir = str(Path(data_dir).expanduser())
    try:
        lm_data.load_meta(data_dir)
        prepared = True
    except DataNotPreparedError:
        prepared = False
    if source is not None or not prepared:
        lm_data.prepare(data_dir, source=source, log=log)
    framework = framework or train_teacher.default_framework()
    if sizes is None:
        sizes = ['tiny']
        if train_teacher.has_accelerator(framework):
            sizes.append('small')
        else:
            log(
                'lm_slm: no accelerator found: preparing the tiny teachers only. Train the '
                'small ones on a GPU machine (`timetrial prepare lm_slm` there), or with '
                '`python -m workloads.lm_slm.train_teacher --size small --data-dir DIR`.'
            )
    names = [teacher_lib.TEACHER_OF_VARIANT[variant]]
    problems = []
    for size in sizes:
        target = lm.BUDGETS[size].validation_target_value
        for name in names:
            meta = train_teacher.ensure_teacher(
                data_dir, size, name, framework=framework, steps=steps, log=log
            )
            problems += _regime_report(meta, target, log)
    if problems:
        raise UserInputError(
            'lm_slm: teacher(s) outside their regime (kept on disk; every trial would refuse '
            'them):\n  ' + '\n  '.join(problems) + '\nGive such a teacher fewer steps in '
            'workloads/lm_slm/teacher.py TEACHERS and prepare again.'
        )
    return Path(data_dir) / 'lm_slm'


def _regime_report(meta, target: float, log: Log) -> list:
    """Log a teacher's loss against the shipped target; its regime problems, if any."""
    name, size = meta.get('name'), meta.get('size')
    loss = meta.get('training', {}).get('validation_loss')
    role = meta.get('role', 'weak')
    if isinstance(loss, (int, float)):
        log(
            f'lm_slm: teacher:{name} size:{size} role:{role} validation_loss:{loss:.4f} '
            f'target:{target:g} margin_nats:{loss - target:+.4f}'
        )
        if role != 'weak' and loss >= target:
            log(
                f'lm_slm: the strong-teacher control {name} ({size}) does not beat the '
                f'student\'s target {target:g} on this data: a larger corpus is needed for a '
                'strong control'
            )
    return [f'{name} ({size}): {p}' for p in teacher_lib.regime_problems(meta, target)]
