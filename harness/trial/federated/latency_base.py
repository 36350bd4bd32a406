"""The parts of the latency models that need no registry: the model interface,
validation helpers, and the pure delays (``lognormal``, ``mixture``, ``planted``).

``harness.trial.federated.latency`` documents every kind and builds them.
"""

from __future__ import annotations

import abc
import math
from typing import Dict, List, Mapping, Optional

import numpy as np

from harness.errors import UserInputError
from harness.trial.federated.work import NO_WORK, ClientWork


MAX_LATENCY_S = 1e7  # ~116 days: anything slower is a typo (ms for s?)
MAX_SIGMA = 5.0
MAX_FLOPS_PER_S = 1e18  # an exaFLOP/s phone is a typo
MAX_MBPS = 1e6  # a terabit link too


class LatencyModel(abc.ABC):
    """One report's latency, given the client and its work; per-client state set by ``bind``."""

    def bind(self, num_clients: int, population_rng: np.random.Generator) -> None:
        """Draw per-client persistent properties (classes, speed factors)."""

    @abc.abstractmethod
    def sample_s(
        self, rng: np.random.Generator, client: int, dispatch_id: int, work: ClientWork
    ) -> float:
        """Seconds until the report of this dispatch arrives. Draw the same random
        numbers whatever ``work`` is, and never less time for more work."""

    def sample_parts(
        self, rng: np.random.Generator, client: int, dispatch_id: int, work: ClientWork
    ) -> Dict[str, float]:
        """``sample_s`` split into named parts that sum to it (seconds)."""
        return {'wait_s': self.sample_s(rng, client, dispatch_id, work)}

    def groups(self) -> Dict[str, np.ndarray]:
        """Client groups (name -> boolean mask) the evaluation reports on."""
        return {}


# ---- validation helpers: collect every problem, then raise once --------------


def check_keys(
    cfg: Mapping, allowed: List[str], required: List[str], where: str, problems: List[str]
) -> None:
    unknown = sorted(set(cfg) - set(allowed) - {'kind'})
    if unknown:
        problems.append(f'{where}: unknown key(s) {unknown}; valid keys: {", ".join(allowed)}')
    for key in required:
        if key not in cfg:
            problems.append(f'{where}: missing key {key!r}')


def number(
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
        check_keys(
            cfg, ['median_s', 'sigma', 'client_sigma'], ['median_s', 'sigma'], where, problems
        )
        return cls(
            number(cfg, 'median_s', 0.0, MAX_LATENCY_S, where, problems, lo_open=True),
            number(cfg, 'sigma', 0.0, MAX_SIGMA, where, problems),
            number(cfg, 'client_sigma', 0.0, MAX_SIGMA, where, problems, default=0.0),
        )

    def bind(self, num_clients, population_rng):
        self._client_factor = np.exp(
            self.client_sigma * population_rng.standard_normal(num_clients)
        )

    def sample_s(self, rng, client, dispatch_id, work=NO_WORK):
        factor = 1.0 if self._client_factor is None else float(self._client_factor[client])
        return self.median_s * factor * math.exp(self.sigma * rng.standard_normal())


class Mixture(LatencyModel):
    def __init__(self, base: LogNormal, tail: LogNormal, tail_prob: float):
        self.base, self.tail, self.tail_prob = base, tail, tail_prob

    @classmethod
    def from_config(cls, cfg: Mapping, where: str, problems: List[str]) -> 'Mixture':
        check_keys(
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
            parts['base'], parts['tail'], number(cfg, 'tail_prob', 0.0, 1.0, where, problems)
        )

    def bind(self, num_clients, population_rng):
        self.base.bind(num_clients, population_rng)
        self.tail.bind(num_clients, population_rng)

    def sample_s(self, rng, client, dispatch_id, work=NO_WORK):
        part = self.tail if rng.random() < self.tail_prob else self.base
        return part.sample_s(rng, client, dispatch_id, work)


class Planted(LatencyModel):
    """Fixed latencies for tests: ``by_client`` (seconds per client, every
    report) or ``by_dispatch`` (seconds of the d-th dispatch of the trial)."""

    def __init__(self, by_client=None, by_dispatch=None, groups=None):
        self.by_client, self.by_dispatch = by_client, by_dispatch
        self._group_members = dict(groups or {})
        self._num_clients = 0

    @classmethod
    def from_config(cls, cfg: Mapping, where: str, problems: List[str]) -> 'Planted':
        check_keys(cfg, ['by_client', 'by_dispatch', 'groups'], [], where, problems)
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

    def sample_s(self, rng, client, dispatch_id, work=NO_WORK):
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
