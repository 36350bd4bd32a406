"""Client latency models: simulated seconds from a client's download to its report.

A latency model is pluggable (``register``) and built from a mapping, the way
a workload variant or a test writes it::

    {'kind': 'lognormal', 'median_s': 120, 'sigma': 0.5}
    {'kind': 'mixture', 'base': {'median_s': 120, 'sigma': 0.5},
                        'tail': {'median_s': 21600, 'sigma': 1.0}, 'tail_prob': 0.1}
    {'kind': 'speed_classes', 'population_seed': 0, 'classes': {
        'fast': {'fraction': 0.8, 'kind': 'lognormal', 'median_s': 120, 'sigma': 0.5},
        'straggler': {'fraction': 0.2, 'kind': 'lognormal', 'median_s': 21600, 'sigma': 1.0}}}
    {'kind': 'planted', 'by_client': [10, 50, 20]}   # tests: fixed seconds per client

- ``lognormal``: every report independently ``median_s * exp(sigma * z)``,
  z ~ N(0, 1); ``client_sigma`` > 0 adds a persistent per-client speed factor
  ``exp(client_sigma * z_c)``.
- ``mixture``: a heavy-tailed mixture; each report comes from ``tail`` with
  probability ``tail_prob`` (reports hours to days late), else from ``base``.
- ``speed_classes``: every client belongs to one class for the whole trial
  (persistent speed classes); each class has its own model. The classes are
  also the client groups the evaluation reports on (``validation/accuracy_fast``,
  ``validation/accuracy_straggler``...).

Seeding: the class of each client (and its persistent speed factor) is drawn
from ``population_seed`` (default 0), not from the trial's seed, so the same
clients are stragglers in every trial and every latency variant; a report's
latency is a pure function of (trial seed, client, dispatch id), so replays
and resumed simulations see the same latencies without storing any RNG state.
"""

from __future__ import annotations

import abc
import math
from typing import Any, Callable, Dict, List, Mapping, Optional

import numpy as np

from harness.errors import UserInputError

MAX_LATENCY_S = 1e7  # ~116 days: anything slower is a typo (ms for s?)
MAX_SIGMA = 5.0
_LATENCY_TAG = 104729  # separates the latency RNG stream from the trial's others


class LatencyModel(abc.ABC):
    """One report's latency, given the client; per-client state set by ``bind``."""

    def bind(self, num_clients: int, population_rng: np.random.Generator) -> None:
        """Draw per-client persistent properties (classes, speed factors)."""

    @abc.abstractmethod
    def sample_s(self, rng: np.random.Generator, client: int, dispatch_id: int) -> float:
        """Seconds until the report of this dispatch arrives."""

    def groups(self) -> Dict[str, np.ndarray]:
        """Client groups (name -> boolean mask) the evaluation reports on."""
        return {}


# ---- validation helpers: collect every problem, then raise once --------------


def _check_keys(
    cfg: Mapping, allowed: List[str], required: List[str], where: str, problems: List[str]
) -> None:
    unknown = sorted(set(cfg) - set(allowed) - {'kind'})
    if unknown:
        problems.append(f'{where}: unknown key(s) {unknown}; valid keys: {", ".join(allowed)}')
    for key in required:
        if key not in cfg:
            problems.append(f'{where}: missing key {key!r}')


def _number(
    cfg: Mapping,
    key: str,
    lo: float,
    hi: float,
    where: str,
    problems: List[str],
    default: Optional[float] = None,
    lo_open: bool = False,
) -> float:
    value = cfg.get(key, default)
    if value is None:
        return float('nan')  # reported as missing by _check_keys
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        problems.append(f'{where}.{key}: expected a number, got {value!r}')
        return float('nan')
    below = value <= lo if lo_open else value < lo
    if below or value > hi:
        bracket = '(' if lo_open else '['
        problems.append(f'{where}.{key} = {value} is out of range {bracket}{lo}, {hi}]')
    return float(value)


class LogNormal(LatencyModel):
    def __init__(self, median_s: float, sigma: float, client_sigma: float = 0.0):
        self.median_s, self.sigma, self.client_sigma = median_s, sigma, client_sigma
        self._client_factor: Optional[np.ndarray] = None

    @classmethod
    def from_config(cls, cfg: Mapping, where: str, problems: List[str]) -> 'LogNormal':
        _check_keys(
            cfg, ['median_s', 'sigma', 'client_sigma'], ['median_s', 'sigma'], where, problems
        )
        return cls(
            _number(cfg, 'median_s', 0.0, MAX_LATENCY_S, where, problems, lo_open=True),
            _number(cfg, 'sigma', 0.0, MAX_SIGMA, where, problems),
            _number(cfg, 'client_sigma', 0.0, MAX_SIGMA, where, problems, default=0.0),
        )

    def bind(self, num_clients, population_rng):
        self._client_factor = np.exp(
            self.client_sigma * population_rng.standard_normal(num_clients)
        )

    def sample_s(self, rng, client, dispatch_id):
        factor = 1.0 if self._client_factor is None else float(self._client_factor[client])
        return self.median_s * factor * math.exp(self.sigma * rng.standard_normal())


