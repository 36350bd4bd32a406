"""What one dispatched client is asked to do: the input of a work-dependent latency.

A client's simulated round time depends on its work (``harness.trial.federated.latency``,
kind ``device``): the FLOPs of its local training and the bytes it downloads and
uploads. The harness measures all three itself, from what the submission chose
and produced, so a submission cannot report less work than it does:

- ``train_flops`` = ``local_steps`` x ``client_batch_size`` x the workload's
  ``flops_per_example()`` (training FLOPs per example, forward and backward).
- ``download_bytes`` = the bytes of the model the client downloads
  (``ServerState.params``) plus every ``client_extras`` leaf sent with it
  (a distillation teacher is a second model and costs its bytes).
- ``upload_bytes`` = the bytes of the model: a client reports a delta of the
  model's shape and dtypes. The harness checks each computed delta against it
  (``check_upload``), so a delta larger than the model is an error, not a
  free upload.

Bytes are counted by ``tree_nbytes`` on the arrays as they are (a float32
model costs 4 bytes per parameter; a submission sending bfloat16 sends half).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from harness.errors import SubmissionError

#: Bytes charged for a plain Python number in ``client_extras`` (a counter, an age):
#: what a 64-bit value takes on the wire.
NUMBER_BYTES = 8


@dataclasses.dataclass(frozen=True)
class ClientWork:
    """One dispatch's work: training FLOPs and the bytes down and up."""

    train_flops: float
    download_bytes: int
    upload_bytes: int

    def __post_init__(self):
        for name in ('train_flops', 'download_bytes', 'upload_bytes'):
            if getattr(self, name) < 0:
                raise ValueError(f'ClientWork.{name} must be >= 0, got {getattr(self, name)}')


#: No work at all (latency models that ignore the work; tests).
NO_WORK = ClientWork(0.0, 0, 0)


def tree_nbytes(tree: Any, where: str = 'tree') -> int:
    """Bytes of every array leaf of a pytree of mappings, sequences and dataclasses.

    Arrays of any framework count ``.nbytes``; Python numbers ``NUMBER_BYTES``;
    strings their UTF-8 length; None nothing. Anything else is a TypeError
    naming where it was found (the harness cannot say what it would cost)."""
    if tree is None:
        return 0
    if hasattr(tree, 'nbytes') and not isinstance(tree, (str, bytes)):
        return int(tree.nbytes)
    if isinstance(tree, (bool, int, float, complex)):
        return NUMBER_BYTES
    if isinstance(tree, str):
        return len(tree.encode('utf-8'))
    if isinstance(tree, bytes):
        return len(tree)
    if isinstance(tree, Mapping):
        return sum(tree_nbytes(v, f'{where}[{k!r}]') for k, v in tree.items())
    if isinstance(tree, (list, tuple)):
        return sum(tree_nbytes(v, f'{where}[{i}]') for i, v in enumerate(tree))
    if dataclasses.is_dataclass(tree) and not isinstance(tree, type):
        return sum(
            tree_nbytes(getattr(tree, f.name), f'{where}.{f.name}')
            for f in dataclasses.fields(tree)
        )
    raise TypeError(
        f'{where} is a {type(tree).__name__}: the harness cannot count the bytes a client '
        'would download for it. Use arrays, numbers, strings, None, and mappings, lists, '
        'tuples or dataclasses of them.'
    )


def dispatch_work(
    local_steps: int,
    client_batch_size: int,
    flops_per_example: float,
    params: Any,
    client_extras: Any,
) -> ClientWork:
    """The work of a client that downloads ``params`` and ``client_extras`` and
    trains ``local_steps`` minibatches of ``client_batch_size`` examples.

    A ``client_extras`` the harness cannot size fails the trial (submission code
    produced it)."""
    try:
        extras = tree_nbytes(client_extras, 'ServerState.client_extras')
    except TypeError as e:
        raise SubmissionError('client_extras', e) from e
    model = tree_nbytes(params, 'ServerState.params')
    flops = float(local_steps) * float(client_batch_size) * float(flops_per_example)
    return ClientWork(flops, model + extras, model)


def check_upload(delta: Any, charged_bytes: int) -> None:
    """A client's delta must not be larger than the upload the clock charged."""
    actual = tree_nbytes(delta, 'a client delta')
    if actual > charged_bytes:
        raise SubmissionError(
            'client_update',
            ValueError(
                f'a client delta holds {actual} bytes, more than the model it was computed '
                f'from ({charged_bytes} bytes), which is what the simulated clock charged for '
                'the upload. Return deltas with the shapes and dtypes of server_params.'
            ),
        )
