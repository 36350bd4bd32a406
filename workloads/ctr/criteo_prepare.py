r"""Prepare your Criteo files: days in time order, and which day(s) validate.

Criteo 1TB is 24 files, ``day_0`` ... ``day_23`` (plain or .gz), one day
each in time order; Criteo Kaggle is one ``train.txt`` of seven days. The
prepared rows are the training days in day order, then the validation days:

- several files: the validation days are the ones you name, else the last day
  (by day number: day_23 follows day_9, see ``criteo_reader.day_order``);
- one file: its last seventh validates (Criteo Kaggle's last day).

``timetrial prepare ctr --variant criteo --source DIR`` validates on the last
day. To name the validation day(s), run this module::

    python -m workloads.ctr.criteo_prepare --source DIR --data-dir ~/.cache/timetrial \
        --validation-days day_23
    python -m workloads.ctr.criteo_prepare --source DIR --data-dir ~/.cache/timetrial \
        --validation-days day_22,day_23

(``--data-dir``: the data root that ``timetrial run`` reads, by default
``$TIMETRIAL_DATA_DIR`` or ``~/.cache/timetrial``.)

Names are the files' names with or without ``.gz``; a name not found is an
error that lists the days found. Named days need not be the last ones (the
rest still train, in day order), but only the last days keep validation after
all of training in time.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np

from harness.errors import UserInputError
from workloads.ctr import criteo_reader
from workloads.ctr.arrays import DatasetWriter, make_meta, source_dir

#: One day of Criteo Kaggle's seven (its train.txt is in time order).
CRITEO_VALIDATION_FRACTION = 1.0 / 7.0


def split_days(
    files: Sequence[Path], validation_days: Optional[Sequence[str]] = None
) -> Tuple[List[Path], List[Path]]:
    """(training files, validation files), each in day order, from files in day order.

    ``validation_days`` None: the last file validates (none when there is one file:
    it is split by rows instead). Otherwise the named days validate.
    """
    files = list(files)
    if not validation_days:
        return (files[:-1], files[-1:]) if len(files) > 1 else (files, [])
    by_name = {criteo_reader.day_name(p): p for p in files}
    by_name.update({p.name: p for p in files})
    found = ', '.join(criteo_reader.day_name(p) for p in files)
    unknown = [d for d in validation_days if d not in by_name]
    if unknown:
        raise UserInputError(
            f'--validation-days: no Criteo day named {", ".join(map(repr, unknown))}. '
            f'The days found (in day order): {found}.'
        )
    chosen = {by_name[d] for d in validation_days}
    if len(files) == 1:
        raise UserInputError(
            f'--validation-days names {files[0].name}, the only Criteo file: one file is split '
            'by rows (its last seventh validates). Give several day files, or leave '
            '--validation-days out.'
        )
    if len(chosen) == len(files):
        raise UserInputError(
            f'--validation-days names every Criteo day ({found}): leave at least one to train on.'
        )
    return [p for p in files if p not in chosen], [p for p in files if p in chosen]


def prepare_criteo(
    out_dir: Path,
    source: Path,
    validation_days: Optional[Sequence[str]] = None,
    log: Callable[[str], None] = print,
) -> Path:
    """Read the Criteo files under ``source`` into ``out_dir`` (training days, then validation)."""
    train_files, validation_files = split_days(
        criteo_reader.find_criteo_files(source), validation_days
    )
    files = train_files + validation_files
    reader = criteo_reader.CriteoTsvReader(files, criteo_reader.CRITEO_VOCAB_SIZES)
    log(
        f'Reading {len(files)} Criteo file(s) from {source}; validation: '
        f'{", ".join(p.name for p in validation_files) or "the last seventh of the rows"} ...'
    )
    num_train = None  # rows before the first validation file
    with DatasetWriter(out_dir, criteo_reader.NUM_INTEGER, criteo_reader.NUM_CATEGORICAL) as writer:
        for block in reader:
            if num_train is None and block.file_index >= len(train_files) and validation_files:
                num_train = writer.num_rows
            writer.append(block.dense, block.sparse.astype(np.int32), block.labels)
        n = writer.num_rows
        if n < 2:
            raise UserInputError(f'{source}: fewer than 2 valid Criteo lines in all.')
        if validation_files:
            if num_train is None:
                raise UserInputError(
                    f'The validation day(s) {", ".join(p.name for p in validation_files)} '
                    'hold no valid Criteo lines.'
                )
            if num_train == 0:
                raise UserInputError('The training days hold no valid Criteo lines.')
        else:  # one file: its last seventh validates (Criteo Kaggle's last day)
            num_train = n - max(1, int(round(n * CRITEO_VALIDATION_FRACTION)))
        train_labels = writer.written_labels()[:num_train]
        writer.meta = make_meta(
            'criteo',
            num_train,
            criteo_reader.NUM_INTEGER,
            criteo_reader.CRITEO_VOCAB_SIZES,
            files=[str(p) for p in files],
            train_files=[p.name for p in train_files],
            validation_files=[p.name for p in validation_files],
            train_click_rate=float(np.mean(train_labels, dtype=np.float64)),
            lines=reader.stats.lines,
            malformed_lines=reader.stats.malformed,
        )
    log(
        f'Criteo: {num_train:,} train and {n - num_train:,} validation rows; '
        f'{reader.stats.malformed:,} malformed lines skipped.'
    )
    return out_dir


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog='python -m workloads.ctr.criteo_prepare',
        description='Prepare Criteo TSV files for the ctr workload (--variant criteo), naming '
        'the validation day(s).',
    )
    parser.add_argument('--source', required=True, help='directory of day_0 ... day_23 (or a file)')
    parser.add_argument(
        '--validation-days',
        default=None,
        help='comma-separated day names that validate, e.g. day_23 or day_22,day_23 '
        '(default: the last day)',
    )
    parser.add_argument(
        '--data-dir', required=True, help='data root, as for `timetrial run --data-dir`'
    )
    args = parser.parse_args(argv)
    days = [d.strip() for d in args.validation_days.split(',')] if args.validation_days else None
    if days is not None and not all(days):
        raise UserInputError(f'--validation-days {args.validation_days!r} has an empty name.')
    root = Path(args.data_dir).expanduser()
    out_dir = source_dir(root, 'criteo')
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    out = prepare_criteo(out_dir, Path(args.source), days, print)
    print(f'prepared:ctr variant:criteo dir:{out}')
    return 0


if __name__ == '__main__':
    try:
        raise SystemExit(main())
    except UserInputError as e:
        print(f'error: {e}', file=sys.stderr)
        raise SystemExit(2) from None