class Mixture(LatencyModel):
    def __init__(self, base: LogNormal, tail: LogNormal, tail_prob: float):
        self.base, self.tail, self.tail_prob = base, tail, tail_prob

    @classmethod
    def from_config(cls, cfg: Mapping, where: str, problems: List[str]) -> 'Mixture':
        _check_keys(
            cfg, ['base', 'tail', 'tail_prob'], ['base', 'tail', 'tail_prob'], where, problems
        )
        parts = {}
        for key in ('base', 'tail'):
            sub = cfg.get(key, {})
            if not isinstance(sub, Mapping):
                problems.append(f'{where}.{key}: expected a mapping with median_s and sigma')
                sub = {'median_s': 1.0, 'sigma': 0.0}
            parts[key] = LogNormal.from_config(sub, f'{where}.{key}', problems)
        return cls(
            parts['base'], parts['tail'], _number(cfg, 'tail_prob', 0.0, 1.0, where, problems)
        )

    def bind(self, num_clients, population_rng):
        self.base.bind(num_clients, population_rng)
        self.tail.bind(num_clients, population_rng)

    def sample_s(self, rng, client, dispatch_id):
        part = self.tail if rng.random() < self.tail_prob else self.base
        return part.sample_s(rng, client, dispatch_id)


class SpeedClasses(LatencyModel):
    def __init__(self, classes: Dict[str, LatencyModel], fractions: Dict[str, float]):
        self.classes, self.fractions = classes, fractions
        self._class_of: Optional[np.ndarray] = None  # class index per client
        self._names = list(classes)

    @classmethod
    def from_config(cls, cfg: Mapping, where: str, problems: List[str]) -> 'SpeedClasses':
        _check_keys(cfg, ['classes'], ['classes'], where, problems)
        raw = cfg.get('classes')
        if not isinstance(raw, Mapping) or not raw:
            problems.append(
                f'{where}.classes: expected a non-empty mapping of class name -> '
                '{fraction, kind, ...}'
            )
            return cls({}, {})
        classes, fractions = {}, {}
        for name, sub in raw.items():
            sub_where = f'{where}.classes.{name}'
            if not isinstance(sub, Mapping):
                problems.append(f'{sub_where}: expected a mapping with fraction and a model')
                continue
            fractions[name] = _number(sub, 'fraction', 0.0, 1.0, sub_where, problems, lo_open=True)
            model_cfg = {k: v for k, v in sub.items() if k != 'fraction'}
            model_cfg.setdefault('kind', 'lognormal')
            if model_cfg['kind'] == 'speed_classes':
                problems.append(f'{sub_where}.kind: speed classes cannot be nested')
                continue
            classes[name] = _build(model_cfg, sub_where, problems)
        total = sum(f for f in fractions.values() if not math.isnan(f))
        if fractions and abs(total - 1.0) > 1e-6:
            problems.append(f'{where}.classes: the fractions sum to {total:g}; they must sum to 1')
        return cls(classes, fractions)

    def bind(self, num_clients, population_rng):
        # Exactly round(fraction * n) clients per class (largest remainder), so a
        # 20% straggler class is 20% of the clients, not 20% on average.
        names = self._names
        raw = np.array([self.fractions[n] * num_clients for n in names])
        counts = np.floor(raw).astype(int)
        for k in np.argsort(-(raw - counts), kind='stable')[: num_clients - counts.sum()]:
            counts[k] += 1
        labels = np.repeat(np.arange(len(names)), counts)
        self._class_of = labels[population_rng.permutation(num_clients)]
        for model in self.classes.values():
            model.bind(num_clients, population_rng)

    def sample_s(self, rng, client, dispatch_id):
        return self.classes[self._names[self._class_of[client]]].sample_s(rng, client, dispatch_id)

    def groups(self):
        return {name: self._class_of == k for k, name in enumerate(self._names)}


