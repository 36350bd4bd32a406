"""Generated inputs for tests and benchmarks: Criteo TSV files, prepared datasets.

Criteo lines: labels 0/1, 13 integers (some negative, ~20% missing), 26
categoricals of 8 lowercase hex digits (~10% missing), tab-separated.
"""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import List, Sequence

import numpy as np
from scipy.special import expit

from workloads.ctr import data
from workloads.ctr.arrays import DatasetWriter


def criteo_lines(num_lines: int, seed: int = 0) -> List[str]:
    rng = np.random.default_rng(seed)
    # Object arrays of ready-made strings: gathers copy pointers, no formatting per cell.
    int_strings = np.array([str(v) for v in range(-2, 5000)], dtype=object)
    # Few distinct values per column, like real categoricals (and so hashes repeat).
    hex_strings = np.array([f'{v * 2654435761 % (1 << 32):08x}' for v in range(1000)], dtype=object)
    table = np.empty((num_lines, 40), dtype=object)
    table[:, 0] = np.array(['0', '1'], dtype=object)[rng.integers(0, 2, num_lines)]
    table[:, 1:14] = int_strings[rng.integers(0, len(int_strings), (num_lines, 13))]
    table[:, 14:] = hex_strings[rng.integers(0, len(hex_strings), (num_lines, 26))]
    missing = rng.random((num_lines, 39)) < np.r_[np.full(13, 0.2), np.full(26, 0.1)]
    table[:, 1:][missing] = ''
    return ['\t'.join(row) for row in table.tolist()]


def write_criteo_file(path: Path, num_lines: int, seed: int = 0, extra_lines=()) -> Path:
    """Write ``num_lines`` generated lines (then ``extra_lines`` verbatim); .gz if so named."""
    path = Path(path)
    text = '\n'.join([*criteo_lines(num_lines, seed), *extra_lines]) + '\n'
    opener = gzip.open if path.suffix == '.gz' else open
    with opener(path, 'wt') as f:
        f.write(text)
    return path


def write_prepared(
    data_dir,
    source: str,
    num_dense: int,
    vocab_sizes: Sequence[int],
    num_train: int,
    num_validation: int,
    seed: int = 0,
) -> Path:
    """A prepared ``<data_dir>/ctr/<source>/`` of random rows (labels depend on the features)."""
    rng = np.random.default_rng(seed)
    n = num_train + num_validation
    dense = rng.exponential(1.0, (n, num_dense)).astype(np.float32)
    sparse = np.stack([rng.integers(0, v, n) for v in vocab_sizes], axis=1).astype(np.int32)
    logit = dense[:, 0] - 1.0 + 0.5 * (sparse[:, 0] % 2)
    labels = (rng.random(n) < expit(logit)).astype(np.float32)
    out = data.source_dir(data_dir, source)
    with DatasetWriter(out, num_dense, len(vocab_sizes)) as writer:
        writer.append(dense, sparse, labels)
        writer.meta = data.make_meta(
            source,
            num_train,
            num_dense,
            vocab_sizes,
            train_click_rate=float(labels[:num_train].mean()),
        )
    return out
