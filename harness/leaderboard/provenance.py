"""What a submitted result records about the code that produced it.

A submission's identity is the sha256 of its files: every regular file of the
folder, in sorted relative-path order, each contributing its relative path and
its bytes (so renaming a file changes the hash, as moving code does). Choices
made where the issue was silent:

- Left out: ``__pycache__`` folders, ``*.pyc``/``*.pyo`` and every name starting
  with ``.`` (``.git``, ``.ruff_cache``, ``.DS_Store``): importing a submission
  writes bytecode, and tool caches change without the code changing, so
  re-submitting the same code must give the same hash.
- A single-file submission hashes that file plus the search space next to it
  (if any), the same way.
- ``entry_name`` (``<name>-<first 8 hex digits>``) names the submission in
  results and on leaderboards, so two versions of one folder never merge into
  one entrant and a user's folder called ``adamw`` never merges with the baseline.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
from pathlib import Path
from typing import Any, Dict, List, Optional

from harness import __version__, registry, results
from harness.submission.loader import search_space_path

PROVENANCE_JSON = 'provenance.json'
HASH_PREFIX_CHARS = 8
_SKIPPED_SUFFIXES = ('.pyc', '.pyo')


def submission_files(path: Path) -> List[Path]:
    """The files that make a submission, sorted by relative path (see the module doc)."""
    path = Path(path)
    if path.is_file():
        space = search_space_path(path)
        return [path] + ([space] if space is not None else [])
    files = []
    for file in path.rglob('*'):
        rel = file.relative_to(path)
        if any(part.startswith('.') or part == '__pycache__' for part in rel.parts):
            continue
        if file.is_file() and file.suffix not in _SKIPPED_SUFFIXES:
            files.append(file)
    return sorted(files, key=lambda f: f.relative_to(path).as_posix())


def _relative(file: Path, root: Path) -> str:
    return file.name if root.is_file() else file.relative_to(root).as_posix()


def content_hash(path: Path) -> str:
    """sha256 (hex) over the submission's files: relative path, NUL, size, NUL, bytes."""
    path = Path(path)
    digest = hashlib.sha256()
    for file in submission_files(path):
        data = file.read_bytes()
        digest.update(_relative(file, path).encode('utf-8') + b'\0')
        digest.update(str(len(data)).encode('ascii') + b'\0')
        digest.update(data)
    return digest.hexdigest()


@dataclasses.dataclass(frozen=True)
class SubmissionIdentity:
    name: str
    path: Path
    content_sha256: str
    #: relative path -> sha256 of that file
    files: Dict[str, str]
    search_space_path: Optional[Path]
    search_space_text: Optional[str]

    @property
    def short_hash(self) -> str:
        return self.content_sha256[:HASH_PREFIX_CHARS]

    @property
    def entry_name(self) -> str:
        return f'{self.name}-{self.short_hash}'

    def record(self, **extra: Any) -> Dict[str, Any]:
        """What provenance.json holds (plus ``extra``: suite, hardware class, ...)."""
        from harness import hardware

        return {
            'submission': self.name,
            'entry': self.entry_name,
            'path': str(self.path),
            'content_sha256': self.content_sha256,
            'files': self.files,
            'search_space_path': str(self.search_space_path) if self.search_space_path else None,
            'search_space': self.search_space_text,
            'timetrial_version': __version__,
            'git_commit': hardware.git_commit(),
            'recorded_at': dt.datetime.now(dt.timezone.utc).isoformat(timespec='seconds'),
            **extra,
        }


def identify(name_or_path: str) -> SubmissionIdentity:
    """Hash a submission (a built-in name, a folder or a single .py file)."""
    path = registry.resolve_submission(name_or_path)
    files = {
        _relative(f, path): hashlib.sha256(f.read_bytes()).hexdigest()
        for f in submission_files(path)
    }
    space = search_space_path(path)
    return SubmissionIdentity(
        name=registry.submission_name(path),
        path=path,
        content_sha256=content_hash(path),
        files=files,
        search_space_path=space,
        search_space_text=space.read_text(encoding='utf-8') if space else None,
    )


def write_trial_provenance(trial_dir: Path, record: Dict[str, Any]) -> None:
    """provenance.json in a trial directory, once (a resumed trial keeps the first)."""
    path = Path(trial_dir) / PROVENANCE_JSON
    if not path.exists():
        results.atomic_write_json(path, record)
