"""Load a submission and check it against the contract, reporting every problem at once.

A submission is a folder holding ``jax_submission.py`` and/or
``pytorch_submission.py`` and one search space (``search_space.yaml``; AlgoPerf's
``tuning_search_space.json`` is accepted too), or a single AlgoPerf-style
``.py`` file for one framework, told by its imports
(``harness.submission.framework``). The functions are called by keyword, so their
parameter names must be AlgoPerf's; ``update_params`` may leave out
``train_state`` and ``prepare_for_eval`` is optional.

A submission module may define ``validate_hyperparameters(hparams: dict) ->
list[str]``; ``timetrial check`` calls it on the corners of the search space so
that a bad value (a rank larger than a dimension, a zero block size) is
reported before any job runs.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import inspect
import sys
import traceback
from pathlib import Path
from types import ModuleType
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from harness import registry
from harness.errors import UserInputError
from harness.spec import FRAMEWORKS, SUBMISSION_FUNCTIONS
from harness.submission import algoperf_compat, search_space
from harness.submission.framework import file_framework


@dataclasses.dataclass
class Submission:
    name: str
    path: Path
    framework: str
    module: ModuleType
    get_batch_size: Callable
    init_optimizer_state: Callable
    update_params: Callable
    data_selection: Callable
    prepare_for_eval: Optional[Callable]
    #: update_params accepts the read-only ``train_state`` keyword.
    accepts_train_state: bool
    #: Workload attributes it needs beyond AlgoPerf's API (``REQUIRES_WORKLOAD_API``).
    requires_workload_api: Tuple[str, ...] = ()


def module_path(path: Path, framework: str) -> Optional[Path]:
    """The file implementing ``framework`` for the submission at ``path`` (or None)."""
    if path.is_file():
        return path
    candidate = path / registry.SUBMISSION_MODULES[framework]
    return candidate if candidate.exists() else None


def search_space_path(path: Path) -> Optional[Path]:
    folder = path if path.is_dir() else path.parent
    for name in registry.SEARCH_SPACE_NAMES:
        if (folder / name).exists():
            return folder / name
    return None


def frameworks_of(path: Path, requested: Optional[str] = None) -> List[str]:
    """The frameworks the submission at ``path`` implements.

    A folder: those it has a file for. A single file: the one its imports say,
    or ``requested`` (checked against them); UserInputError when that is
    ambiguous or contradicts the file (``harness.submission.framework``).
    """
    if path.is_file():
        return [file_framework(path, requested)[0]]
    return [f for f in FRAMEWORKS if module_path(path, f) is not None]


def _single_file_frameworks(path: Path, frameworks: Optional[Sequence[str]]):
    """(frameworks to check, problems) for a single-file submission."""
    if not frameworks:
        try:
            return [file_framework(path)[0]], []
        except UserInputError as e:
            return [], [str(e)]
    wanted, problems = [], []
    for fw in frameworks:
        try:
            wanted.append(file_framework(path, fw)[0])
        except UserInputError as e:
            problems.append(str(e))
    return wanted, problems


def _import_file(file: Path) -> ModuleType:
    algoperf_compat.install()
    digest = hashlib.sha1(str(file.resolve()).encode()).hexdigest()[:10]
    name = f'timetrial_submission_{file.stem}_{digest}'
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, file)
    module = importlib.util.module_from_spec(spec)
    # The submission's own folder is importable, so it may split its code.
    folder = str(file.parent.resolve())
    if folder not in sys.path:
        sys.path.insert(0, folder)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def _signature_problems(fn_name: str, fn: Callable, reference: Callable) -> List[str]:
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return [f'{fn_name}: cannot read its signature']
    params = sig.parameters
    if any(p.kind == p.VAR_KEYWORD for p in params.values()):
        return []
    problems = []
    expected = list(inspect.signature(reference).parameters)
    optional = {'train_state'} if fn_name == 'update_params' else set()
    missing = [n for n in expected if n not in params and n not in optional]
    if missing:
        problems.append(f'{fn_name}{sig}: missing parameter(s) {", ".join(missing)}; '
                        f'AlgoPerf\'s signature is {fn_name}({", ".join(expected)})')
    extra = [n for n, p in params.items() if n not in expected and p.default is p.empty
             and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    if extra:
        problems.append(f'{fn_name}: parameter(s) {", ".join(extra)} are not in the contract '
                        'and have no default; the harness passes only the contract\'s names')
    return problems


def _module_problems(module: ModuleType) -> List[str]:
    from harness.submission.federated import check_module, is_federated_module

    if is_federated_module(module):  # client_update/server_update: the federated contract
        return check_module(module, 'federated submission')
    problems = []
    for fn_name, (reference, required) in SUBMISSION_FUNCTIONS.items():
        fn = getattr(module, fn_name, None)
        if fn is None:
            if required:
                problems.append(f'{fn_name}: missing (required; see harness/spec.py)')
            continue
        if not callable(fn):
            problems.append(f'{fn_name}: is not a function')
            continue
        problems.extend(_signature_problems(fn_name, fn, reference))
    return problems


def _space_corners(space) -> List[Dict]:
    """The search space's extreme points: every range at min and at max, every feasible point."""
    if isinstance(space, list):
        return [dict(p) for p in space]
    base = {}
    for name, rule in space.items():
        base[name] = rule['feasible_points'][0] if 'feasible_points' in rule else rule['min']
    corners = [dict(base)]
    for name, rule in space.items():
        values = rule['feasible_points'] if 'feasible_points' in rule else [rule['max']]
        for v in values:
            corners.append({**base, name: v})
    return corners


