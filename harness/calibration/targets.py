"""Targets and budgets per hardware class.

Each workload ships defaults measured on the reference machine
(``Workload.default_budget``). ``timetrial calibrate`` measures them on the
machine at hand and writes ``<targets dir>/<hardware_class>.yaml``::

    lm:
      tiny:
        default: {validation_target_value: 5.2, max_allowed_runtime_sec: 180,
                  eval_period_time_sec: 10, step_hint: 900, reference_steps_to_target: 330}

The targets dir is ``$TIMETRIAL_TARGETS_DIR``, else
``~/.config/timetrial/targets``. A calibrated entry replaces the shipped one
for that hardware class only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Optional

import yaml

from harness import paths, results
from harness.errors import UserInputError
from harness.spec import Budget

FIELDS = ('validation_target_value', 'max_allowed_runtime_sec', 'eval_period_time_sec',
          'step_hint', 'test_target_value', 'reference_steps_to_target')


def targets_file(hardware_class: str) -> Path:
    return paths.targets_dir() / f'{hardware_class}.yaml'


def _read(path: Path) -> Dict[str, Any]:
    if not path.exists():
        return {}
    try:
        data = yaml.safe_load(path.read_text(encoding='utf-8')) or {}
    except yaml.YAMLError as e:
        raise UserInputError(f'Targets file {path} is not valid YAML: {e}. Fix it or delete it '
                             'and run `timetrial calibrate` again.') from None
    if not isinstance(data, dict):
        raise UserInputError(f'Targets file {path} must map workload -> size -> variant.')
    return data


def calibrated_budget(hardware_class: str, workload: str, size: str,
                      variant: Optional[str]) -> Optional[Budget]:
    path = targets_file(hardware_class)
    entry = _read(path).get(workload, {}).get(size, {}).get(variant or 'default')
    if entry is None:
        return None
    unknown = set(entry) - set(FIELDS)
    missing = {'validation_target_value', 'max_allowed_runtime_sec', 'eval_period_time_sec',
               'step_hint'} - set(entry)
    if unknown or missing:
        raise UserInputError(
            f'Targets file {path}, entry {workload}/{size}/{variant or "default"}: '
            + (f'unknown key(s) {sorted(unknown)} ' if unknown else '')
            + (f'missing key(s) {sorted(missing)} ' if missing else '')
            + f'(valid keys: {", ".join(FIELDS)}).')
    return Budget(**{k: entry[k] for k in FIELDS if k in entry})


def write_calibrated_budget(hardware_class: str, workload: str, size: str,
                            variant: Optional[str], budget: Budget) -> Path:
    path = targets_file(hardware_class)
    data = _read(path)
    entry = {k: getattr(budget, k) for k in FIELDS if getattr(budget, k) is not None}
    data.setdefault(workload, {}).setdefault(size, {})[variant or 'default'] = entry
    results.atomic_write_text(path, yaml.safe_dump(data, sort_keys=False))
    return path
