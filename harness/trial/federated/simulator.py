"""Event-driven simulation of federated rounds on a simulated clock.

A heap of events (report arrivals, round deadlines, evaluations) advances the
clock; nothing here trains a model. What the events mean for the model goes
through ``Hooks``: ``compute`` (run ``client_update`` for dispatched clients),
``server_update`` (apply arrived reports), ``release`` (a dispatch's update
will never be used). The semantics of ``mode='sync'`` and ``mode='async'``
are those documented on ``harness.spec_federated.RoundConfig``.

Choices made here:
- Latencies are drawn when a client is dispatched (a pure function of the
  trial seed, client, dispatch id and the work asked of it: ``Hooks.client_work``
  gives the FLOPs and bytes of a dispatch from the current model version), so
  the simulator knows when each report will arrive. A client's update is a pure function of what it downloaded and
  its data, so it is computed lazily: when a report arrives whose update is
  not computed yet, every dispatched-but-uncomputed update that will be used
  is computed, one vectorized cohort per model version (the hooks keep the
  versions that uncomputed dispatches downloaded: ``retain``). In a
  synchronous round with ``late_updates='drop'`` the reports that will miss
  the round are never computed; the result is the same as computing and
  discarding them.
- Ties on the clock: arrivals first (a report at exactly the deadline is on
  time), then deadlines, then evaluations (which see every update up to
  their time); equal kinds in the order they were scheduled.
- Client selection: uniform without replacement among idle clients (a client
  trains one task at a time), from an RNG keyed by (seed, round) or (seed,
  dispatch id), so no RNG state needs saving.
- A synchronous round with fewer idle clients than it wants dispatches the
  idle ones and waits for at most that many reports; with none idle it opens
  when a client becomes idle.
- Asynchronous mode with ``async_slot_timeout_s``: a client still training
  that long after its dispatch stops counting against ``concurrency`` (a new
  client takes its slot) but stays busy, and its report is still used when it
  arrives; without it, stragglers hold their slots until they report.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import heapq
import math
from typing import Dict, List, Optional, Protocol, Set, Tuple

import numpy as np

from harness import spec_federated
from harness.trial.federated.latency import ClientLatency
from harness.trial.federated.work import ClientWork

# Event kinds, also the tie-break order at equal times.
ARRIVAL, DEADLINE, SLOT_TIMEOUT, EVAL = 0, 1, 2, 3
EVENT_NAMES = {ARRIVAL: 'arrival', DEADLINE: 'deadline', SLOT_TIMEOUT: 'slot_timeout', EVAL: 'eval'}
_SELECT_TAG, _ASYNC_SELECT_TAG = 7919, 7927


@dataclasses.dataclass
class Dispatch:
    dispatch_id: int
    client: int
    version: int  # server updates applied when the client downloaded the model
    round: int  # synchronous round, -1 in async mode
    dispatch_time_s: float
    arrival_time_s: float
    needed: bool  # its update will be handed to server_update (if the trial lasts)
    upload_bytes: int = 0  # what the clock charged for its report
    computed: bool = False
    holds_slot: bool = True  # async: counts against `concurrency`


@dataclasses.dataclass(frozen=True)
class Arrival:
    dispatch: Dispatch
    staleness: int
    on_time: bool


@dataclasses.dataclass(frozen=True)
class Event:
    kind: int
    time_s: float
    data: int  # dispatch id, round number or eval index


class Hooks(Protocol):
    def compute(self, dispatches: List[Dispatch]) -> None:
        """Compute the client updates of these dispatches (any versions)."""

    def server_update(self, arrivals: List[Arrival], version: int) -> None:
        """Apply the arrivals; ``version`` updates were applied before."""

    def release(self, dispatch_ids: List[int]) -> None:
        """These dispatches' updates will never be used."""

    def retain(self, versions: Set[int]) -> None:
        """Only these model versions will still be computed from."""

    def client_work(self) -> ClientWork:
        """The work of a client dispatched now (from the current model version)."""


