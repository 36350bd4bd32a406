"""The federated submission contract: round configuration, client and server updates.

Federated workloads (``WorkloadInfo.kind == 'federated'``) are trained by a
server and many clients on a *simulated* clock: each client's report arrives
after a latency drawn from the workload's latency model, so time to target
is simulated seconds, the same on every machine (real compute time is logged
beside it). The harness (``harness.trial.federated``) owns the clock, the client
selection, the data and the evaluation; a federated submission owns local
training (``client_update``) and aggregation (``server_update``), and says
how rounds run (``get_round_config``).

Parameters are functional in both frameworks: JAX a flax params dict,
PyTorch a dict name -> tensor used with ``torch.func.functional_call`` (not
an nn.Module as in the centralized contract), so that clients can be trained
vectorized (``jax.vmap``, ``torch.func.vmap``).
"""

from __future__ import annotations

import abc
import dataclasses
from typing import Any, Callable, Dict, List, Optional, Tuple

from harness.spec import Hyperparameters, ParameterContainer, RandomState, Tensor, Workload

SYNC_MODE = 'sync'
ASYNC_MODE = 'async'
LATE_UPDATE_POLICIES = ('drop', 'deliver')


@dataclasses.dataclass(frozen=True)
class RoundConfig:
    """How the server schedules clients. Returned by ``get_round_config``.

    ``mode='sync'`` (FedAvg-style rounds): a round dispatches
    ``ceil(clients_per_round * (1 + over_selection))`` idle clients at once,
    all from the current model; it closes at the ``clients_per_round``-th
    report or ``round_deadline_s`` simulated seconds after it opened, whichever
    comes first (no deadline: only the former). The reports received by then
    go to ``server_update`` (staleness 0) and the next round opens at once. A
    round with no report leaves the model unchanged. Reports after the close
    are dropped (``late_updates='drop'``: the clients are released at the
    close) or handed to the next ``server_update`` with their staleness
    (``'deliver'``: the clients stay busy until they report).

    ``mode='async'`` (FedBuff-style): ``concurrency`` clients train at once;
    each report joins a buffer and a new idle client starts from the current
    model; every ``buffer_size`` reports the buffer goes to ``server_update``.
    A client still training ``async_slot_timeout_s`` after its download stops
    counting against ``concurrency`` (a new client takes its slot), but its
    report is still delivered when it arrives (None: it holds its slot until it
    reports, so stragglers can occupy every slot).

    Each dispatched client runs ``local_steps`` minibatches of
    ``client_batch_size`` sequences of its own training data (drawn by the
    harness; see the workload's ``client_batches``). Its simulated time grows
    with that work and with the bytes it moves: ``local_steps`` x
    ``client_batch_size`` x the workload's training FLOPs per example on the
    client's device, plus the model and every ``client_extras`` leaf down and a
    model-sized delta up over its link (``harness.trial.federated.work``), plus
    a wait no work changes.
    """

    mode: str
    local_steps: int
    client_batch_size: int
    clients_per_round: int = 0
    over_selection: float = 0.0
    round_deadline_s: Optional[float] = None
    late_updates: str = 'drop'
    concurrency: int = 0
    buffer_size: int = 0
    async_slot_timeout_s: Optional[float] = None


@dataclasses.dataclass
class ServerState:
    """What the server keeps between updates. Returned by ``init_server_state``
    and ``server_update``; checkpointed by the harness (any pytree of arrays).

    ``params``: the model clients download. ``eval_params``: evaluated instead
    of ``params`` when set (e.g. an exponential moving average). ``client_extras``:
    sent to clients along with ``params`` (e.g. a distillation teacher); every
    client downloads its bytes, on the simulated clock, with the model.
    ``opt_state``: the server optimizer's state.
    """

    params: ParameterContainer
    opt_state: Any = None
    eval_params: Optional[ParameterContainer] = None
    client_extras: Any = None


@dataclasses.dataclass
class ClientUpdates:
    """Result of ``client_update`` for a cohort of C clients.

    ``deltas``: trained minus downloaded parameters, the params tree with a
    leading client axis of size C. ``metrics``: name -> array of shape (C,)
    (e.g. ``{'loss': mean local training loss}``).
    """

    deltas: ParameterContainer
    metrics: Dict[str, Tensor] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class ArrivedUpdates:
    """The K reports handed to one ``server_update``, in arrival order.

    ``deltas`` has a leading axis of size K (framework tensors); the others are
    numpy arrays of shape (K,): ``num_examples`` (the client's training-set
    size, FedAvg's n_i), ``examples_processed`` (sequences seen in local
    training), ``staleness`` (server updates applied between the client's
    download and this update), ``on_time`` (False for a synchronous report
    delivered after its round closed), ``client_index``, ``start_version``,
    ``dispatch_time_s`` and ``arrival_time_s`` (simulated clock); ``metrics``
    are the clients' own (name -> (K,) numpy array).
    """

    deltas: ParameterContainer
    num_examples: Any
    examples_processed: Any
    staleness: Any
    on_time: Any
    client_index: Any
    start_version: Any
    dispatch_time_s: Any
    arrival_time_s: Any
    metrics: Dict[str, Any] = dataclasses.field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.staleness)


