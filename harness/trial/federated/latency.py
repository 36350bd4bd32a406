"""Client latency models: simulated seconds from a client's download to its report.

A latency model is pluggable (``register``) and built from a mapping, the way
a workload variant or a test writes it::

    {'kind': 'device',                                     # work-dependent (below)
     'wait': {'kind': 'lognormal', 'median_s': 120, 'sigma': 0.5},
     'compute': {'median_flops_per_s': 1e9, 'client_sigma': 0.8, 'report_sigma': 0.3},
     'network': {'median_downlink_mbps': 20, 'median_uplink_mbps': 5,
                 'client_sigma': 1.0, 'report_sigma': 0.5}}
    {'kind': 'lognormal', 'median_s': 120, 'sigma': 0.5}
    {'kind': 'mixture', 'base': {'median_s': 120, 'sigma': 0.5},
                        'tail': {'median_s': 21600, 'sigma': 1.0}, 'tail_prob': 0.1}
    {'kind': 'speed_classes', 'population_seed': 0, 'classes': {
        'fast': {'fraction': 0.8, 'kind': 'device', ...},
        'stragglers': {'fraction': 0.2, 'kind': 'device', ...}}}
    {'kind': 'planted', 'by_client': [10, 50, 20]}   # tests: fixed seconds per client

- ``device``: the round time of a client is what it is asked to do, the way
  FedScale (Lai et al. 2022, arXiv:2105.11367) charges a client:
  ``wait + compute + download + upload`` with
  ``compute = train_flops / (flops_per_s)``,
  ``download = 8 * download_bytes / downlink_bps``,
  ``upload = 8 * upload_bytes / uplink_bps``
  (``harness.trial.federated.work.ClientWork`` says how the harness measures the
  work). A client's speed and link are log-normal across clients
  (``client_sigma``, drawn once from the population seed: a phone keeps its
  hardware and its network) times a log-normal factor per report
  (``report_sigma``: thermal throttling, background load, a changing cell); one
  per-client factor moves the downlink and the uplink together (one link).
  ``wait`` (optional, any model below) is the part no work changes: the time a
  scheduled device waits until it may run and report (idle, charging,
  unmetered network, check-in; Bonawitz et al. 2019, arXiv:1902.01046). So
  doubling the local steps doubles the compute time, an extra model in the
  download adds its bytes' time, and nothing but less work lowers a report's
  latency. The parameters the workloads ship and their sources are in
  ``workloads/federated_shakespeare/README.md``.
- ``lognormal``: every report independently ``median_s * exp(sigma * z)``,
  z ~ N(0, 1); ``client_sigma`` > 0 adds a persistent per-client speed factor
  ``exp(client_sigma * z_c)``. Ignores the work (a pure delay).
- ``mixture``: a heavy-tailed mixture of two log-normals; each report comes
  from ``tail`` with probability ``tail_prob`` (reports hours to days late),
  else from ``base``. Ignores the work.
- ``speed_classes``: every client belongs to one class for the whole trial
  (persistent speed classes); each class has its own model. The classes are
  also the client groups the evaluation reports on (``validation/accuracy_fast``,
  ``validation/accuracy_stragglers``...).

Seeding: the class of each client (and its persistent speed and link factors)
is drawn from ``population_seed`` (default 0), not from the trial's seed, so
the same clients are stragglers in every trial and every latency variant; a
report's latency is a pure function of (trial seed, client, dispatch id, work),
so replays and resumed simulations see the same latencies without storing any
RNG state. The random numbers a report draws do not depend on its work, so two
works compare on the same draws: more work is never faster.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Dict, List, Mapping, Optional

import numpy as np

from harness.errors import UserInputError
from harness.trial.federated.latency_base import (
    MAX_FLOPS_PER_S,
    MAX_LATENCY_S,
    MAX_MBPS,
    MAX_SIGMA,
    LatencyModel,
    LogNormal,
    Mixture,
    Planted,
    check_keys,
    number,
)
from harness.trial.federated.work import NO_WORK, ClientWork

__all__ = [
    'MAX_LATENCY_S',
    'MAX_SIGMA',
    'KINDS',
    'LatencyModel',
    'LogNormal',
    'Mixture',
    'Planted',
    'SpeedClasses',
    'Device',
    'ClientLatency',
    'register',
    'from_config',
]
_LATENCY_TAG = 104729  # separates the latency RNG stream from the trial's others


class SpeedClasses(LatencyModel):
    def __init__(self, classes: Dict[str, LatencyModel], fractions: Dict[str, float]):
        self.classes, self.fractions = classes, fractions
        self._class_of: Optional[np.ndarray] = None  # class index per client
        self._names = list(classes)

    @classmethod
    def from_config(cls, cfg: Mapping, where: str, problems: List[str]) -> 'SpeedClasses':
        check_keys(cfg, ['classes'], ['classes'], where, problems)
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
            fractions[name] = number(sub, 'fraction', 0.0, 1.0, sub_where, problems, lo_open=True)
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

    def sample_s(self, rng, client, dispatch_id, work=NO_WORK):
        model = self.classes[self._names[self._class_of[client]]]
        return model.sample_s(rng, client, dispatch_id, work)

    def sample_parts(self, rng, client, dispatch_id, work):
        model = self.classes[self._names[self._class_of[client]]]
        return model.sample_parts(rng, client, dispatch_id, work)

    def groups(self):
        return {name: self._class_of == k for k, name in enumerate(self._names)}


class Device(LatencyModel):
    """Work-dependent latency: wait + compute + download + upload (module docstring)."""

    def __init__(
        self,
        wait: Optional[LatencyModel],
        median_flops_per_s: float,
        compute_client_sigma: float,
        compute_report_sigma: float,
        median_downlink_mbps: float,
        median_uplink_mbps: float,
        network_client_sigma: float,
        network_report_sigma: float,
    ):
        self.wait = wait
        self.median_flops_per_s = median_flops_per_s
        self.compute_client_sigma, self.compute_report_sigma = (
            compute_client_sigma,
            compute_report_sigma,
        )
        self.median_downlink_mbps, self.median_uplink_mbps = (
            median_downlink_mbps,
            median_uplink_mbps,
        )
        self.network_client_sigma, self.network_report_sigma = (
            network_client_sigma,
            network_report_sigma,
        )
        self._speed: Optional[np.ndarray] = None  # FLOP/s per client
        self._link: Optional[np.ndarray] = None  # per-client link factor

    @classmethod
    def from_config(cls, cfg: Mapping, where: str, problems: List[str]) -> 'Device':
        check_keys(cfg, ['wait', 'compute', 'network'], ['compute', 'network'], where, problems)
        parts = {}
        for key, allowed in (
            ('compute', ['median_flops_per_s', 'client_sigma', 'report_sigma']),
            (
                'network',
                [
                    'median_downlink_mbps',
                    'median_uplink_mbps',
                    'client_sigma',
                    'report_sigma',
                ],
            ),
        ):
            sub = cfg.get(key, {})
            if not isinstance(sub, Mapping):
                problems.append(f'{where}.{key}: expected a mapping with keys {", ".join(allowed)}')
                sub = {}
            check_keys(
                sub,
                allowed,
                [k for k in allowed if k.startswith('median')],
                f'{where}.{key}',
                problems,
            )
            parts[key] = sub
        wait = None
        if cfg.get('wait') is not None:
            wait_cfg = cfg['wait']
            if isinstance(wait_cfg, Mapping) and wait_cfg.get('kind') in (
                'device',
                'speed_classes',
            ):
                problems.append(f'{where}.wait.kind: a wait is a plain delay (lognormal, mixture)')
            else:
                wait = _build(wait_cfg, f'{where}.wait', problems)
        c, n = parts['compute'], parts['network']
        cw, nw = f'{where}.compute', f'{where}.network'
        return cls(
            wait,
            number(c, 'median_flops_per_s', 0.0, MAX_FLOPS_PER_S, cw, problems, lo_open=True),
            number(c, 'client_sigma', 0.0, MAX_SIGMA, cw, problems, default=0.0),
            number(c, 'report_sigma', 0.0, MAX_SIGMA, cw, problems, default=0.0),
            number(n, 'median_downlink_mbps', 0.0, MAX_MBPS, nw, problems, lo_open=True),
            number(n, 'median_uplink_mbps', 0.0, MAX_MBPS, nw, problems, lo_open=True),
            number(n, 'client_sigma', 0.0, MAX_SIGMA, nw, problems, default=0.0),
            number(n, 'report_sigma', 0.0, MAX_SIGMA, nw, problems, default=0.0),
        )

    def bind(self, num_clients, population_rng):
        self._speed = self.median_flops_per_s * np.exp(
            self.compute_client_sigma * population_rng.standard_normal(num_clients)
        )
        self._link = np.exp(self.network_client_sigma * population_rng.standard_normal(num_clients))
        if self.wait is not None:
            self.wait.bind(num_clients, population_rng)

    def sample_parts(self, rng, client, dispatch_id, work=NO_WORK):
        # Always the same draws in the same order, whatever the work (monotonicity).
        wait_s = self.wait.sample_s(rng, client, dispatch_id, NO_WORK) if self.wait else 0.0
        z_compute, z_down, z_up = rng.standard_normal(3)
        flops_per_s = self._speed[client] * math.exp(self.compute_report_sigma * z_compute)
        link = self._link[client]
        down_bps = (
            1e6 * self.median_downlink_mbps * link * math.exp(self.network_report_sigma * z_down)
        )
        up_bps = 1e6 * self.median_uplink_mbps * link * math.exp(self.network_report_sigma * z_up)
        return {
            'wait_s': float(wait_s),
            'compute_s': float(work.train_flops / flops_per_s),
            'download_s': float(8.0 * work.download_bytes / down_bps),
            'upload_s': float(8.0 * work.upload_bytes / up_bps),
        }

    def sample_s(self, rng, client, dispatch_id, work=NO_WORK):
        return sum(self.sample_parts(rng, client, dispatch_id, work).values())


KINDS: Dict[str, Callable[[Mapping, str, List[str]], LatencyModel]] = {
    'device': Device.from_config,
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
    """A bound latency model: ``latency_s(client, dispatch_id, work)`` and the groups."""

    def __init__(self, model: LatencyModel, num_clients: int, seed: int, population_seed: int = 0):
        self.model, self.num_clients, self.seed = model, num_clients, int(seed)
        model.bind(num_clients, np.random.default_rng([int(population_seed), _LATENCY_TAG]))

    def _rng(self, client: int, dispatch_id: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, _LATENCY_TAG, int(client), int(dispatch_id)])

    def latency_s(self, client: int, dispatch_id: int, work: ClientWork = NO_WORK) -> float:
        """Seconds from the dispatch's download to its report."""
        rng = self._rng(client, dispatch_id)
        return float(self.model.sample_s(rng, int(client), int(dispatch_id), work))

    def parts(self, client: int, dispatch_id: int, work: ClientWork = NO_WORK) -> Dict[str, float]:
        """``latency_s`` split into its parts (``wait_s``, ``compute_s``, ...)."""
        rng = self._rng(client, dispatch_id)
        return self.model.sample_parts(rng, int(client), int(dispatch_id), work)

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