class Simulator:
    """The clock, the in-flight clients and the round/buffer bookkeeping."""

    def __init__(
        self,
        config: spec_federated.RoundConfig,
        latency: ClientLatency,
        num_clients: int,
        seed: int,
        hooks: Hooks,
        eval_period_s: Optional[float] = None,
    ):
        self.config, self.latency, self.hooks = config, latency, hooks
        self.num_clients, self.seed = num_clients, int(seed)
        self.eval_period_s = eval_period_s
        self.sync = config.mode == spec_federated.SYNC_MODE
        # State (everything below is saved by state_dict).
        self.clock_s = 0.0
        self.version = 0
        self.next_dispatch_id = 0
        self.next_seq = 0
        self.heap: List[Tuple[float, int, int, int]] = []  # (time, kind, seq, data)
        self.in_flight: Dict[int, Dispatch] = {}
        self.busy = np.zeros(num_clients, dtype=bool)
        self.round = -1
        self.round_open = False
        self.round_wanted = 0
        self.waiting_for_clients = False
        self.received: List[Arrival] = []  # sync: this round's on-time reports
        self.late: List[Dispatch] = []  # sync deliver: late reports awaiting delivery
        self.buffer: List[Arrival] = []  # async
        self.next_eval_index = 1
        self.counts = {
            'dispatched': 0,
            'arrived': 0,
            'dropped': 0,
            'late_delivered': 0,
            'delivered': 0,
            'delivered_on_time': 0,
            'rounds': 0,
            'empty_rounds': 0,
            'slot_timeouts': 0,
        }
        # Per latency group (e.g. fast, stragglers): who was dispatched and whose
        # reports reached server_update (on time: in their own round).
        self.group_of = np.full(num_clients, '', dtype=object)
        for name, mask in latency.groups().items():
            self.group_of[np.asarray(mask, dtype=bool)] = name
            for what in ('dispatched', 'delivered', 'delivered_on_time'):
                self.counts[f'{what}_{name}'] = 0
        self.digest = ''  # running sha256 over the event log
        self.started = False

    # ---- public driving API ---------------------------------------------------

    def start(self) -> None:
        if self.started:
            return
        self.started = True
        if self.eval_period_s:
            self._push(self.eval_period_s, EVAL, 1)
        if self.sync:
            self._open_round()
        else:
            self._refill()

    def next_time(self) -> float:
        """Clock time of the next event (inf when nothing is scheduled)."""
        self._drop_void_events()
        return self.heap[0][0] if self.heap else math.inf

    def _drop_void_events(self) -> None:
        """Pop events that no longer mean anything from the top of the heap."""
        while self.heap:
            _, kind, _, data = self.heap[0]
            cancelled = kind == ARRIVAL and data not in self.in_flight  # its round closed
            closed = kind == DEADLINE and not (data == self.round and self.round_open)
            released = kind == SLOT_TIMEOUT and data not in self.in_flight
            if not (cancelled or closed or released):
                return
            heapq.heappop(self.heap)

    def step(self) -> Optional[Event]:
        """Process the next event and return it (None when nothing is left)."""
        self._drop_void_events()
        if self.heap:
            time_s, kind, _, data = heapq.heappop(self.heap)
            self.clock_s = time_s
            if kind == ARRIVAL:
                self._on_arrival(self.in_flight[data])
            elif kind == DEADLINE:
                self._close_round('deadline')
            elif kind == SLOT_TIMEOUT:
                # Still training, no longer counted: its slot goes to a new client;
                # its report is still used when it arrives.
                self.in_flight[data].holds_slot = False
                self.counts['slot_timeouts'] += 1
                self._log('slot_timeout', data)
                self._refill()
            else:
                self.next_eval_index = data + 1
                self._push(self.eval_period_s * (data + 1), EVAL, data + 1)
                self._log('eval', data)
            return Event(kind, time_s, data)
        return None

    def advance_clock(self, time_s: float) -> None:
        """Move the clock to ``time_s`` with nothing happening (budget end)."""
        self.clock_s = max(self.clock_s, time_s)

    # ---- scheduling -----------------------------------------------------------

    def _push(self, time_s: float, kind: int, data: int) -> None:
        heapq.heappush(self.heap, (float(time_s), kind, self.next_seq, int(data)))
        self.next_seq += 1

    def _log(self, *record) -> None:
        """Fold an event into the running digest (replays must give the same)."""
        text = self.digest + repr((round(self.clock_s, 9),) + record)
        self.digest = hashlib.sha256(text.encode()).hexdigest()

    def _idle_clients(self) -> np.ndarray:
        return np.flatnonzero(~self.busy)

    def _dispatch(self, client: int, needed: bool = True) -> Dispatch:
        did = self.next_dispatch_id
        self.next_dispatch_id += 1
        work = self.hooks.client_work()
        latency_s = self.latency.latency_s(client, did, work)
        d = Dispatch(
            did,
            int(client),
            self.version,
            self.round if self.sync else -1,
            self.clock_s,
            self.clock_s + latency_s,
            needed,
            work.upload_bytes,
        )
        self.in_flight[did] = d
        self.busy[client] = True
        self._count('dispatched', d.client)
        self._push(d.arrival_time_s, ARRIVAL, did)
        timeout = self.config.async_slot_timeout_s
        if not self.sync and timeout is not None and latency_s > timeout:
            self._push(self.clock_s + timeout, SLOT_TIMEOUT, did)
        self._log('dispatch', did, d.client, d.version, round(latency_s, 9))
        return d

    def _ensure_computed(self) -> None:
        todo = [
            d
            for d in sorted(self.in_flight.values(), key=lambda d: d.dispatch_id)
            if d.needed and not d.computed
        ]
        if todo:
            self.hooks.compute(todo)
            for d in todo:
                d.computed = True
            self.hooks.retain(self._live_versions())

    def _live_versions(self) -> Set[int]:
        """The current version and those that uncomputed dispatches downloaded."""
        live = {d.version for d in self.in_flight.values() if d.needed and not d.computed}
        return live | {self.version}

    def _count(self, what: str, client: int) -> None:
        self.counts[what] += 1
        group = self.group_of[client]
        if group:
            self.counts[f'{what}_{group}'] += 1

    def _apply(self, arrivals: List[Arrival]) -> None:
        for a in arrivals:
            self._count('delivered', a.dispatch.client)
            if a.on_time:
                self._count('delivered_on_time', a.dispatch.client)
        self.hooks.server_update(arrivals, self.version)
        self.version += 1
        self.hooks.retain(self._live_versions())
        self._log('server_update', self.version, [a.dispatch.dispatch_id for a in arrivals])

    # ---- synchronous rounds ---------------------------------------------------

    def _open_round(self) -> None:
        cfg = self.config
        idle = self._idle_clients()
        if len(idle) == 0:
            self.waiting_for_clients = True
            return
        self.waiting_for_clients = False
        self.round += 1
        self.round_open = True
        self.received = []
        want = math.ceil(cfg.clients_per_round * (1.0 + cfg.over_selection) - 1e-9)
        rng = np.random.default_rng([self.seed, _SELECT_TAG, self.round])
        chosen = rng.choice(idle, size=min(want, len(idle)), replace=False)
        self.round_wanted = min(cfg.clients_per_round, len(chosen))
        drop = cfg.late_updates == 'drop'
        cohort = [self._dispatch(int(c), needed=not drop) for c in chosen]
        deadline = (
            self.clock_s + cfg.round_deadline_s if cfg.round_deadline_s is not None else math.inf
        )
        if drop:
            # Only the first `round_wanted` reports by the deadline will be used.
            by_arrival = sorted(cohort, key=lambda d: (d.arrival_time_s, d.dispatch_id))
            for d in [d for d in by_arrival if d.arrival_time_s <= deadline][: self.round_wanted]:
                d.needed = True
        if cfg.round_deadline_s is not None:
            self._push(deadline, DEADLINE, self.round)
        self._log('open_round', self.round, len(cohort))

    def _close_round(self, why: str) -> None:
        self.round_open = False
        self.counts['rounds'] += 1
        arrivals = list(self.received)
        for d in self.late:
            arrivals.append(Arrival(d, self.version - d.version, on_time=False))
        self.counts['late_delivered'] += len(self.late)
        self.late = []
        self.received = []
        if self.config.late_updates == 'drop':
            cancelled = [d for d in self.in_flight.values() if d.round == self.round]
            for d in cancelled:
                del self.in_flight[d.dispatch_id]
                self.busy[d.client] = False
            self.counts['dropped'] += len(cancelled)
            if cancelled:
                self.hooks.release([d.dispatch_id for d in cancelled])
        self._log('close_round', self.round, why, len(arrivals))
        if arrivals:
            self._apply(arrivals)
        else:
            self.counts['empty_rounds'] += 1
        self._open_round()

    # ---- arrivals ---------------------------------------------------------------

    def _on_arrival(self, d: Dispatch) -> None:
        # Compute while `d` is still in flight, so that it is part of the cohort.
        if d.needed and not d.computed:
            self._ensure_computed()
        del self.in_flight[d.dispatch_id]
        self.busy[d.client] = False
        self.counts['arrived'] += 1
        if self.sync:
            if d.round == self.round and self.round_open:
                self.received.append(Arrival(d, 0, on_time=True))
                self._log('arrival', d.dispatch_id, 'on_time')
                if len(self.received) >= self.round_wanted:
                    self._close_round('reports')
            else:
                # Only reachable with late_updates='deliver' (drop cancels them).
                self.late.append(d)
                self._log('arrival', d.dispatch_id, 'late')
            if self.waiting_for_clients:
                self._open_round()
            return
        self.buffer.append(Arrival(d, self.version - d.version, on_time=True))
        self._log('arrival', d.dispatch_id, 'buffered')
        if len(self.buffer) >= self.config.buffer_size:
            arrivals, self.buffer = self.buffer, []
            self._apply(arrivals)
        self._refill()

    def _refill(self) -> None:
        """Async: keep `concurrency` clients training."""
        while sum(d.holds_slot for d in self.in_flight.values()) < self.config.concurrency:
            idle = self._idle_clients()
            if len(idle) == 0:
                return
            rng = np.random.default_rng([self.seed, _ASYNC_SELECT_TAG, self.next_dispatch_id])
            self._dispatch(int(idle[rng.integers(len(idle))]))

    # ---- checkpointing ------------------------------------------------------------

    _STATE_FIELDS = (
        'clock_s',
        'version',
        'next_dispatch_id',
        'next_seq',
        'heap',
        'in_flight',
        'busy',
        'round',
        'round_open',
        'round_wanted',
        'waiting_for_clients',
        'received',
        'late',
        'buffer',
        'next_eval_index',
        'counts',
        'started',
        'digest',
    )

    def state_dict(self) -> dict:
        """Plain-Python state (pickles); the hooks' state is saved separately."""
        return {k: copy.deepcopy(getattr(self, k)) for k in self._STATE_FIELDS}

    def load_state_dict(self, state: dict) -> None:
        for k in self._STATE_FIELDS:
            setattr(self, k, copy.deepcopy(state[k]))