class FederatedWorkload(Workload):
    """A workload with clients. Besides the centralized API (``model_fn`` and
    ``loss_fn`` must accept functional params and be vmappable), it gives the
    harness the clients' data, a per-client-group evaluation, and the small
    framework glue the framework-free federated runner needs. It must count
    ``flops_per_example()``: the simulated clock charges clients for compute."""

    #: Latency model of each variant (None = the base workload), as mappings
    #: for ``harness.trial.federated.latency.from_config``.
    latency_configs: Dict[Optional[str], Dict[str, Any]] = {}

    @abc.abstractmethod
    def load_clients(self, data_dir: str) -> None:
        """Harness only: read the prepared clients (DataNotPreparedError if missing)."""

    @property
    @abc.abstractmethod
    def num_clients(self) -> int:
        """Clients after the size's role filter."""

    @property
    @abc.abstractmethod
    def client_num_examples(self) -> Any:
        """numpy int array (num_clients,): training examples per client."""

    @abc.abstractmethod
    def client_batches(
        self,
        client_indices: List[int],
        dispatch_ids: List[int],
        seed: int,
        local_steps: int,
        batch_size: int,
    ) -> Dict[str, Tensor]:
        """Harness only. {'inputs', 'targets', 'weights'} of shape
        (C, local_steps, batch_size, ...) on the device; dispatch ``d`` of
        client ``c`` is a pure function of (seed, c, d)."""

    @abc.abstractmethod
    def eval_clients(
        self, params: ParameterContainer, client_groups: Dict[str, Any]
    ) -> Dict[str, float]:
        """Harness only, off the clock. Flat metrics on the clients' held-out
        data: ``validation/<metric>`` over all clients and
        ``validation/<metric>_<group>`` over each group (``client_groups``
        maps a group name to a boolean numpy mask over clients)."""

    # Framework glue for the runner (trees are the framework's params trees).

    @abc.abstractmethod
    def tree_stack(self, trees: List[Any]) -> Any:
        """Stack trees along a new leading axis."""

    @abc.abstractmethod
    def tree_unstack(self, tree: Any, count: int) -> List[Any]:
        """The first ``count`` slices of a stacked tree."""

    @abc.abstractmethod
    def tree_to_numpy(self, tree: Any) -> Any:
        """Device arrays -> numpy, for checkpoints (containers kept)."""

    @abc.abstractmethod
    def tree_from_numpy(self, tree: Any) -> Any:
        """The inverse of ``tree_to_numpy``."""

    @abc.abstractmethod
    def make_rng(self, seed: int) -> RandomState:
        """The framework's RandomState for an integer seed."""

    @abc.abstractmethod
    def synchronize(self, tree: Any) -> None:
        """Wait until the device has computed ``tree`` (for honest compute times)."""


def get_round_config(workload_name: str, hyperparameters: Hyperparameters) -> RoundConfig:
    """How rounds run (sync or async, cohort sizes, deadline, buffer). Untimed."""
    raise TypeError('spec.get_round_config is a signature')


def init_server_state(
    workload: FederatedWorkload,
    model_params: ParameterContainer,
    hyperparameters: Hyperparameters,
    rng: RandomState,
) -> ServerState:
    """The server's initial state from the initial model. Real time logged."""
    raise TypeError('spec.init_server_state is a signature')


def client_update(
    workload: FederatedWorkload,
    server_params: ParameterContainer,
    client_extras: Any,
    client_data: Dict[str, Tensor],
    hyperparameters: Hyperparameters,
    rng: RandomState,
) -> ClientUpdates:
    """Local training of a cohort of C clients that all downloaded the same
    model version (``server_params`` and ``client_extras`` of that version,
    unstacked). ``client_data`` holds each client's local batches with leading
    axes (C, local_steps). Pure: the result depends only on the arguments, so
    the harness may compute it whenever it likes before the report arrives."""
    raise TypeError('spec.client_update is a signature')


def server_update(
    workload: FederatedWorkload,
    server_state: ServerState,
    updates: ArrivedUpdates,
    hyperparameters: Hyperparameters,
    server_version: int,
    rng: RandomState,
) -> ServerState:
    """Apply the arrived reports; ``server_version`` updates were applied
    before this one. Return a new state and leave ``server_state`` and its
    arrays unchanged (clients dispatched earlier may still be computed from
    it). May raise TrainingCompleteError."""
    raise TypeError('spec.server_update is a signature')


#: Federated submission functions: name -> (signature stub, required?).
FEDERATED_SUBMISSION_FUNCTIONS: Dict[str, Tuple[Callable, bool]] = {
    'get_round_config': (get_round_config, True),
    'init_server_state': (init_server_state, True),
    'client_update': (client_update, True),
    'server_update': (server_update, True),
}
