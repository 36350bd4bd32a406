"""Append-only .npy files and atomic dataset directories.

Prepared CTR data is a directory of plain ``.npy`` files (so ``np.load(...,
mmap_mode='r')`` maps them) plus ``meta.json``. Sources larger than memory
(Criteo) are written chunk by chunk: ``NpyAppender`` writes a fixed-size header
first and rewrites it with the final row count when closed. The directory is
built under a temporary name and renamed into place at the end, so a killed
``prepare`` never leaves a half-written dataset that looks complete.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, Dict, Tuple

import numpy as np

# Header bytes reserved for every appended .npy file: magic (6) + version (2) +
# length (2) + the dict padded with spaces to here. 128 holds any 2-D shape.
_HEADER_BYTES = 128
META_NAME = 'meta.json'
#: Version of the prepared format (meta.json ``format_version``).
FORMAT_VERSION = 1


def _npy_header(dtype: np.dtype, shape: Tuple[int, ...]) -> bytes:
    header = repr(
        {
            'descr': np.lib.format.dtype_to_descr(dtype),
            'fortran_order': False,
            'shape': tuple(shape),
        }
    )
    body_len = _HEADER_BYTES - 10
    header = header.ljust(body_len - 1) + '\n'
    if len(header) != body_len:
        raise ValueError(f'A .npy header for shape {shape} does not fit in {_HEADER_BYTES} bytes.')
    return b'\x93NUMPY\x01\x00' + body_len.to_bytes(2, 'little') + header.encode('latin1')


class NpyAppender:
    """Write a 1-D or 2-D array to ``path`` in row chunks of known dtype and row shape."""

    def __init__(self, path: Path, dtype, row_shape: Tuple[int, ...] = ()):
        self.path = Path(path)
        self.dtype = np.dtype(dtype)
        self.row_shape = tuple(row_shape)
        self.num_rows = 0
        self._file = open(self.path, 'wb')
        self._file.write(_npy_header(self.dtype, (0, *self.row_shape)))

    def append(self, rows: np.ndarray) -> None:
        rows = np.ascontiguousarray(rows, dtype=self.dtype)
        if rows.shape[1:] != self.row_shape:
            raise ValueError(
                f'{self.path.name}: rows of shape {rows.shape[1:]}, expected {self.row_shape}.'
            )
        self._file.write(rows.tobytes())
        self.num_rows += rows.shape[0]

    def close(self) -> None:
        if self._file.closed:
            return
        self._file.seek(0)
        self._file.write(_npy_header(self.dtype, (self.num_rows, *self.row_shape)))
        self._file.close()


class DatasetWriter:
    """Rows of (dense float32, sparse int32, label float32) into ``<dir>/*.npy``.

    Use as a context manager: on success the directory appears atomically at
    ``final_dir`` (replacing an older one); on an exception nothing is left.
    """

    def __init__(self, final_dir: Path, num_dense: int, num_sparse: int):
        self.final_dir = Path(final_dir)
        self.tmp_dir = self.final_dir.with_name(f'.{self.final_dir.name}.tmp-{os.getpid()}')
        self.num_dense = num_dense
        self.num_sparse = num_sparse

    def __enter__(self) -> 'DatasetWriter':
        if self.tmp_dir.exists():
            shutil.rmtree(self.tmp_dir)
        self.tmp_dir.mkdir(parents=True)
        self.dense = NpyAppender(self.tmp_dir / 'dense.npy', np.float32, (self.num_dense,))
        self.sparse = NpyAppender(self.tmp_dir / 'sparse.npy', np.int32, (self.num_sparse,))
        self.labels = NpyAppender(self.tmp_dir / 'labels.npy', np.float32)
        self.meta: Dict[str, Any] = {}
        return self

    @property
    def num_rows(self) -> int:
        return self.labels.num_rows

    def append(self, dense: np.ndarray, sparse: np.ndarray, labels: np.ndarray) -> None:
        if not len(dense) == len(sparse) == len(labels):
            raise ValueError(
                f'Row counts differ: dense {len(dense)}, sparse {len(sparse)}, '
                f'labels {len(labels)}.'
            )
        self.dense.append(dense)
        self.sparse.append(sparse)
        self.labels.append(labels)

    def written_labels(self) -> np.ndarray:
        """The labels appended so far, memory-mapped read-only (for statistics before closing)."""
        self.labels._file.flush()
        return np.memmap(
            self.labels.path, np.float32, 'r', offset=_HEADER_BYTES, shape=(self.num_rows,)
        )

    def __exit__(self, exc_type, exc, tb) -> None:
        for appender in (self.dense, self.sparse, self.labels):
            appender.close()
        if exc_type is not None:
            shutil.rmtree(self.tmp_dir, ignore_errors=True)
            return
        meta = dict(self.meta, num_rows=self.num_rows)
        (self.tmp_dir / META_NAME).write_text(json.dumps(meta, indent=1, sort_keys=True) + '\n')
        if self.final_dir.exists():
            old = self.final_dir.with_name(f'.{self.final_dir.name}.old-{os.getpid()}')
            os.replace(self.final_dir, old)
            os.replace(self.tmp_dir, self.final_dir)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(self.tmp_dir, self.final_dir)


def source_dir(data_dir, source: str) -> Path:
    return Path(data_dir).expanduser() / 'ctr' / source


def make_meta(source: str, num_train: int, num_dense: int, vocab_sizes, **extra) -> dict:
    return dict(
        format_version=FORMAT_VERSION,
        source=source,
        num_train=int(num_train),
        num_dense=int(num_dense),
        vocab_sizes=[int(v) for v in vocab_sizes],
        **extra,
    )