def check_submission(name_or_path: str, frameworks: Optional[Sequence[str]] = None,
                     search_space_file: Optional[str] = None,
                     require_search_space: bool = False) -> List[str]:
    """Every problem with a submission, as 'where: what' lines (empty if none)."""
    try:
        path = registry.resolve_submission(name_or_path)
    except UserInputError as e:
        return [str(e)]
    problems: List[str] = []
    if path.is_file():
        wanted, problems = _single_file_frameworks(path, frameworks)
    else:
        available = frameworks_of(path)
        wanted = list(frameworks) if frameworks else available
        if not available:
            problems.append(f'{path}: no {" or ".join(registry.SUBMISSION_MODULES.values())}')
    modules = {}
    for fw in wanted:
        file = module_path(path, fw)
        if file is None:
            problems.append(f'{path}: no {registry.SUBMISSION_MODULES[fw]}, so it cannot run '
                            f'the {fw} framework')
            continue
        try:
            module = _import_file(file)
        except Exception as e:  # noqa: BLE001 — submission code: report, never crash
            tb = traceback.extract_tb(e.__traceback__)
            where = next((f'{f.filename}:{f.lineno}' for f in reversed(tb)
                          if f.filename == str(file)), str(file))
            problems.append(f'{where}: importing the submission failed: '
                            f'{type(e).__name__}: {e}')
            continue
        modules[fw] = module
        problems.extend(f'{file.name}: {p}' for p in _module_problems(module))

    space_file = Path(search_space_file) if search_space_file else search_space_path(path)
    if space_file is None:
        if require_search_space:
            problems.append(f'{path}: no search space (search_space.yaml); the external tuning '
                            'ruleset needs one (self-tuning does not)')
    else:
        try:
            space_problems, space = search_space.load_with_problems(space_file)
        except UserInputError as e:
            space_problems, space = [str(e)], None
        problems.extend(f'{space_file.name}: {p}' for p in space_problems)
        if space is not None:
            for fw, module in modules.items():
                validate = getattr(module, 'validate_hyperparameters', None)
                if validate is None:
                    continue
                seen = set()
                for corner in _space_corners(space):
                    for msg in validate(corner) or []:
                        if msg not in seen:
                            seen.add(msg)
                            problems.append(f'{space_file.name} ({fw}): {msg}')
    return problems


def batch_size_warnings(name_or_path: str, frameworks: Sequence[str],
                        workload_names: Sequence[str]) -> List[str]:
    """What ``get_batch_size`` would do to trials of these workloads, found by calling it
    as a trial does (``harness.trial.runner.batch_size_of``): an exception other than
    ValueError, or a value that is neither None nor a positive int, fails that
    workload's trials. Warnings, not problems: the function may rely on what only the
    trial's process sets up (devices, DDP), which a check does not. Call it on a
    submission that ``check_submission`` passed."""
    from types import SimpleNamespace

    from harness.errors import SubmissionError
    from harness.submission.federated import is_federated_module
    from harness.trial.runner import batch_size_of

    path = registry.resolve_submission(name_or_path)
    warnings = []
    for fw in frameworks:
        file = module_path(path, fw)
        module = _import_file(file)
        if is_federated_module(module):
            continue
        for name in workload_names:
            # Only the two attributes batch_size_of reads; the default is not needed here.
            workload = SimpleNamespace(name=name, default_batch_size=None)
            try:
                batch_size_of(workload, module)
            except SubmissionError as e:
                text = str(e).removeprefix(f'{e.phase}: ')
                # A ValueError here is batch_size_of's own (a bad return value): its
                # message says what to return. Any other exception is the submission's.
                fix = '' if isinstance(e.original, ValueError) else (
                    '; return None or raise ValueError for a workload you have no batch '
                    'size for (its default batch size is then used)')
                warnings.append(f'{file.name}: {name} trials would fail: {text}{fix}')
    return warnings


def load_submission(name_or_path: str, framework: str) -> Submission:
    """Import one framework's module; raise UserInputError listing every problem."""
    path = registry.resolve_submission(name_or_path)
    if registry.submission_kind(path) == 'federated':
        raise UserInputError(
            f'Submission {path} is federated (it defines client_update): it trains federated '
            'workloads (e.g. federated_shakespeare) only. Choose a centralized submission '
            f'(e.g. adamw) for this workload.')
    problems = check_submission(str(path), [framework])
    if problems:
        raise UserInputError(f'Submission {path} has {len(problems)} problem(s):\n  - '
                             + '\n  - '.join(problems))
    module = _import_file(module_path(path, framework))
    update = module.update_params
    accepts_train_state = 'train_state' in inspect.signature(update).parameters or any(
        p.kind == p.VAR_KEYWORD for p in inspect.signature(update).parameters.values())
    return Submission(
        name=registry.submission_name(path), path=path, framework=framework, module=module,
        get_batch_size=module.get_batch_size,
        init_optimizer_state=module.init_optimizer_state, update_params=update,
        data_selection=module.data_selection,
        prepare_for_eval=getattr(module, 'prepare_for_eval', None),
        accepts_train_state=accepts_train_state,
        requires_workload_api=tuple(getattr(module, 'REQUIRES_WORKLOAD_API', ()) or ()))
