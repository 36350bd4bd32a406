"""Hyperparameter search spaces and AlgoPerf-style seeded quasi-random search.

A search space (YAML or JSON, one per submission, shared by both frameworks)
maps each hyperparameter to one of

    learning_rate: {min: 1.0e-4, max: 1.0e-2, scaling: log}
    warmup_factor: {min: 0.02, max: 0.1}              # scaling: linear (default)
    beta2: {feasible_points: [0.999]}
    dropout_rate: 0.0                                  # shorthand for one point

or, AlgoPerf's other form, a list of fixed points (trial i takes point i).

Trial ``index`` of a study draws point ``index`` of a scrambled Halton
sequence seeded by the study's seed (``scipy.stats.qmc.Halton``), so any
trial's values can be regenerated from ``(seed, index)`` alone.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Dict, List, Union

import yaml

from harness.errors import UserInputError

SearchSpace = Union[Dict[str, Dict[str, Any]], List[Dict[str, Any]]]
SCALINGS = ('linear', 'log')


def load(path: Union[str, Path]) -> SearchSpace:
    """Read and validate; every problem is reported at once."""
    problems, space = load_with_problems(path)
    if problems:
        raise UserInputError(f'Search space {path} has {len(problems)} problem(s):\n  - '
                             + '\n  - '.join(problems))
    return space


def load_with_problems(path: Union[str, Path]):
    """(problems, normalized space or None), for reporting alongside other problems."""
    path = Path(path)
    try:
        text = path.read_text(encoding='utf-8')
    except OSError as e:
        raise UserInputError(f'Cannot read search space {path}: {e.strerror}.') from None
    try:
        raw = json.loads(text) if path.suffix == '.json' else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as e:
        raise UserInputError(f'Search space {path} is not valid {path.suffix[1:].upper()}: {e}') from None
    problems = validate(raw)
    return problems, (None if problems else normalize(raw))


def validate(raw: Any) -> List[str]:
    if isinstance(raw, list):
        if not raw:
            return ['the list of points is empty: give at least one mapping of hyperparameters']
        return [f'point {i} is not a mapping of name: value' for i, p in enumerate(raw)
                if not isinstance(p, dict)]
    if not isinstance(raw, dict) or not raw:
        return ['expected a mapping of hyperparameter name -> {min, max, scaling} or '
                '{feasible_points: [...]}, or a list of fixed points']
    problems = []
    for name, rule in raw.items():
        if not isinstance(rule, dict):
            if isinstance(rule, (int, float, str, bool)):
                continue
            problems.append(f'{name}: expected a mapping or a single value, got {type(rule).__name__}')
            continue
        keys = set(rule)
        if 'feasible_points' in keys:
            extra = keys - {'feasible_points'}
            pts = rule['feasible_points']
            if extra:
                problems.append(f'{name}: feasible_points cannot be combined with {sorted(extra)}')
            if not isinstance(pts, list) or not pts:
                problems.append(f'{name}: feasible_points must be a non-empty list')
            continue
        unknown = keys - {'min', 'max', 'scaling'}
        if unknown:
            problems.append(f'{name}: unknown key(s) {sorted(unknown)}; valid keys are '
                            'min, max, scaling, feasible_points')
        if 'min' not in keys or 'max' not in keys:
            problems.append(f'{name}: a range needs both min and max')
            continue
        lo, hi = rule['min'], rule['max']
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (lo, hi)):
            problems.append(f'{name}: min and max must be numbers, got {lo!r} and {hi!r}')
            continue
        if lo > hi:
            problems.append(f'{name}: min ({lo}) is greater than max ({hi})')
        scaling = rule.get('scaling', 'linear')
        if scaling not in SCALINGS:
            problems.append(f'{name}: scaling must be one of {", ".join(SCALINGS)}, got {scaling!r}')
        elif scaling == 'log' and lo <= 0:
            problems.append(f'{name}: log scaling needs min > 0, got {lo}')
    return problems


def normalize(raw: Any) -> SearchSpace:
    if isinstance(raw, list):
        return [dict(p) for p in raw]
    out = {}
    for name, rule in raw.items():
        if not isinstance(rule, dict):
            out[name] = {'feasible_points': [rule]}
        elif 'feasible_points' in rule:
            out[name] = {'feasible_points': list(rule['feasible_points'])}
        else:
            out[name] = {'min': float(rule['min']), 'max': float(rule['max']),
                         'scaling': rule.get('scaling', 'linear')}
    return out


def sample(space: SearchSpace, seed: int, index: int) -> Dict[str, Any]:
    """Hyperparameters of trial ``index`` (0-based) of the study seeded ``seed``."""
    if isinstance(space, list):
        if index >= len(space):
            raise UserInputError(
                f'The search space lists {len(space)} fixed point(s) but trial index {index} '
                f'was asked for: use at most {len(space)} trials per study.')
        return dict(space[index])
    from scipy.stats import qmc

    names = sorted(space)
    continuous = [n for n in names if 'feasible_points' not in space[n]]
    dims = len(names)
    # One Halton dimension per hyperparameter, discrete ones included, so that
    # adding a fixed point never reshuffles the others. Point `index` alone is
    # computed (fast_forward), not the whole prefix.
    engine = qmc.Halton(d=max(dims, 1), scramble=True, seed=seed)
    engine.fast_forward(index)
    u = engine.random(1)[0]
    out: Dict[str, Any] = {}
    for d, name in enumerate(names):
        rule = space[name]
        if name in continuous:
            lo, hi = rule['min'], rule['max']
            if rule['scaling'] == 'log':
                value = math.exp(math.log(lo) + u[d] * (math.log(hi) - math.log(lo)))
            else:
                value = lo + u[d] * (hi - lo)
            out[name] = float(value)
        else:
            pts = rule['feasible_points']
            out[name] = pts[min(int(u[d] * len(pts)), len(pts) - 1)]
    return out


def as_hyperparameters(values: Dict[str, Any] | None):
    """AlgoPerf hands submissions a namedtuple (attribute access)."""
    if values is None:
        return None
    from collections import namedtuple

    cls = namedtuple('Hyperparameters', sorted(values))
    return cls(**{k: values[k] for k in sorted(values)})
