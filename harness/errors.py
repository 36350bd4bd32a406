"""Helpers that turn bad user input into messages that say how to fix it."""

from __future__ import annotations

import difflib
from typing import Iterable

from harness.spec import UserInputError


def unknown_name_error(kind: str, name: str, known: Iterable[str], hint: str = '') -> UserInputError:
    """'Unknown workload 'lmm'. Did you mean: lm? Known workloads: ctr, lm.'"""
    known = sorted(known)
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
    parts = [f'Unknown {kind} {name!r}.']
    if close:
        parts.append(f'Did you mean: {", ".join(close)}?')
    parts.append(f'Known {kind}s: {", ".join(known) if known else "(none)"}.')
    if hint:
        parts.append(hint)
    return UserInputError(' '.join(parts))
