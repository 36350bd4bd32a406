"""Static rules check of a submission's source (``ast``, nothing is imported or run).

What the benchmark's rules forbid and the source shows, as errors with file and
line; what a human must judge, as warnings. Errors stop ``timetrial submit``
before anything runs.

Errors:

- ``workload-name``: logic keyed on the workload's name outside ``get_batch_size``
  (and the federated ``get_round_config``, and module-level helpers only they
  call): comparisons, branches, ``match``, dict lookups and string tests on
  ``workload.name``, ``workload_name``, ``type(workload)`` or a variable assigned
  from them.
- ``workload-class``: ``isinstance``/``issubclass`` against a workload class.
- ``internals``: private attributes of the workload (``workload._x``,
  ``getattr(workload, '_x')``, ``vars(workload)``), setting attributes on the
  workload, private names of harness modules, imports of ``harness.*`` other
  than ``harness.spec`` and ``harness.spec_federated``, of ``workloads.*``,
  ``scoring.*`` or ``algoperf.workloads``; and the routes around the workload
  view that no object in the process can close (``harness.submission.view``),
  wherever they appear: a function's ``__globals__``, ``__closure__``/
  ``cell_contents``, ``__code__``, ``__func__``, ``__self__``, ``__wrapped__``,
  ``__builtins__``; ``__subclasses__``, ``__getattribute__``, ``__reduce__``/
  ``__reduce_ex__``/``__getstate__``; weak references' callbacks (``__callback__``,
  ``weakref.getweakrefs``); frames and tracebacks (``__traceback__``,
  ``tb_frame``, ``f_back``, ``f_locals``, ``f_globals``, ``gi_frame``, ...,
  ``sys._getframe``, ``sys._current_frames``, ``sys.exc_info``, ``sys.settrace``/
  ``setprofile``, ``inspect.currentframe``/``stack``/``trace``/``getmembers``/
  ``getattr_static``/``getclosurevars``, ``traceback.walk_tb``); the object graph
  (``gc`` beyond ``collect``/``enable``/``disable``/``isenabled``); every loaded
  module (``sys.modules``, ``sys.monitoring``); raw memory (``ctypes``, ``cffi``).
  Also as literal names given to ``getattr``/``hasattr``/``operator.attrgetter``,
  or names built from a piece of one (``'__glob' + 'als__'``).
- ``dynamic``: ``exec``/``eval``/``compile`` of code, and ``__import__``/
  ``importlib.import_module`` of a module, named at run time: they could build any
  refused route. A literal argument is checked as if written out.
- ``environment``: changing environment variables (``os.environ[...] = ``,
  ``del os.environ[...]``, ``os.environ.update/setdefault/pop/...``,
  ``os.putenv``, ``os.unsetenv``).
- ``concurrency``: threads or processes started by submission code: importing
  ``threading``, ``_thread``, ``multiprocessing``, ``concurrent.futures``,
  ``subprocess``, ``torch.multiprocessing``, or calling ``os.fork``/``os.system``/
  ``os.popen``/``os.spawn*``/``os.exec*``. Work done on another thread or process
  escapes the submission's clock. (An import is flagged even if nothing is
  started: statically one cannot tell, and the modules have no other use here.)

Warnings:

- the workload's name read outside those functions but not used to decide
  anything (logging it is fine; passing it on to decide elsewhere is not);
- a workload attribute outside the submission's view (``harness.submission.view``):
  it raises ``AttributeError`` at run time unless the workload adds it
  (``submission_attributes``, e.g. a teacher model's API);
- comparing with a string equal to a registered workload name;
- files that look like evaluation data, ``TIMETRIAL_DATA_DIR``;
- process-wide settings (``jax.config.update``, ``torch.set_num_threads``),
  ``DataLoader(num_workers=...)`` (worker processes); ``getattr(workload, name)``
  with a computed name.

Not closed: an attribute name computed at run time without a refused piece in
the source (``getattr(f, chr(95) * 2 + ...)``) on an object other than the
workload passes unseen; a human reviewing a submission looks for such names.

"The workload" is any name ``workload`` or ``*_workload`` (the contract's
parameter name); the checks are per file, so a name passed to a helper in
another file is only a warning there. The visitor is ``harness.rules.visitor``
(imports, internals, environment, concurrency) with the name rules of
``harness.rules.names``.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Iterable, List, Optional, Sequence

from harness import registry
from harness.errors import UserInputError
from harness.rules.visitor import Checker, Finding


def check_source(
    source: str, filename: str = '<string>', workload_names: Iterable[str] = ()
) -> List[Finding]:
    """Findings for one file's source, in line order."""
    try:
        tree = ast.parse(source, filename=filename)
    except SyntaxError as e:
        return [
            Finding(
                filename,
                e.lineno or 1,
                (e.offset or 0) or 1,
                'error',
                'syntax',
                f'not valid Python: {e.msg}',
            )
        ]
    checker = Checker(filename, tree, workload_names)
    checker.visit(tree)
    return sorted(checker.findings, key=lambda f: (f.line, f.col, f.rule))


def source_files(path: Path) -> List[Path]:
    """The submission's Python files: the file itself, or every .py under the folder."""
    path = Path(path)
    if path.is_file():
        return [path]
    return sorted(
        f
        for f in path.rglob('*.py')
        if not any(p.startswith('.') or p == '__pycache__' for p in f.relative_to(path).parts)
    )


def _registered_workload_names() -> List[str]:
    return list(registry.workload_infos())


def check_path(path: Path, workload_names: Optional[Iterable[str]] = None) -> List[Finding]:
    """Findings for every Python file of a submission (folder or single file)."""
    names = list(workload_names) if workload_names is not None else _registered_workload_names()
    findings: List[Finding] = []
    for file in source_files(path):
        findings.extend(check_source(file.read_text(encoding='utf-8'), str(file), names))
    return findings


def raise_on_errors(findings: Sequence[Finding], path: Path) -> None:
    """UserInputError listing every error (warnings too, for context) if there is one."""
    errors = [f for f in findings if f.severity == 'error']
    if not errors:
        return
    warnings = [f for f in findings if f.severity == 'warning']
    lines = [str(f) for f in errors]
    if warnings:
        lines += [f'({len(warnings)} warning(s), for a human to judge:)'] + [
            str(f) for f in warnings
        ]
    raise UserInputError(
        f'Submission {path} breaks the benchmark rules ({len(errors)} error(s)); nothing was '
        'run. Fix each line below (the rules: harness/rules/check.py):\n  ' + '\n  '.join(lines)
    )
