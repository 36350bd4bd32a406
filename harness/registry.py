"""Registries of workloads and submissions: name -> lazy import.

Workloads are discovered from the packages under ``workloads/`` (each defines
``INFO`` in its ``__init__.py``, which imports no framework). Submissions are
the folders under ``submissions/`` or any path a user gives. Nothing here
imports torch or jax until a framework class is asked for.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
from pathlib import Path
from typing import Dict, Optional

from harness import spec
from harness.errors import UserInputError, unknown_name_error

SUBMISSION_MODULES = {'jax': 'jax_submission.py', 'pytorch': 'pytorch_submission.py'}
SEARCH_SPACE_NAMES = ('search_space.yaml', 'search_space.yml', 'search_space.json',
                      'tuning_search_space.json')


def load_object(ref: str):
    """Import 'package.module:attr'."""
    module_name, _, attr = ref.partition(':')
    return getattr(importlib.import_module(module_name), attr)


@functools.lru_cache(maxsize=None)
def workload_infos() -> Dict[str, spec.WorkloadInfo]:
    import workloads

    infos: Dict[str, spec.WorkloadInfo] = {}
    for mod in pkgutil.iter_modules(workloads.__path__):
        if not mod.ispkg or mod.name.startswith('_'):
            continue
        package = importlib.import_module(f'workloads.{mod.name}')
        info = getattr(package, 'INFO', None)
        if info is None:
            continue
        if info.name in infos:
            raise RuntimeError(f'Two workload packages register the name {info.name!r}.')
        infos[info.name] = info
    return infos


def workload_info(name: str) -> spec.WorkloadInfo:
    infos = workload_infos()
    if name not in infos:
        raise unknown_name_error('workload', name, infos)
    return infos[name]


def check_framework(framework: str) -> None:
    if framework not in spec.FRAMEWORKS:
        raise unknown_name_error('framework', framework, spec.FRAMEWORKS)


def validate_workload_choice(name: str, size: Optional[str], variant: Optional[str],
                             framework: Optional[str] = None) -> spec.WorkloadInfo:
    """Check name, size, variant and framework; raise one clear UserInputError."""
    info = workload_info(name)
    if size is not None and size not in info.sizes:
        raise unknown_name_error(f'size of workload {name!r} (size)', size, info.sizes)
    if variant is not None and variant not in info.variants:
        raise unknown_name_error(f'variant of workload {name!r} (variant)', variant,
                                 info.variants)
    if framework is not None:
        check_framework(framework)
        if framework not in info.classes:
            raise UserInputError(
                f'Workload {name!r} has no {framework} implementation; '
                f'it has: {", ".join(sorted(info.classes))}.')
    return info


def make_workload(name: str, framework: str, size: Optional[str] = None,
                  variant: Optional[str] = None,
                  budget: Optional[spec.Budget] = None) -> spec.Workload:
    """Construct a workload (imports its framework)."""
    info = validate_workload_choice(name, size, variant, framework)
    cls = load_object(info.classes[framework])
    return cls(size=size or info.sizes[0], variant=variant, budget=budget)


# ---- submissions -------------------------------------------------------------

def submissions_root() -> Path:
    import submissions

    return Path(next(iter(submissions.__path__)))


def builtin_submissions() -> Dict[str, Path]:
    root = submissions_root()
    return {
        p.name: p
        for p in sorted(root.iterdir())
        if p.is_dir() and not p.name.startswith(('_', '.'))
        and any((p / m).exists() for m in SUBMISSION_MODULES.values())
    }


def submission_kind(path: Path) -> str:
    """'federated' if the submission defines ``client_update``, else 'centralized'.

    Read from the source (no import), so listing submissions imports no framework.
    """
    import ast

    files = [path] if path.is_file() else [path / m for m in SUBMISSION_MODULES.values()]
    for file in files:
        if not file.exists():
            continue
        try:
            tree = ast.parse(file.read_text(encoding='utf-8'))
        except (SyntaxError, UnicodeDecodeError):
            continue
        names = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.Assign))
                 and hasattr(n, 'name')}
        names |= {t.id for n in tree.body if isinstance(n, ast.Assign) for t in n.targets
                  if isinstance(t, ast.Name)}
        if 'client_update' in names:
            return 'federated'
    return 'centralized'


def resolve_submission(name_or_path: str) -> Path:
    """A built-in submission name, a submission folder, or a single .py file."""
    path = Path(name_or_path).expanduser()
    if path.exists():
        if path.is_file() and path.suffix != '.py':
            raise UserInputError(
                f'{path} is not a submission: give a folder holding '
                f'{" or ".join(SUBMISSION_MODULES.values())}, or a single .py file.')
        if path.is_dir() and not any((path / m).exists() for m in SUBMISSION_MODULES.values()):
            raise UserInputError(
                f'{path} is not a submission folder: it holds neither '
                f'{" nor ".join(SUBMISSION_MODULES.values())}. '
                'See submissions/adamw for the layout.')
        return path.resolve()
    known = builtin_submissions()
    if name_or_path in known:
        return known[name_or_path]
    if '/' in name_or_path or name_or_path.endswith('.py'):
        raise UserInputError(f'Submission path {name_or_path} does not exist.')
    raise unknown_name_error('submission', name_or_path, known,
                             hint='A submission may also be given as a path to its folder.')


def submission_name(path: Path) -> str:
    return path.stem if path.is_file() else path.name
