"""Fixtures for workload tests: small prepared data built from generated text (no network)."""

from __future__ import annotations

import numpy as np
import pytest

_SYLLABLES = (
    'ka',
    'lo',
    'mi',
    'ther',
    'an',
    'dro',
    'sel',
    'wyn',
    'ost',
    'ry',
    'bel',
    'ung',
    'fa',
    'ir',
    'cor',
    'th',
    'e',
    'ma',
    'us',
    'lee',
)


def write_generated_plays(folder, n_plays: int = 8, lines_per_play: int = 400, seed: int = 0):
    """``n_plays`` .txt files of play-like text: speaker lines and verse of made-up words.

    Deterministic for a seed; about 20 KB each with the defaults. Returns the paths.
    """
    rng = np.random.default_rng(seed)
    words = sorted({''.join(rng.choice(_SYLLABLES, size=rng.integers(1, 4))) for _ in range(300)})
    speakers = [w.upper() + '.' for w in words[:12]]
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for play in range(n_plays):
        lines = [f'THE TRAGEDY OF {words[play].upper()}', '']
        for _ in range(lines_per_play):
            if rng.random() < 0.2:
                lines += ['', str(rng.choice(speakers))]
            verse = ' '.join(rng.choice(words, size=rng.integers(4, 10)))
            lines.append(verse.capitalize() + str(rng.choice([',', '.', ';', '!', '?'])))
        path = folder / f'play_{play:02d}.txt'
        path.write_text('\n'.join(lines) + '\n', encoding='utf-8')
        paths.append(path)
    return paths


@pytest.fixture(scope='session')
def lm_text_dir(tmp_path_factory):
    """A folder of generated .txt 'plays' (the lm workload's text source)."""
    folder = tmp_path_factory.mktemp('lm_text')
    write_generated_plays(folder)
    return folder


@pytest.fixture(scope='session')
def lm_data_dir(tmp_path_factory, lm_text_dir):
    """A data root whose lm/ is prepared from ``lm_text_dir`` (treat as read-only)."""
    from workloads.lm import data

    root = tmp_path_factory.mktemp('lm_data')
    data.prepare(str(root), source=str(lm_text_dir), log=lambda _: None)
    return str(root)
