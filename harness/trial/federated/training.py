"""The model side of the simulation: calls the submission when the simulator says.

``ModelBackend`` implements ``simulator.Hooks``: it computes client updates
(``client_update`` on cohorts, vectorized by the submission), applies arrived
reports (``server_update``), keeps the in-flight deltas, measures the real
compute time, and saves all of it for checkpoints.

Choices made here:
- Cohorts are padded to the usual cohort size of the round configuration (or
  a multiple of it) by repeating the last client, so that a jitted
  ``client_update`` compiles one or two shapes rather than one per cohort
  size; padded results are discarded.
- The RNG handed to ``client_update`` is keyed by (seed, first dispatch id of
  the cohort), the one handed to ``server_update`` by (seed, server version).
- ``client_work`` measures what a client dispatched now is asked to do
  (``harness.trial.federated.work``): FLOPs from the round configuration and the
  workload's ``flops_per_example``, bytes from the current version's ``params``
  and ``client_extras``; every computed delta is checked against the upload
  the clock charged.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any, Dict, List, Tuple

import numpy as np

from harness import spec_federated
from harness.errors import SubmissionError, UserInputError, call_submission
from harness.trial.federated.simulator import Arrival, Dispatch
from harness.trial.federated.work import ClientWork, check_upload, dispatch_work

_CLIENT_RNG_TAG, _SERVER_RNG_TAG, _INIT_RNG_TAG = 11, 13, 17


def cohort_size(n: int, usual: int) -> int:
    """Padded size of a cohort of ``n``: the usual cohort size of the round
    configuration when ``n`` fits in it, else the next multiple of it."""
    return max(1, -(-n // usual)) * usual


def usual_cohort(config: spec_federated.RoundConfig) -> int:
    """The cohort the simulator computes most often: a round's used reports
    (sync, drop), a round's dispatches (sync, deliver), a buffer (async)."""
    if config.mode == spec_federated.ASYNC_MODE:
        return max(1, config.buffer_size)
    if config.late_updates == 'drop':
        return config.clients_per_round
    return math.ceil(config.clients_per_round * (1.0 + config.over_selection) - 1e-9)


def derived_seed(*keys: int) -> int:
    return int(np.random.default_rng([int(k) for k in keys]).integers(2**31 - 1))


