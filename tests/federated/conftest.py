"""Fixtures: small generated plays in the Gutenberg format, prepared as clients."""

from __future__ import annotations

import random
import string
from pathlib import Path

import pytest

WORDS = (
    'thou art the lord of all my love and yet I know not why the night doth fall '
    'upon this field where honour sleeps good sir I pray you speak no more'
).split()


def make_play(title: str, roles: dict, seed: int) -> str:
    """A play in the corpus format; ``roles`` maps a speaker line's name to the
    number of speech lines it speaks (spread over speeches of 1-4 lines)."""
    rng = random.Random(seed)
    out = [title.upper(), '', 'by William Shakespeare', '', '', 'PERSONS REPRESENTED.', '']
    out += [f'{name}, a person.' for name in roles] + ['', '', 'ACT I.', '', 'Scene I. A room.', '']
    left = dict(roles)
    while any(left.values()):
        name = rng.choice([n for n, k in left.items() if k])
        n = min(left[name], rng.randint(1, 4))
        left[name] -= n
        if rng.random() < 0.2:
            out += ['[Enter somebody, and', 'another.]', '']
        out.append(f'{name}.')
        for i in range(n):
            words = ' '.join(rng.choice(WORDS) for _ in range(rng.randint(4, 9)))
            prefix = '[Aside.] ' if i == 0 and rng.random() < 0.1 else ''
            out.append(prefix + words[0].upper() + words[1:] + ',')
        out.append('')
    out += ['[Exeunt.]', '']
    return '\n'.join(out)


def write_plays(
    folder: Path,
    num_plays: int = 2,
    roles_per_play: int = 10,
    lines: tuple = (40, 70),
    seed: int = 0,
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    for p in range(num_plays):
        # Speaker names of one or two words, upper or title case: 'LORD Ab', 'Lady Ac'.
        roles = {
            f"{'LORD' if r % 2 else 'Lady'} {string.ascii_uppercase[p]}"
            f"{string.ascii_lowercase[r]}": rng.randint(*lines)
            for r in range(roles_per_play)
        }
        (folder / f'play_{p}_gut.txt').write_text(make_play(f'Play {p}', roles, seed + p))
    return folder


@pytest.fixture(scope='session')
def federated_data_dir(tmp_path_factory) -> str:
    """A data dir with 20 generated clients (40-70 lines each) prepared."""
    from workloads.federated_shakespeare import data

    root = tmp_path_factory.mktemp('federated')
    texts = write_plays(root / 'texts')
    data.prepare(root / 'data', source=str(texts), log=lambda _: None)
    return str(root / 'data')
