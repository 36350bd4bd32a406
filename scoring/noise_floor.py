"""The noise floor: how far the time to target of one configuration moves between runs.

A noise-floor file (``harness.results.NoiseFloor`` records, ``{"noise_floors":
[...]}``) holds, per hardware class, workload (size, variant), framework and
submission, the coefficient of variation (CV) of the time and of the steps to
target over K repeats, with one seed (``seeds: same``) or K seeds
(``different``). A paired comparison (study *s* of both entrants shares its seed)
uses the ``same`` entries: what moves such a ratio between runs is the clock and
any nondeterminism, not the seed, and its floor is the CV of a ratio of two such
times, sqrt(CV_a² + CV_b²) (``ratio_floor``). An unpaired one uses the
``different`` entries (the larger of the two): its studies differ in seed too.

Where it is read from, first found:

1. ``--noise-floor FILE`` (``noise_floor=``), for every hardware class;
2. this machine's file for the class, ``harness.paths.noise_floor_file(class)``
   (written by ``timetrial noise``);
3. the reference file shipped with scoring, ``scoring/noise_floors/<class>.json``.

Only entries of the scored trials' hardware class(es) are used (all of them when
the trials have no class). A file that is not valid is bad input (exit 2), never
skipped silently: a wrong noise floor would turn real differences into ties.

The CV of a (workload, framework) is the largest over its entries (several
submissions, or classes): ties are called conservatively. ``--time-col steps`` and
``examples`` use the CV of the steps (examples are steps times a fixed batch size).
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from harness import paths, results
from harness.errors import UserInputError

SHIPPED_DIR = Path(__file__).resolve().parent / 'noise_floors'
#: The ``seeds`` of the entries an unpaired comparison uses; a paired one uses 'same'.
SEEDS = 'different'
PAIRED_SEEDS = 'same'


def shipped_file(hardware_class: str) -> Path:
    return SHIPPED_DIR / f'{hardware_class}.json'


@dataclasses.dataclass
class NoiseFloors:
    #: For the report: where the floors came from, or why there are none.
    source: str
    files: List[Path]
    entries: List[results.NoiseFloor]

    def cv(
        self, workload: str, size: str, variant: Optional[str], framework: str, time_col: str,
        seeds: str = SEEDS,
    ) -> Optional[float]:
        """The largest CV measured for this configuration (None: not measured)."""
        values = [
            f.time_to_target_cv if time_col == 'seconds' else f.steps_to_target_cv
            for f in self._index.get((workload, size, variant or None, framework, seeds), ())
        ]
        values = [v for v in values if v is not None]
        return max(values) if values else None

    def __post_init__(self) -> None:
        self._index: Dict[Tuple, List[results.NoiseFloor]] = {}
        for f in self.entries:
            key = (f.workload, f.size, f.variant or None, f.framework, f.seeds)
            self._index.setdefault(key, []).append(f)

    def ratio_floor(self, workload: str, size: str, variant: Optional[str],
                    frameworks: Sequence[str], time_col: str, paired: bool) -> Optional[float]:
        """The noise floor of a ratio of two entrants' times (module docstring); None when
        neither configuration was measured (one measured: its CV counts for both)."""
        seeds = PAIRED_SEEDS if paired else SEEDS
        cvs = [self.cv(workload, size, variant, fw, time_col, seeds) for fw in frameworks]
        known = [cv for cv in cvs if cv is not None]
        if not known:
            return None
        if not paired:
            return max(known)
        filled = [cv if cv is not None else max(known) for cv in cvs]
        return math.sqrt(sum(cv * cv for cv in filled))


def _bad(path: Path, why: str) -> UserInputError:
    return UserInputError(
        f'Noise-floor file {str(path)!r} is not valid: {why}. It must hold '
        '{"noise_floors": [...]} with one entry per configuration, as `timetrial noise` '
        'writes it. Fix or remove the file, or pass another with --noise-floor FILE.'
    )


def _check_entry(entry: results.NoiseFloor) -> List[str]:
    errors = []
    for key in ('hardware_class', 'workload', 'size', 'framework', 'submission'):
        if not isinstance(getattr(entry, key), str):
            errors.append(f'{key!r} must be a string, found {getattr(entry, key)!r}')
    if entry.variant is not None and not isinstance(entry.variant, str):
        errors.append(f"'variant' must be a string or null, found {entry.variant!r}")
    if entry.seeds not in results.NOISE_FLOOR_SEEDS:
        errors.append(
            f"'seeds' must be one of {', '.join(results.NOISE_FLOOR_SEEDS)}, "
            f'found {entry.seeds!r}'
        )
    for key in ('time_to_target_cv', 'steps_to_target_cv'):
        value = getattr(entry, key)
        ok = value is None or (
            isinstance(value, (int, float))
            and not isinstance(value, bool)
            and math.isfinite(value)
            and value >= 0
        )
        if not ok:
            errors.append(f'{key!r} must be a number >= 0 or null, found {value!r}')
    return errors


def read_file(path: Path) -> List[results.NoiseFloor]:
    """The entries of one noise-floor file; UserInputError when it is not valid."""
    path = Path(path)
    try:
        entries = results.read_noise_floors(path)
    except OSError as e:
        raise _bad(path, f'unreadable ({e.strerror or e})') from None
    except (ValueError, TypeError, AttributeError) as e:
        why = str(e).splitlines()[0] if str(e) else type(e).__name__
        if isinstance(e, AttributeError):
            why = 'an entry is not a mapping'
        raise _bad(path, why) from None
    for number, entry in enumerate(entries, start=1):
        errors = _check_entry(entry)
        if errors:
            raise _bad(path, f'entry {number}: ' + '; '.join(errors))
    return entries


def find_noise_floors(
    hardware_classes: Sequence[str], explicit: Optional[Path] = None
) -> NoiseFloors:
    """The noise floors for the scored trials' classes, from the first place that has them."""
    classes = [c for c in hardware_classes if c]
    if explicit is not None:
        explicit = Path(explicit).expanduser()
        if not explicit.is_file():
            raise UserInputError(
                f'Noise-floor file {str(explicit)!r} does not exist. Pass a file written by '
                '`timetrial noise`, or leave out --noise-floor to use this machine\'s.'
            )
        entries = read_file(explicit)
        used = [e for e in entries if not classes or e.hardware_class in classes]
        source = f'{explicit} (--noise-floor)'
        if entries and not used:
            source += f': no entry for {", ".join(classes)}, so none used'
        return NoiseFloors(source, [explicit], used)
    files, entries, described = [], [], []
    for cls in classes:
        for path, origin in (
            (paths.noise_floor_file(cls), 'measured on this machine'),
            (shipped_file(cls), 'reference shipped with scoring'),
        ):
            if path.is_file():
                entries += [e for e in read_file(path) if e.hardware_class == cls]
                files.append(path)
                described.append(f'{path} ({origin})')
                break
    if not files:
        looked = ', '.join(classes) or 'trials without a hardware class'
        return NoiseFloors(f'none measured (for {looked})', [], [])
    return NoiseFloors('; '.join(described), files, entries)
