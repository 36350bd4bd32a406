"""Load and check a federated submission; the view of the workload it gets.

A federated submission is a folder with ``jax_submission.py`` and/or
``pytorch_submission.py`` defining the functions of
``harness.spec_federated.FEDERATED_SUBMISSION_FUNCTIONS`` (or a single .py file). Every
missing or mis-signed function is reported at once, by name, before a trial
starts.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import inspect
import math
import sys
from pathlib import Path
from types import ModuleType
from typing import Any, List

from harness import spec_federated
from harness.errors import UserInputError
from harness.registry import SUBMISSION_MODULES

# What a submission may read from the workload: the model and the loss, the
# shapes and types of the parameters, and sizes. Not the data, not the
# evaluation, not the harness glue.
_VISIBLE = frozenset(
    {
        'model_fn',
        'loss_fn',
        'loss_type',
        'param_shapes',
        'model_params_types',
        'is_output_params',
        'name',
        'size',
        'variant',
        'framework',
        'num_clients',
        'client_num_examples',
        'target_metric_name',
        'target_mode',
        'default_batch_size',
        'validation_target_value',
        'max_allowed_runtime_sec',
        'step_hint',
        'tokens_per_example',
        'flops_per_example',
    }
)


class SubmissionView:
    """The workload as a federated submission sees it (read-only, whitelisted).

    Hashable by identity, so submissions can pass it to ``jax.jit`` as a static
    argument."""

    def __init__(self, workload: spec_federated.FederatedWorkload):
        object.__setattr__(self, '_workload', workload)

    def __getattr__(self, name: str) -> Any:
        if name in _VISIBLE:
            return getattr(self._workload, name)
        raise AttributeError(
            f'A federated submission may not use workload.{name}; it may use: '
            f'{", ".join(sorted(_VISIBLE))}.'
        )

    def __setattr__(self, name, value):
        raise AttributeError('The workload is read-only for a submission.')


def is_federated_module(module: ModuleType) -> bool:
    return hasattr(module, 'client_update') or hasattr(module, 'server_update')


def submission_file(path: Path, framework: str) -> Path:
    path = Path(path)
    if path.is_file():
        return path
    file = path / SUBMISSION_MODULES[framework]
    if not file.exists():
        raise UserInputError(
            f'Submission {path} has no {framework} implementation: {file.name} is missing.'
        )
    return file


def load_module(file: Path, framework: str) -> ModuleType:
    name = f'timetrial_federated_submission_{file.parent.name}_{framework}'
    module_spec = importlib.util.spec_from_file_location(name, file)
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module
    module_spec.loader.exec_module(module)
    return module


def check_module(module: ModuleType, where: str) -> List[str]:
    """Every problem with the module's functions, as messages."""
    problems = []
    for fn_name, (stub, required) in spec_federated.FEDERATED_SUBMISSION_FUNCTIONS.items():
        fn = getattr(module, fn_name, None)
        if fn is None:
            if required:
                problems.append(f'{where}: missing function {fn_name}{inspect.signature(stub)}')
            continue
        if not callable(fn):
            problems.append(f'{where}: {fn_name} is not a function')
            continue
        want = list(inspect.signature(stub).parameters)
        try:
            have = list(inspect.signature(fn).parameters)
        except (TypeError, ValueError):
            continue
        if have[: len(want)] != want:
            problems.append(
                f'{where}: {fn_name} takes ({", ".join(have)}); the contract is '
                f'({", ".join(want)}) (harness.spec.{fn_name})'
            )
    return problems


def load_federated_submission(path: Path, framework: str) -> ModuleType:
    """Import the submission's module for ``framework`` and check it."""
    file = submission_file(path, framework)
    module = load_module(file, framework)
    if not is_federated_module(module) and hasattr(module, 'update_params'):
        raise UserInputError(
            f'{file} is a centralized submission (it defines update_params); federated '
            f'workloads need client_update and server_update. Built-in federated '
            f'submissions: fedavg, fedadam, fedbuff, fedbuff_ema, fedavg_distill, '
            f'fedavg_distill_control.'
        )
    problems = check_module(module, str(file))
    if problems:
        raise UserInputError(
            f'{len(problems)} problem(s) with the federated submission:'
            '\n  - ' + '\n  - '.join(problems)
        )
    return module


def check_round_config(config: Any, num_clients: int, where: str) -> spec_federated.RoundConfig:
    """Validate a RoundConfig against the workload; every problem at once."""
    if not isinstance(config, spec_federated.RoundConfig):
        raise UserInputError(
            f'{where}: get_round_config must return a '
            f'harness.spec_federated.RoundConfig, got {type(config).__name__}.'
        )
    problems = []

    def positive_int(name, value):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            problems.append(f'{name} must be an integer >= 1, got {value!r}')
            return False
        return True

    positive_int('local_steps', config.local_steps)
    positive_int('client_batch_size', config.client_batch_size)
    if config.mode == spec_federated.SYNC_MODE:
        if positive_int('clients_per_round', config.clients_per_round):
            over = config.over_selection
            if not isinstance(over, (int, float)) or not 0.0 <= over <= 10.0:
                problems.append(f'over_selection must be in [0, 10], got {over!r}')
            else:
                dispatched = math.ceil(config.clients_per_round * (1.0 + over) - 1e-9)
                if dispatched > num_clients:
                    problems.append(
                        f'clients_per_round={config.clients_per_round} with over_selection='
                        f'{over:g} dispatches {dispatched} clients per round, but the workload '
                        f'has {num_clients} clients: use at most {num_clients} in all'
                    )
        deadline = config.round_deadline_s
        if deadline is not None and (
            not isinstance(deadline, (int, float)) or not 0 < deadline < 1e8
        ):
            problems.append(
                f'round_deadline_s must be None or in (0, 1e8) seconds, got {deadline!r}'
            )
        if config.late_updates not in spec_federated.LATE_UPDATE_POLICIES:
            problems.append(
                f'late_updates must be one of {spec_federated.LATE_UPDATE_POLICIES}, '
                f'got {config.late_updates!r}'
            )
    elif config.mode == spec_federated.ASYNC_MODE:
        if positive_int('concurrency', config.concurrency) and config.concurrency > num_clients:
            problems.append(
                f'concurrency={config.concurrency} is more clients than the '
                f'workload has ({num_clients}): use at most {num_clients}'
            )
        positive_int('buffer_size', config.buffer_size)
        timeout = config.async_slot_timeout_s
        if timeout is not None and (not isinstance(timeout, (int, float)) or not 0 < timeout < 1e8):
            problems.append(
                f'async_slot_timeout_s must be None or in (0, 1e8) seconds, got {timeout!r}'
            )
    else:
        problems.append(
            f'mode must be {spec_federated.SYNC_MODE!r} or {spec_federated.ASYNC_MODE!r}, got {config.mode!r}'
        )
    if problems:
        raise UserInputError(
            f'{where}: the round configuration has {len(problems)} '
            'problem(s):\n  - ' + '\n  - '.join(problems)
        )
    return config


def round_config_dict(config: spec_federated.RoundConfig) -> dict:
    return dataclasses.asdict(config)
