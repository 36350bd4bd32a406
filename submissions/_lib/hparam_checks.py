"""Framework-free checks of optimizer hyperparameters, shared by both frameworks.

``validate_hparams(name, hparams)`` returns every problem as a message (empty
list when all is well); ``timetrial check`` calls it on a search space before
any job runs, and the optimizer constructors of ``optim_jax`` / ``optim_torch``
call ``raise_for_problems`` on their arguments, so the rules live in one place.

A value may be a plain number or a search-space entry (``{min, max}`` or
``{feasible_points: [...]}``): every end point and feasible point is checked.
Keys a family does not know are ignored, since search spaces also carry
schedule and regularization keys (``warmup_factor``, ``dropout_rate``) that
are checked elsewhere.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Dict, List, Optional

from harness.errors import UserInputError

GRAFT_TYPES = ('rmsprop_normalized', 'adam')

Rule = Callable[[Any], Optional[str]]


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_int(value: Any) -> bool:
    return _is_number(value) and float(value).is_integer()


def _positive(value: Any) -> Optional[str]:
    if not _is_number(value) or value <= 0:
        return 'must be a number > 0'
    return None


def _non_negative(value: Any) -> Optional[str]:
    if not _is_number(value) or value < 0:
        return 'must be a number >= 0'
    return None


def _beta(value: Any) -> Optional[str]:
    if not _is_number(value) or not 0 <= value < 1:
        return 'must lie in [0, 1) (a decay rate; 1 would never forget)'
    return None


def _one_minus_beta(value: Any) -> Optional[str]:
    if not _is_number(value) or not 0 < value <= 1:
        return 'must lie in (0, 1] (it is 1 - beta with beta in [0, 1))'
    return None


def _int_at_least(low: int, meaning: str) -> Rule:
    def rule(value: Any) -> Optional[str]:
        if not _is_int(value) or value < low:
            return f'must be an integer >= {low} ({meaning})'
        return None

    return rule


def _boolean(value: Any) -> Optional[str]:
    return None if isinstance(value, bool) else 'must be true or false'


def _graft_type(value: Any) -> Optional[str]:
    if value not in GRAFT_TYPES:
        return f'must be one of {", ".join(GRAFT_TYPES)}'
    return None


_COMMON: Dict[str, Rule] = {
    'learning_rate': _positive,
    'lr': _positive,
    'weight_decay': _non_negative,
    'beta1': _beta,
    'one_minus_beta1': _one_minus_beta,
}
_ADAPTIVE: Dict[str, Rule] = {
    'beta2': _beta,
    'one_minus_beta2': _one_minus_beta,
    'eps': _positive,
}
_KRONECKER: Dict[str, Rule] = {
    'block_size': _int_at_least(1, 'the largest edge of a preconditioner block, e.g. 1024'),
    'start_preconditioning_step': _int_at_least(
        0, 'the first step that uses the preconditioner; earlier steps take the grafted update'
    ),
    'max_preconditioner_dim': _int_at_least(
        1, 'parameters with a dimension this large take the grafted update, e.g. 1000000'
    ),
    'graft_type': _graft_type,
    'graft_eps': _positive,
    'nesterov': _boolean,
}

_RULES: Dict[str, Dict[str, Rule]] = {
    'shampoo': {
        **_COMMON,
        **_ADAPTIVE,
        **_KRONECKER,
        'precondition_every': _int_at_least(
            1, 'steps between recomputations of the inverse roots, e.g. 20'
        ),
    },
    'sketchy': {
        **_COMMON,
        **_ADAPTIVE,
        **_KRONECKER,
        'rank': _int_at_least(1, 'the number of directions each sketch keeps, e.g. 128'),
    },
    'sonew': {**_COMMON, **_ADAPTIVE, 'graft_eps': _positive},
    'nesterov': dict(_COMMON),
    'momentum': dict(_COMMON),
    'lamb': {**_COMMON, **_ADAPTIVE},
    'lars': {**_COMMON, 'eps': _non_negative, 'trust_coefficient': _positive, 'nesterov': _boolean},
}

FAMILIES = tuple(sorted(_RULES))


def _candidates(value: Any) -> List[Any]:
    """The values a search-space entry can take at its ends, or the value itself."""
    if isinstance(value, dict):
        if 'feasible_points' in value and isinstance(value['feasible_points'], list):
            return list(value['feasible_points'])
        return [value[k] for k in ('min', 'max') if k in value]
    return [value]


def validate_hparams(name: str, hparams: Dict[str, Any]) -> List[str]:
    """Every problem with ``hparams`` for optimizer family ``name``, as messages.

    Cross-checks too: Sketchy's ``rank`` may not exceed ``block_size``, since a
    factor is at most ``block_size`` wide (a factor narrower than the rank keeps
    an exact, full-rank sketch instead; that is not an error).
    """
    if name not in _RULES:
        return [f'unknown optimizer family {name!r}; known: {", ".join(FAMILIES)}']
    problems = []
    rules = _RULES[name]
    for key, value in hparams.items():
        rule = rules.get(key)
        if rule is None:
            continue
        for candidate in _candidates(value):
            problem = rule(candidate)
            if problem:
                problems.append(f'{name}: {key} = {candidate!r} is invalid: {problem}.')
    rank, block_size = hparams.get('rank'), hparams.get('block_size')
    if name == 'sketchy' and rank is not None and block_size is not None:
        # Only values that passed their own rule; the others are reported above.
        ranks = [r for r in _candidates(rank) if _is_int(r) and r >= 1]
        blocks = [b for b in _candidates(block_size) if _is_int(b) and b >= 1]
        if ranks and blocks and max(ranks) > min(blocks):
            problems.append(
                f'sketchy: rank = {max(ranks)} is larger than block_size = {min(blocks)}: a '
                'sketch cannot keep more directions than its factor has rows. Lower rank or '
                'raise block_size.'
            )
    return problems


def raise_for_problems(name: str, hparams: Dict[str, Any]) -> None:
    """Raise one UserInputError listing every problem, or return quietly."""
    problems = validate_hparams(name, hparams)
    if problems:
        raise UserInputError(
            f'Invalid {name} hyperparameters ({len(problems)} problem(s)):\n  - '
            + '\n  - '.join(problems)
        )
