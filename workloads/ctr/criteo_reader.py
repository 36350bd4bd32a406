"""Streaming reader for the Criteo display-ads TSV format.

One example per line, 40 tab-separated fields: the label (0 or 1), 13 integer
features, 26 categorical features (8 hexadecimal digits in the released data,
any string accepted here). An empty field is a missing value. This is the
format of Criteo Kaggle (``train.txt``) and Criteo 1TB (``day_0`` ...
``day_23``), plain or gzip-compressed.

Choices where the format is silent:
- Integers: missing or negative -> 0, then log(1 + x) (the usual DLRM/DCN
  transform; a few columns hold -1/-2 sentinels).
- Categoricals: 64-bit FNV-1a of the raw bytes, mixed by the splitmix64
  finalizer, modulo the feature's vocabulary size. An empty field hashes like
  any other string, so "missing" gets a bucket of its own (up to collisions).
  Hashing into a power-of-two vocabulary ``V`` and then reducing modulo a
  smaller power of two ``T`` equals hashing into ``T`` directly.
- Blank lines are ignored. Any other line that does not parse (wrong column
  count, a label other than 0/1, a non-integer in an integer column) is
  counted and skipped with a warning that names the file and line; only a
  file whose first block is wrong everywhere is an error (wrong format).

Parsing is vectorized over blocks of bytes (no Python loop per line), so
memory is bounded by ``block_bytes`` whatever the file size.
"""

from __future__ import annotations

import dataclasses
import gzip
import re
import warnings
from pathlib import Path
from typing import Iterator, List, Sequence, Tuple

import numpy as np

from harness.errors import UserInputError

# Criteo: hashed vocabulary per categorical column, the next power of two above
# the cardinality Criteo Kaggle reports for it (DLRM's table), at most 2**22.
# Models use tables of min(vocab, cap) rows: reducing a power-of-two hash modulo
# a smaller power of two is the same as hashing into it.
CRITEO_KAGGLE_CARDINALITIES = (
    1460,
    583,
    10131227,
    2202608,
    305,
    24,
    12517,
    633,
    3,
    93145,
    5683,
    8351593,
    3194,
    27,
    14992,
    5461306,
    10,
    5652,
    2173,
    4,
    7046547,
    18,
    15,
    286181,
    105,
    142572,
)
CRITEO_VOCAB_SIZES = tuple(
    min(1 << int(np.ceil(np.log2(c))), 1 << 22) for c in CRITEO_KAGGLE_CARDINALITIES
)


NUM_INTEGER = 13
NUM_CATEGORICAL = 26
NUM_FIELDS = 1 + NUM_INTEGER + NUM_CATEGORICAL
# Warnings about malformed lines per file before they are only counted.
MAX_WARNINGS_PER_FILE = 20

_FNV_OFFSET = np.uint64(14695981039346656037)
_FNV_PRIME = np.uint64(1099511628211)
_TAB, _NEWLINE, _MINUS, _ZERO = 9, 10, ord('-'), ord('0')


class CriteoFormatWarning(UserWarning):
    """A malformed line was skipped (the message names the file and line)."""


def log_transform(values: np.ndarray) -> np.ndarray:
    """Raw counts (NaN = missing) -> float32 log(1 + max(x, 0)), missing as 0."""
    values = np.nan_to_num(np.asarray(values, dtype=np.float64), nan=0.0)
    return np.log1p(np.maximum(values, 0.0)).astype(np.float32)


def mix64(h: np.ndarray) -> np.ndarray:
    """splitmix64 finalizer: spreads FNV's low bits before the modulo."""
    h = h.astype(np.uint64, copy=True)
    with np.errstate(over='ignore'):
        h ^= h >> np.uint64(30)
        h *= np.uint64(0xBF58476D1CE4E5B9)
        h ^= h >> np.uint64(27)
        h *= np.uint64(0x94D049BB133111EB)
        h ^= h >> np.uint64(31)
    return h


def hash_strings(values: Sequence[bytes]) -> np.ndarray:
    """The reader's 64-bit hash of each byte string (for tests and tools)."""
    data = b'\t'.join(values) + b'\n'
    buf = np.frombuffer(data, np.uint8)
    seps = np.flatnonzero((buf == _TAB) | (buf == _NEWLINE))
    starts = np.r_[0, seps[:-1] + 1]
    return _hash_fields(buf, starts, seps)