class ModelBackend:
    def __init__(
        self,
        workload: spec_federated.FederatedWorkload,
        view,
        module,
        hyperparameters,
        round_config: spec_federated.RoundConfig,
        seed: int,
    ):
        self.workload, self.view, self.module = workload, view, module
        self.hyperparameters, self.round_config, self.seed = hyperparameters, round_config, seed
        self.usual_cohort = usual_cohort(round_config)
        self.flops_per_example = workload.flops_per_example()
        if self.flops_per_example is None or not self.flops_per_example > 0:
            raise UserInputError(
                f'Federated workload {workload.name} must count its training FLOPs per example '
                '(flops_per_example): the simulated clock charges clients for their compute.'
            )
        self._work: Tuple[int, ClientWork] = (-1, ClientWork(0.0, 0, 0))  # (version, work)
        self.server_state: spec_federated.ServerState = None
        self.version = 0
        # version -> (params, client_extras) that dispatches downloaded and that
        # are not all computed yet (the current version is always kept).
        self.payloads: Dict[int, Tuple[Any, Any]] = {}
        self.deltas: Dict[int, Any] = {}  # dispatch id -> that client's delta tree
        self.client_metrics: Dict[int, Dict[str, float]] = {}
        self.compute_time_s = 0.0
        self.examples_delivered = 0
        self.window = _fresh_window()  # statistics since the last evaluation

    # ---- lifecycle --------------------------------------------------------------

    def initialize(self) -> None:
        params, _ = self.workload.init_model_fn(self.workload.make_rng(self.seed))
        rng = self.workload.make_rng(derived_seed(self.seed, _INIT_RNG_TAG))
        start = time.perf_counter()
        state = call_submission(
            'init_server_state',
            self.module.init_server_state,
            self.view,
            params,
            self.hyperparameters,
            rng,
        )
        self._check_state(state, 'init_server_state')
        self.workload.synchronize(state.params)
        self.compute_time_s += time.perf_counter() - start
        self.server_state = state
        self.payloads = {0: (state.params, state.client_extras)}

    def eval_params(self):
        state = self.server_state
        return state.eval_params if state.eval_params is not None else state.params

    # ---- simulator hooks ------------------------------------------------------------

    def client_work(self) -> ClientWork:
        """FLOPs and bytes of a client that downloads the current version."""
        if self._work[0] != self.version:
            params, extras = self.payloads[self.version]
            cfg = self.round_config
            work = dispatch_work(
                cfg.local_steps, cfg.client_batch_size, self.flops_per_example, params, extras
            )
            self._work = (self.version, work)
        return self._work[1]

    def compute(self, dispatches: List[Dispatch]) -> None:
        """One ``client_update`` call per model version among ``dispatches``."""
        by_version: Dict[int, List[Dispatch]] = {}
        for d in dispatches:
            by_version.setdefault(d.version, []).append(d)
        for version in sorted(by_version):
            if version not in self.payloads:
                raise RuntimeError(f'internal: model version {version} was not retained')
            self._compute_cohort(by_version[version], *self.payloads[version])

    def _compute_cohort(self, dispatches: List[Dispatch], params, client_extras) -> None:
        cfg = self.round_config
        n = len(dispatches)
        padded = dispatches + [dispatches[-1]] * (cohort_size(n, self.usual_cohort) - n)
        data = self.workload.client_batches(
            [d.client for d in padded],
            [d.dispatch_id for d in padded],
            self.seed,
            cfg.local_steps,
            cfg.client_batch_size,
        )
        rng = self.workload.make_rng(
            derived_seed(self.seed, _CLIENT_RNG_TAG, dispatches[0].dispatch_id)
        )
        start = time.perf_counter()
        result = call_submission(
            'client_update',
            self.module.client_update,
            self.view,
            params,
            client_extras,
            data,
            self.hyperparameters,
            rng,
        )
        if not isinstance(result, spec_federated.ClientUpdates):
            raise SubmissionError('client_update', TypeError(
                f'client_update returned {type(result).__name__}, not harness.spec_federated.ClientUpdates'))
        self.workload.synchronize(result.deltas)
        self.compute_time_s += time.perf_counter() - start
        deltas = self.workload.tree_unstack(result.deltas, n)
        check_upload(deltas[0], dispatches[0].upload_bytes)
        metrics = {
            k: np.asarray(self.workload.tree_to_numpy(v), dtype=np.float64).reshape(-1)
            for k, v in result.metrics.items()
        }
        for i, d in enumerate(dispatches):
            self.deltas[d.dispatch_id] = deltas[i]
            self.client_metrics[d.dispatch_id] = {k: float(v[i]) for k, v in metrics.items()}

    def retain(self, versions) -> None:
        self.payloads = {v: p for v, p in self.payloads.items() if v in versions}

    def server_update(self, arrivals: List[Arrival], version: int) -> None:
        ids = [a.dispatch.dispatch_id for a in arrivals]
        cfg = self.round_config
        num_examples = self.workload.client_num_examples
        names = sorted({k for i in ids for k in self.client_metrics[i]})
        updates = spec_federated.ArrivedUpdates(
            deltas=self.workload.tree_stack([self.deltas.pop(i) for i in ids]),
            num_examples=np.array([num_examples[a.dispatch.client] for a in arrivals]),
            examples_processed=np.full(len(ids), cfg.local_steps * cfg.client_batch_size),
            staleness=np.array([a.staleness for a in arrivals]),
            on_time=np.array([a.on_time for a in arrivals]),
            client_index=np.array([a.dispatch.client for a in arrivals]),
            start_version=np.array([a.dispatch.version for a in arrivals]),
            dispatch_time_s=np.array([a.dispatch.dispatch_time_s for a in arrivals]),
            arrival_time_s=np.array([a.dispatch.arrival_time_s for a in arrivals]),
            metrics={
                k: np.array([self.client_metrics[i].get(k, np.nan) for i in ids]) for k in names
            },
        )
        client_losses = updates.metrics.get('loss', np.array([]))
        for i in ids:
            self.client_metrics.pop(i)
        rng = self.workload.make_rng(derived_seed(self.seed, _SERVER_RNG_TAG, version))
        start = time.perf_counter()
        state = call_submission(
            'server_update',
            self.module.server_update,
            self.view,
            self.server_state,
            updates,
            self.hyperparameters,
            version,
            rng,
        )
        self._check_state(state, 'server_update')
        self.workload.synchronize(state.params)
        self.compute_time_s += time.perf_counter() - start
        self.server_state = state
        self.version = version + 1
        self.payloads[self.version] = (state.params, state.client_extras)
        self.examples_delivered += int(updates.examples_processed.sum())
        w = self.window
        w['updates'] += len(ids)
        w['late'] += int((~updates.on_time).sum())
        w['staleness_sum'] += float(updates.staleness.sum())
        w['loss_sum'] += float(np.nansum(client_losses))
        w['loss_count'] += int(np.isfinite(client_losses).sum())

    def release(self, dispatch_ids: List[int]) -> None:
        for i in dispatch_ids:
            self.deltas.pop(i, None)
            self.client_metrics.pop(i, None)

    # ---- evaluation-window statistics -----------------------------------------------

    def take_window(self) -> Dict[str, float]:
        """Client-side statistics since the last call, as flat metrics."""
        w, self.window = self.window, _fresh_window()
        out = {
            'federated/updates_delivered': w['updates'],
            'federated/late_updates_delivered': w['late'],
            'federated/mean_staleness': (
                w['staleness_sum'] / w['updates'] if w['updates'] else float('nan')
            ),
        }
        out['train/client_loss'] = (
            w['loss_sum'] / w['loss_count'] if w['loss_count'] else float('nan')
        )
        return out

    # ---- checkpoints -----------------------------------------------------------------

    def state_dict(self) -> Dict[str, Any]:
        to_np = self.workload.tree_to_numpy
        state = self.server_state
        return {
            'server_state': {
                f.name: to_np(getattr(state, f.name)) for f in dataclasses.fields(spec_federated.ServerState)
            },
            'deltas': {i: to_np(d) for i, d in self.deltas.items()},
            # Older versions uncomputed dispatches downloaded (the current one is the state).
            'payloads': {
                v: (to_np(params), to_np(extras))
                for v, (params, extras) in self.payloads.items()
                if v != self.version
            },
            'client_metrics': dict(self.client_metrics),
            'version': self.version,
            'compute_time_s': self.compute_time_s,
            'examples_delivered': self.examples_delivered,
            'window': dict(self.window),
        }

    def load_state_dict(self, saved: Dict[str, Any]) -> None:
        from_np = self.workload.tree_from_numpy
        self.server_state = spec_federated.ServerState(
            **{k: from_np(v) if v is not None else None for k, v in saved['server_state'].items()}
        )
        self.deltas = {i: from_np(d) for i, d in saved['deltas'].items()}
        self.client_metrics = dict(saved['client_metrics'])
        self.version = saved['version']
        self.payloads = {
            v: (from_np(params), from_np(extras) if extras is not None else None)
            for v, (params, extras) in saved['payloads'].items()
        }
        self.payloads[self.version] = (self.server_state.params, self.server_state.client_extras)
        self.compute_time_s = saved['compute_time_s']
        self.examples_delivered = saved['examples_delivered']
        self.window = dict(saved['window'])

    @staticmethod
    def _check_state(state, function: str) -> None:
        if not isinstance(state, spec_federated.ServerState):
            raise SubmissionError(function, TypeError(
                f'{function} returned {type(state).__name__}, not harness.spec_federated.ServerState'))


def _fresh_window() -> Dict[str, float]:
    return {'updates': 0, 'late': 0, 'staleness_sum': 0.0, 'loss_sum': 0.0, 'loss_count': 0}
