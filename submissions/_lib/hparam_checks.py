"""One way to check hyperparameters, for every shipped submission (framework-free).

A rule table maps a hyperparameter's name to a ``Rule``: what a valid value
is, said in words a user can act on. ``problems(rules, values)`` checks every
value that has a rule and returns every problem at once, each as
``'<name> = <value> is invalid: <rule>.'``; an empty list means all is well.
Names without a rule are left alone (a search space also carries keys another
table checks). Cross-checks between values (Sketchy's rank against its block
size, SALT_DS's selection band) are functions that add their own messages.

A value may be a plain number or a search-space entry (``{min, max}`` or
``{feasible_points: [...]}``): every end point and feasible point is checked.

The tables: the optimizer zoo's below (``validate_hparams(family, values)``,
also called by the constructors of ``optim_jax`` / ``optim_torch`` through
``raise_for_problems``), the distillation submissions' in ``kd.py``, the
federated baselines' in ``federated.py``; each submission's
``validate_hyperparameters(hparams) -> list[str]`` returns one of them, and
``timetrial check`` calls it on the corners of the search space.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence

from harness.errors import UserInputError

GRAFT_TYPES = ('rmsprop_normalized', 'adam')


@dataclasses.dataclass(frozen=True)
class Rule:
    #: True when a (plain) value is valid.
    accepts: Callable[[Any], bool]
    #: What a valid value is, and where it helps, how to choose one: 'must be ...'.
    text: str


RuleTable = Mapping[str, Rule]
CrossCheck = Callable[[Mapping[str, Any]], List[str]]


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def is_int(value: Any) -> bool:
    return is_number(value) and float(value).is_integer()


def _with_hint(text: str, hint: str) -> str:
    return f'{text} ({hint})' if hint else text


def number(low: Optional[float] = None, high: Optional[float] = None, *, low_open: bool = False,
           high_open: bool = False, hint: str = '', symbol: str = '',
           none_ok: bool = False) -> Rule:
    """A finite number in an interval; ``symbol`` names it in the text (``ω must ...``)."""

    def accepts(value):
        if value is None and none_ok:
            return True
        if not is_number(value):
            return False
        if low is not None and (value <= low if low_open else value < low):
            return False
        return high is None or (value < high if high_open else value <= high)

    if low is not None and high is not None:
        interval = f'{"(" if low_open else "["}{low:g}, {high:g}{")" if high_open else "]"}'
        text = f'must lie in {interval}'
    elif low is not None:
        text = f'must be a number {">" if low_open else ">="} {low:g}'
    else:
        text = f'must be a number {"<" if high_open else "<="} {high:g}'
    if none_ok:
        text += ' or null'
    return Rule(accepts, _with_hint(f'{symbol} {text}' if symbol else text, hint))


def integer(low: int, hint: str = '') -> Rule:
    return Rule(lambda v: is_int(v) and v >= low, _with_hint(f'must be an integer >= {low}', hint))


def one_of(choices: Sequence[str], hint: str = '') -> Rule:
    choices = tuple(choices)
    return Rule(lambda v: v in choices, _with_hint(f'must be one of {", ".join(choices)}', hint))


def boolean() -> Rule:
    return Rule(lambda v: isinstance(v, bool), 'must be true or false')


POSITIVE = number(0, low_open=True)
NON_NEGATIVE = number(0)
BETA = number(0, 1, high_open=True, hint='a decay rate; 1 would never forget')
ONE_MINUS_BETA = number(0, 1, low_open=True, hint='it is 1 - beta with beta in [0, 1)')


def candidates(value: Any) -> List[Any]:
    """The values a search-space entry can take at its ends, or the value itself."""
    if isinstance(value, dict):
        if 'feasible_points' in value and isinstance(value['feasible_points'], list):
            return list(value['feasible_points'])
        return [value[k] for k in ('min', 'max') if k in value]
    return [value]


def problems(rules: RuleTable, values: Mapping[str, Any],
             cross_checks: Iterable[CrossCheck] = ()) -> List[str]:
    """Every problem with ``values`` under ``rules``, then those the cross-checks find."""
    found = []
    for key, value in values.items():
        rule = rules.get(key)
        if rule is None:
            continue
        for candidate in candidates(value):
            if not rule.accepts(candidate):
                found.append(f'{key} = {candidate!r} is invalid: {rule.text}.')
    for check in cross_checks:
        found += check(values)
    return found


def raise_if_any(what: str, found: List[str]) -> None:
    """Raise one UserInputError listing every problem of ``what``, or return quietly."""
    if found:
        raise UserInputError(
            f'Invalid {what} hyperparameters ({len(found)} problem(s)):\n  - '
            + '\n  - '.join(found)
        )


# ---- every centralized baseline -------------------------------------------------------------

#: The training settings of ``common.py``, read by every centralized baseline.
TRAINING: Dict[str, Rule] = {
    'warmup_factor': number(0, 1, hint='the fraction of step_hint spent warming up'),
    'grad_clip': number(0, low_open=True, none_ok=True,
                        hint='the global gradient norm to clip to; null: no clipping'),
    'label_smoothing': number(0, 1, high_open=True),
    'dropout_rate': number(0, 1, high_open=True),
}

# ---- the optimizer zoo ----------------------------------------------------------------------

_COMMON: Dict[str, Rule] = {
    **TRAINING,
    'learning_rate': POSITIVE,
    'lr': POSITIVE,
    'weight_decay': NON_NEGATIVE,
    'beta1': BETA,
    'one_minus_beta1': ONE_MINUS_BETA,
}
_ADAPTIVE: Dict[str, Rule] = {'beta2': BETA, 'one_minus_beta2': ONE_MINUS_BETA, 'eps': POSITIVE}
_KRONECKER: Dict[str, Rule] = {
    'block_size': integer(1, 'the largest edge of a preconditioner block, e.g. 1024'),
    'start_preconditioning_step': integer(
        0, 'the first step that uses the preconditioner; earlier steps take the grafted update'
    ),
    'max_preconditioner_dim': integer(
        1, 'parameters with a dimension this large take the grafted update, e.g. 1000000'
    ),
    'graft_type': one_of(GRAFT_TYPES),
    'graft_eps': POSITIVE,
    'nesterov': boolean(),
}

#: The base optimizers (``common.BASE_OPTIMIZERS``), also what SALT stands on.
ADAM: Dict[str, Rule] = {**_COMMON, **_ADAPTIVE}

_RULES: Dict[str, Dict[str, Rule]] = {
    'adamw': ADAM,
    'nadamw': ADAM,
    'shampoo': {
        **_COMMON,
        **_ADAPTIVE,
        **_KRONECKER,
        'precondition_every': integer(1, 'steps between recomputations of the inverse roots, '
                                         'e.g. 20'),
    },
    'sketchy': {
        **_COMMON,
        **_ADAPTIVE,
        **_KRONECKER,
        'rank': integer(1, 'the number of directions each sketch keeps, e.g. 128'),
    },
    'sonew': {**_COMMON, **_ADAPTIVE, 'graft_eps': POSITIVE},
    'nesterov': dict(_COMMON),
    'momentum': dict(_COMMON),
    'lamb': {**_COMMON, **_ADAPTIVE},
    'lars': {**_COMMON, 'eps': NON_NEGATIVE, 'trust_coefficient': POSITIVE,
             'nesterov': boolean()},
}

FAMILIES = tuple(sorted(_RULES))


def _rank_within_block(values: Mapping[str, Any]) -> List[str]:
    """Sketchy's ``rank`` may not exceed ``block_size``: a factor is at most ``block_size``
    wide (a factor narrower than the rank keeps an exact, full-rank sketch instead; that is
    not an error)."""
    rank, block_size = values.get('rank'), values.get('block_size')
    if rank is None or block_size is None:
        return []
    # Only values that passed their own rule; the others are reported already.
    ranks = [r for r in candidates(rank) if is_int(r) and r >= 1]
    blocks = [b for b in candidates(block_size) if is_int(b) and b >= 1]
    if ranks and blocks and max(ranks) > min(blocks):
        return [
            f'rank = {max(ranks)} is larger than block_size = {min(blocks)}: a sketch cannot '
            'keep more directions than its factor has rows. Lower rank or raise block_size.'
        ]
    return []


_CROSS_CHECKS: Dict[str, Sequence[CrossCheck]] = {'sketchy': (_rank_within_block,)}


def validate_hparams(name: str, hparams: Mapping[str, Any]) -> List[str]:
    """Every problem with ``hparams`` for optimizer family ``name``, as messages."""
    if name not in _RULES:
        return [f'unknown optimizer family {name!r}; known: {", ".join(FAMILIES)}']
    return problems(_RULES[name], hparams, _CROSS_CHECKS.get(name, ()))


def raise_for_problems(name: str, hparams: Mapping[str, Any]) -> None:
    """Raise one UserInputError listing every problem, or return quietly."""
    raise_if_any(name, validate_hparams(name, hparams))