def _hash_fields(buf: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """FNV-1a over buf[start:end] for every field at once, then mix64."""
    lengths = ends - starts
    h = np.full(starts.shape, _FNV_OFFSET, np.uint64)
    max_len = int(lengths.max(initial=0))
    with np.errstate(over='ignore'):
        for t in range(max_len):
            live = lengths > t
            byte = buf[np.where(live, starts + t, 0)].astype(np.uint64)
            h = np.where(live, (h ^ byte) * _FNV_PRIME, h)
    return mix64(h)


def _parse_integers(buf: np.ndarray, starts: np.ndarray, ends: np.ndarray):
    """Decimal integers (optional leading '-') -> (float64 values with NaN = empty, ok)."""
    lengths = ends - starts
    negative = (lengths > 0) & (buf[np.minimum(starts, len(buf) - 1)] == _MINUS)
    first = starts + negative
    digits_len = ends - first
    value = np.zeros(starts.shape, np.float64)
    ok = ~(negative & (digits_len == 0))
    for t in range(int(digits_len.max(initial=0))):
        live = digits_len > t
        digit = buf[np.where(live, first + t, 0)].astype(np.int64) - _ZERO
        good = (digit >= 0) & (digit <= 9)
        ok &= good | ~live
        value = np.where(live, value * 10 + digit, value)
    value = np.where(negative, -value, value)
    value[lengths == 0] = np.nan
    return value, ok


@dataclasses.dataclass
class ParsedBlock:
    labels: np.ndarray  # (n,) float32
    dense: np.ndarray  # (n, 13) float32, log-transformed
    sparse: np.ndarray  # (n, 26) int64 indices in [0, vocab)
    bad_lines: List[Tuple[int, str]]  # (0-based line index in the block, reason)
    num_lines: int  # lines in the block, blank ones included
    file_index: int = 0  # which of the reader's files the block comes from


def parse_block(block: bytes, vocab_sizes: np.ndarray) -> ParsedBlock:
    """Parse whole lines (``block`` ends with a newline) into arrays."""
    if b'\r' in block:
        block = block.replace(b'\r\n', b'\n')
    buf = np.frombuffer(block, np.uint8)
    line_ends = np.flatnonzero(buf == _NEWLINE)
    line_starts = np.r_[0, line_ends[:-1] + 1]
    tabs = np.flatnonzero(buf == _TAB)
    tab_cum = np.searchsorted(tabs, line_ends)  # tabs before each line end
    tabs_per_line = np.diff(np.r_[0, tab_cum])
    blank = line_ends == line_starts
    shaped = tabs_per_line == NUM_FIELDS - 1
    bad = [
        (int(i), f'{tabs_per_line[i] + 1} columns, expected {NUM_FIELDS}')
        for i in np.flatnonzero(~shaped & ~blank)
    ]

    rows = np.flatnonzero(shaped)
    # Field boundaries of the well-shaped lines: (n, 40) starts and ends.
    line_tabs = tabs[tab_cum[rows, None] - (NUM_FIELDS - 1) + np.arange(NUM_FIELDS - 1)]
    starts = np.concatenate([line_starts[rows, None], line_tabs + 1], axis=1)
    ends = np.concatenate([line_tabs, line_ends[rows, None]], axis=1)

    label_byte = buf[np.minimum(starts[:, 0], len(buf) - 1)]
    label_ok = (ends[:, 0] - starts[:, 0] == 1) & (
        (label_byte == _ZERO) | (label_byte == _ZERO + 1)
    )
    ints, ints_ok = _parse_integers(buf, starts[:, 1:14], ends[:, 1:14])
    ints_ok = ints_ok.all(axis=1)
    for i in np.flatnonzero(~label_ok):
        bad.append((int(rows[i]), 'label is not 0 or 1'))
    for i in np.flatnonzero(label_ok & ~ints_ok):
        col = int(np.argmin(_parse_integers(buf, starts[i, 1:14], ends[i, 1:14])[1])) + 1
        bad.append((int(rows[i]), f'column {col + 1} is not an integer'))
    keep = label_ok & ints_ok

    starts, ends = starts[keep], ends[keep]
    hashes = _hash_fields(buf, starts[:, 14:], ends[:, 14:])
    sparse = (hashes % vocab_sizes.astype(np.uint64)).astype(np.int64)
    return ParsedBlock(
        labels=(label_byte[keep] - _ZERO).astype(np.float32),
        dense=log_transform(ints[keep]),
        sparse=sparse,
        bad_lines=sorted(bad),
        num_lines=len(line_ends),
    )


def day_name(path: Path) -> str:
    """A file's day name: its name without a ``.gz`` suffix (``day_3.gz`` -> ``day_3``)."""
    name = Path(path).name
    return name[: -len('.gz')] if name.endswith('.gz') else name


def day_order(path: Path) -> tuple:
    """Sort key by the numbers in the name: day_2 < day_10 < day_23 (as strings, day_10 < day_2)."""
    parts = re.split(r'(\d+)', day_name(path))
    # Text and number parts alternate (text first), so keys of any two names compare.
    return tuple(int(p) if i % 2 else p for i, p in enumerate(parts))


def find_criteo_files(source: Path) -> List[Path]:
    """The data files under ``source``: a file, or a directory's visible files in day order.

    Day order sorts by the numbers in the names, so Criteo 1TB's day_0 ...
    day_23 come in time order (a string sort would put day_10 before day_2).
    """
    source = Path(source).expanduser()
    if not source.exists():
        raise UserInputError(
            f'Criteo source {source} does not exist: give the directory '
            'holding the TSV files (train.txt or day_0 ... day_23, .gz allowed).'
        )
    if source.is_file():
        return [source]
    files = sorted(
        (p for p in source.iterdir() if p.is_file() and not p.name.startswith('.')),
        key=lambda p: (day_order(p), p.name),
    )
    if not files:
        raise UserInputError(
            f'Criteo source directory {source} holds no files: put the '
            'TSV files there (train.txt or day_0 ... day_23, .gz allowed).'
        )
    names = [day_name(p) for p in files]
    twins = sorted({n for n in names if names.count(n) > 1})
    if twins:
        raise UserInputError(
            f'Criteo source directory {source} holds the same day twice, plain and '
            f'.gz ({", ".join(twins)}): keep one of each.'
        )
    return files


def check_vocab_sizes(vocab_sizes: Sequence[int]) -> np.ndarray:
    """One positive vocabulary size per categorical column, or a UserInputError."""
    sizes = list(vocab_sizes)
    problems = []
    if len(sizes) != NUM_CATEGORICAL:
        problems.append(
            f'{len(sizes)} vocabulary sizes given, one per categorical column '
            f'({NUM_CATEGORICAL}) needed'
        )
    for i, size in enumerate(sizes):
        if not isinstance(size, (int, np.integer)) or isinstance(size, bool) or size < 1:
            problems.append(
                f'vocabulary size of categorical column {i} is {size!r}, must be a positive integer'
            )
    if problems:
        raise UserInputError('Bad Criteo vocabulary sizes: ' + '; '.join(problems) + '.')
    return np.asarray(sizes, dtype=np.int64)


@dataclasses.dataclass
class ReaderStats:
    lines: int = 0  # lines seen, blank ones included
    rows: int = 0  # examples produced
    malformed: int = 0  # lines skipped
    files: int = 0


class CriteoTsvReader:
    """Iterate over ``ParsedBlock``s of many Criteo TSV files (plain or .gz), in order."""

    def __init__(
        self, paths: Sequence[Path], vocab_sizes: Sequence[int], block_bytes: int = 8 << 20
    ):
        self.paths = [Path(p) for p in paths]
        if not self.paths:
            raise UserInputError('No Criteo files to read.')
        self.vocab_sizes = check_vocab_sizes(vocab_sizes)
        self.block_bytes = int(block_bytes)
        self.stats = ReaderStats()

    def __iter__(self) -> Iterator[ParsedBlock]:
        for file_index, path in enumerate(self.paths):
            for block in self._read_file(path):
                block.file_index = file_index
                yield block
            self.stats.files += 1

    def _blocks(self, path: Path) -> Iterator[bytes]:
        """Blocks of whole lines (each ends with a newline)."""
        opener = gzip.open if path.suffix == '.gz' else open
        with opener(path, 'rb') as f:
            tail = b''
            while True:
                chunk = f.read(self.block_bytes)
                if not chunk:
                    break
                data = tail + chunk
                cut = data.rfind(b'\n') + 1
                if cut == 0:  # one line longer than a block: keep reading
                    tail = data
                    continue
                tail = data[cut:]
                yield data[:cut]
            if tail:
                yield tail + b'\n'

    def _read_file(self, path: Path) -> Iterator[ParsedBlock]:
        first_line = 1  # 1-based number of the block's first line in the file
        warned = skipped = 0
        for block_index, block in enumerate(self._blocks(path)):
            parsed = parse_block(block, self.vocab_sizes)
            if block_index == 0 and parsed.bad_lines and len(parsed.labels) == 0:
                self._raise_wrong_format(path, parsed)
            for line_index, reason in parsed.bad_lines:
                skipped += 1
                if warned < MAX_WARNINGS_PER_FILE:
                    warned += 1
                    warnings.warn(
                        f'{path}:{first_line + line_index}: skipped malformed line ({reason}).',
                        CriteoFormatWarning,
                        stacklevel=2,
                    )
            self.stats.lines += parsed.num_lines
            self.stats.rows += len(parsed.labels)
            self.stats.malformed += len(parsed.bad_lines)
            first_line += parsed.num_lines
            if len(parsed.labels):
                yield parsed
        if skipped > warned:
            warnings.warn(
                f'{path}: {skipped - warned} more malformed lines skipped ({skipped} in all).',
                CriteoFormatWarning,
                stacklevel=2,
            )

    @staticmethod
    def _raise_wrong_format(path: Path, parsed: ParsedBlock) -> None:
        reasons = sorted({reason for _, reason in parsed.bad_lines})
        hint = ''
        if any(r.startswith(f'{NUM_FIELDS - 1} columns') for r in reasons):
            hint = (
                ' Lines with 39 columns lack the label: the Criteo test files are '
                'unlabeled and cannot be used.'
            )
        raise UserInputError(
            f'{path} is not in the Criteo TSV format: none of its first '
            f'{len(parsed.bad_lines)} lines parse ({"; ".join(reasons[:3])}). Expected '
            f'{NUM_FIELDS} tab-separated columns: label, {NUM_INTEGER} integers, '
            f'{NUM_CATEGORICAL} categoricals.{hint}'
        )