class Planted(LatencyModel):
    """Fixed latencies for tests: ``by_client`` (seconds per client, every
    report) or ``by_dispatch`` (seconds of the d-th dispatch of the trial)."""

    def __init__(self, by_client=None, by_dispatch=None, groups=None):
        self.by_client, self.by_dispatch = by_client, by_dispatch
        self._group_members = dict(groups or {})
        self._num_clients = 0

    @classmethod
    def from_config(cls, cfg: Mapping, where: str, problems: List[str]) -> 'Planted':
        _check_keys(cfg, ['by_client', 'by_dispatch', 'groups'], [], where, problems)
        keys = [k for k in ('by_client', 'by_dispatch') if k in cfg]
        if len(keys) != 1:
            problems.append(f'{where}: give exactly one of by_client, by_dispatch')
            return cls()
        values = cfg[keys[0]]
        if (
            not isinstance(values, list)
            or not values
            or not all(isinstance(v, (int, float)) and 0 < v <= MAX_LATENCY_S for v in values)
        ):
            problems.append(
                f'{where}.{keys[0]}: expected a list of seconds in (0, {MAX_LATENCY_S:g}]'
            )
        groups = cfg.get('groups', {})
        if not isinstance(groups, Mapping):
            problems.append(f'{where}.groups: expected a mapping of group name -> client indices')
            groups = {}
        seconds = [float(v) for v in values] if isinstance(values, list) else []
        return cls(groups=groups, **{keys[0]: seconds})

    def bind(self, num_clients, population_rng):
        if self.by_client is not None and len(self.by_client) != num_clients:
            raise UserInputError(
                f'planted latency: by_client has {len(self.by_client)} '
                f'entries for {num_clients} clients; give one per client.'
            )
        self._num_clients = num_clients

    def sample_s(self, rng, client, dispatch_id):
        if self.by_client is not None:
            return self.by_client[client]
        if dispatch_id >= len(self.by_dispatch):
            raise UserInputError(
                f'planted latency: dispatch {dispatch_id} has no latency '
                f'(by_dispatch lists {len(self.by_dispatch)}).'
            )
        return self.by_dispatch[dispatch_id]

    def groups(self):
        out = {}
        for name, members in self._group_members.items():
            mask = np.zeros(self._num_clients, dtype=bool)
            mask[list(members)] = True
            out[name] = mask
        return out


KINDS: Dict[str, Callable[[Mapping, str, List[str]], LatencyModel]] = {
    'lognormal': LogNormal.from_config,
    'mixture': Mixture.from_config,
    'speed_classes': SpeedClasses.from_config,
    'planted': Planted.from_config,
}


def register(kind: str, from_config: Callable[[Mapping, str, List[str]], LatencyModel]) -> None:
    """Add a latency model kind. ``from_config(cfg, where, problems)`` appends
    every problem it finds to ``problems`` and returns a model."""
    if kind in KINDS:
        raise ValueError(f'latency kind {kind!r} is already registered')
    KINDS[kind] = from_config


def _build(cfg: Any, where: str, problems: List[str]) -> LatencyModel:
    if not isinstance(cfg, Mapping):
        problems.append(f'{where}: expected a mapping with a kind, got {type(cfg).__name__}')
        return LogNormal(1.0, 0.0)
    kind = cfg.get('kind')
    if kind not in KINDS:
        problems.append(
            f'{where}.kind: unknown latency kind {kind!r}; known kinds: {", ".join(sorted(KINDS))}'
        )
        return LogNormal(1.0, 0.0)
    return KINDS[kind](cfg, where, problems)


class ClientLatency:
    """A bound latency model: ``latency_s(client, dispatch_id)`` and the groups."""

    def __init__(self, model: LatencyModel, num_clients: int, seed: int, population_seed: int = 0):
        self.model, self.num_clients, self.seed = model, num_clients, int(seed)
        model.bind(num_clients, np.random.default_rng([int(population_seed), _LATENCY_TAG]))

    def latency_s(self, client: int, dispatch_id: int) -> float:
        rng = np.random.default_rng([self.seed, _LATENCY_TAG, int(client), int(dispatch_id)])
        return float(self.model.sample_s(rng, int(client), int(dispatch_id)))

    def groups(self) -> Dict[str, np.ndarray]:
        return self.model.groups()


def from_config(cfg: Any, num_clients: int, seed: int, where: str = 'latency') -> ClientLatency:
    """Validate ``cfg`` (every problem reported at once) and bind it to the clients."""
    problems: List[str] = []
    population_seed = 0
    if isinstance(cfg, Mapping):
        population_seed = cfg.get('population_seed', 0)
        cfg = {k: v for k, v in cfg.items() if k != 'population_seed'}
    model = _build(cfg, where, problems)
    if (
        not isinstance(population_seed, int)
        or isinstance(population_seed, bool)
        or population_seed < 0
    ):
        problems.append(
            f'{where}.population_seed: expected an integer >= 0, got {population_seed!r}'
        )
        population_seed = 0
    if problems:
        raise UserInputError(
            f'The latency configuration has {len(problems)} problem(s):\n  - '
            + '\n  - '.join(problems)
        )
    return ClientLatency(model, num_clients, seed, population_seed)
