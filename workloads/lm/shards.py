"""Pre-tokenized token shards: nanoGPT raw ``.bin`` and modded-nanogpt (llm.c) ``.bin``.

Two layouts are read, told apart by the first four bytes:

- modded-nanogpt / llm.c: a header of 256 little-endian int32 (1024 bytes) --
  ``header[0] = 20240520`` (magic), ``header[1] = 1`` (version: uint16 tokens),
  ``header[2]`` = number of tokens -- then the tokens as little-endian uint16.
  Version 2 (llm.c's uint32 tokens for large vocabularies) is refused with a
  message, since TimeTrial stores uint16 tokens.
- nanoGPT: the tokens alone, little-endian uint16 (``np.memmap(path, np.uint16)``).

Any other file (empty, odd byte count, header whose count disagrees with the
file size) is an error naming the file and the reason. Readers return read-only
``np.memmap`` views, so a shard of billions of tokens is never loaded whole.
"""

from __future__ import annotations

from pathlib import Path
from typing import Union

import numpy as np

from harness.errors import UserInputError

MAGIC = 20240520
VERSION_UINT16 = 1
HEADER_INT32 = 256
HEADER_BYTES = HEADER_INT32 * 4
TOKEN_DTYPE = np.dtype('<u2')

PathLike = Union[str, Path]


def _bad(path: Path, reason: str) -> UserInputError:
    return UserInputError(f'Token shard {path}: {reason}')


def shard_format(path: PathLike) -> str:
    """'modded' if the file starts with the modded-nanogpt magic number, else 'raw'."""
    with open(path, 'rb') as f:
        head = f.read(4)
    if len(head) == 4 and int(np.frombuffer(head, '<i4')[0]) == MAGIC:
        return 'modded'
    return 'raw'


def read_shard(path: PathLike) -> np.ndarray:
    """The uint16 tokens of a shard (read-only memmap), validating its layout."""
    path = Path(path)
    if not path.is_file():
        raise _bad(path, 'no such file.')
    n_bytes = path.stat().st_size
    if n_bytes == 0:
        raise _bad(path, 'the file is empty.')
    if shard_format(path) == 'modded':
        if n_bytes < HEADER_BYTES:
            raise _bad(
                path,
                f'it starts with the modded-nanogpt magic number {MAGIC} but is '
                f'only {n_bytes} bytes long, shorter than the {HEADER_BYTES}-byte '
                'header: the file is truncated.',
            )
        header = np.fromfile(path, dtype='<i4', count=HEADER_INT32)
        version, n_tokens = int(header[1]), int(header[2])
        if version != VERSION_UINT16:
            detail = (
                ' (version 2 holds uint32 tokens, which TimeTrial does not store)'
                if version == 2
                else ''
            )
            raise _bad(
                path,
                f'header version is {version}{detail}; only version '
                f'{VERSION_UINT16} (uint16 tokens) is supported.',
            )
        expected = HEADER_BYTES + 2 * n_tokens
        if n_tokens <= 0 or expected != n_bytes:
            raise _bad(
                path,
                f'the header announces {n_tokens} tokens, i.e. a file of '
                f'{expected} bytes, but the file has {n_bytes} bytes: it is '
                'truncated or its header is corrupt.',
            )
        return np.memmap(path, dtype=TOKEN_DTYPE, mode='r', offset=HEADER_BYTES, shape=(n_tokens,))
    if n_bytes % 2:
        raise _bad(
            path,
            f'{n_bytes} bytes is an odd count, so the file is not raw uint16 '
            'tokens (nanoGPT layout) and it has no modded-nanogpt header '
            f'(magic {MAGIC}).',
        )
    return np.memmap(path, dtype=TOKEN_DTYPE, mode='r')


def _as_uint16(tokens: np.ndarray) -> np.ndarray:
    tokens = np.asarray(tokens)
    if tokens.size and (int(tokens.min()) < 0 or int(tokens.max()) > np.iinfo(np.uint16).max):
        raise ValueError(
            f'Token ids must lie in [0, 65535] to be stored as uint16, got '
            f'[{int(tokens.min())}, {int(tokens.max())}].'
        )
    return tokens.astype(TOKEN_DTYPE)


def write_raw_shard(path: PathLike, tokens: np.ndarray) -> None:
    """nanoGPT layout: the tokens as little-endian uint16, nothing else."""
    _as_uint16(tokens).tofile(path)


def write_modded_shard(path: PathLike, tokens: np.ndarray) -> None:
    """modded-nanogpt layout: 256-int32 header (magic, version 1, count), then uint16 tokens."""
    tokens = _as_uint16(tokens)
    header = np.zeros(HEADER_INT32, dtype='<i4')
    header[0], header[1], header[2] = MAGIC, VERSION_UINT16, tokens.size
    with open(path, 'wb') as f:
        f.write(header.tobytes())
        f.write(tokens.tobytes())
