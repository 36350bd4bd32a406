"""The SALT table of workloads/lm_slm/README.md, from one command.

    python benchmarks/salt_table.py                  # run the salt suite, score it, write the table
    python benchmarks/salt_table.py --skip-run       # score RESULTS_DIR/salt as it stands
    python benchmarks/salt_table.py --readme-only    # the README's table from the files below
        [--results-dir results] [--data-dir DIR] [--max-steps N] [--out-dir workloads/lm_slm]
        [--readme FILE] [--noise-floor FILE]

1. ``timetrial run salt --results-dir RESULTS_DIR`` (30 trials, one at a time: ~40 min
   on a quiet 2-core CPU, at most ~70; see harness/suites/salt.yaml). Finished trials
   are skipped, so a run that was stopped continues. ``--max-steps N`` caps every trial
   (a smoke run: the table then says it is not a result).
2. ``timetrial score RESULTS_DIR/salt`` (``scoring.api.score``; report.html, salt.csv and
   the rest in RESULTS_DIR/salt/scoring).
3. In ``--out-dir``: ``salt_table.csv``, the SALT section's rows (every column of
   ``scoring.salt.salt_table``), and ``salt_table.json``, what they were measured on:
   date, machine, trials (finished, disturbed, load), the run's wall time, the command.
4. The README's table, between its ``<!-- salt-table:begin -->`` and
   ``<!-- salt-table:end -->`` lines, regenerated from those two files (``--readme-only``
   does this step alone).

Greppable lines: ``run_wall_s:`` and ``score_s:``, then the table's sentences.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import List, Optional

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from harness import results  # noqa: E402
from harness.errors import UserInputError  # noqa: E402
from scoring.salt import in_words, salt_markdown  # noqa: E402

SUITE = 'salt'
EXPERIMENT = 'salt'
DEFAULT_OUT = ROOT / 'workloads' / 'lm_slm'
CSV_NAME, JSON_NAME = 'salt_table.csv', 'salt_table.json'
BEGIN, END = '<!-- salt-table:begin -->', '<!-- salt-table:end -->'
#: The suite's promise on a 2-core CPU (harness/suites/salt.yaml).
BUDGET_S = 90 * 60
#: Bootstrap samples of the intervals (scoring's default).
BOOTSTRAP_SAMPLES = 1000


def run_suite(results_dir: Path, max_steps: Optional[int], data_dir: Optional[Path]) -> float:
    """``timetrial run salt``; returns its wall seconds."""
    command = [sys.executable, '-m', 'harness.cli.main', 'run', SUITE,
               '--results-dir', str(results_dir)]
    if max_steps is not None:
        command += ['--max-steps', str(max_steps)]
    if data_dir is not None:
        command += ['--data-dir', str(data_dir)]
    env = {**os.environ, 'PYTHONPATH': os.pathsep.join(
        p for p in (str(ROOT), os.environ.get('PYTHONPATH')) if p)}
    print('running:', shlex.join(command), flush=True)
    started = time.perf_counter()
    done = subprocess.run(command, env=env)
    wall_s = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f'timetrial run {SUITE} failed (exit status {done.returncode}); '
                         'its output is above. Fix that and run this again: finished trials '
                         'are kept.')
    return wall_s


def _trial_files(trial_dirs: List[str], name: str) -> List[dict]:
    out = []
    for d in trial_dirs:
        try:
            data = results.read_json(Path(d) / name)
        except (OSError, ValueError):
            data = None  # scoring listed it among the files skipped
        out.append(data if isinstance(data, dict) else {})
    return out


def provenance(rep, run_wall_s: Optional[float], command: str) -> dict:
    """Where and when the table's trials ran, and how disturbed they were."""
    trials = rep.trials
    metas = _trial_files(list(trials['trial_dir']), results.META_JSON)
    identities = _trial_files(list(trials['trial_dir']), results.TRIAL_JSON)
    days = sorted({str(m['start_time'])[:10] for m in metas if m.get('start_time')})
    caps = sorted({i['max_steps'] for i in identities if i.get('max_steps') is not None})
    machines = []
    for cls in rep.hardware_classes:
        fingerprint = rep.hardware.get(cls, {})
        machines.append({'hardware_class': cls, **{k: fingerprint.get(k) for k in (
            'cpu_model', 'cpu_cores', 'accelerator', 'accelerator_count', 'memory_gib')}})
    load = trials['load_average'].dropna()
    # The trials' own wall time: what the suite costs, whichever invocations ran them (a
    # rerun of one trial must not read as the whole suite's time).
    walls = [float(r['wall_time_s']) for r in
             _trial_files(list(trials['trial_dir']), results.RESULT_JSON)
             if r.get('wall_time_s') is not None]
    trials_wall_s = sum(walls) if walls else None
    return {
        'generated_at': datetime.datetime.now(datetime.timezone.utc).isoformat(
            timespec='seconds'),
        'command': command,
        'results_dir': str(rep.results_dir),
        'ran_on': days,
        'machines': machines,
        'frameworks': sorted(set(trials['framework'])),
        'n_trials': int(len(trials)),
        'n_finished': int(trials['finished'].sum()),
        'n_failed': int((trials['status'] == 'failed').sum()),
        'n_disturbed': int(trials['timing_disturbed'].eq(True).sum()),
        'load_average_median': float(np.median(load)) if len(load) else None,
        'max_steps': caps,
        'run_wall_s': run_wall_s,
        'trials_wall_s': trials_wall_s,
        'noise_floor': _shown_path(rep.noise_floor_source),
        'bootstrap_samples': BOOTSTRAP_SAMPLES,
    }


def _shown_path(source: str) -> str:
    """A noise floor's source as a reader of the README can find it: relative to the
    repository when it ships with it, ``~`` for the home directory otherwise."""
    return source.replace(str(ROOT) + os.sep, '').replace(str(Path.home()), '~')


def shipped_noise_floor() -> Optional[Path]:
    """The noise floor shipped for this machine's hardware class, if there is one: a
    committed table should rest on numbers anyone can read, not on a file in one home."""
    from harness import hardware

    path = ROOT / 'scoring' / 'noise_floors' / f'{hardware.hardware_class(hardware.fingerprint())}.json'
    return path if path.is_file() else None


def write_table(rep, out_dir: Path, meta: dict) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    rep.salt.to_csv(out_dir / CSV_NAME, index=False)
    (out_dir / JSON_NAME).write_text(json.dumps(meta, indent=2) + '\n', encoding='utf-8')


def _machine(meta: dict) -> str:
    parts = []
    for m in meta['machines']:
        what = ', '.join(str(m[k]) + suffix for k, suffix in (
            ('cpu_model', ''), ('cpu_cores', ' cores'), ('accelerator', '')) if m.get(k))
        parts.append(f'{m["hardware_class"]} ({what})' if what else m['hardware_class'])
    return '; '.join(parts) or 'unknown hardware'


def render_block(table: pd.DataFrame, meta: dict) -> str:
    """The README's generated block, markers included."""
    wall = meta.get('trials_wall_s')
    load = meta.get('load_average_median')
    lines = [BEGIN, '']
    if meta.get('max_steps'):
        caps = ', '.join(str(c) for c in meta['max_steps'])
        lines += [f'**Smoke run (every trial capped at {caps} steps): these numbers are not '
                  'a result.**', '']
    lines += [
        f'Measured {", ".join(meta["ran_on"]) or "(date unknown)"} on {_machine(meta)}, '
        f'{"/".join(meta["frameworks"])}: {meta["n_trials"]} trials ({meta["n_finished"]} '
        f'finished, {meta["n_failed"]} failed, {meta["n_disturbed"]} disturbed by other work'
        + (f'; median load average {load:.1f}, the trial\'s own threads included'
           if load is not None else '') + ')'
        + (f', {wall / 60:.0f} min of trial wall time in all' if wall is not None else '')
        + '. '
        f'Noise floor: {meta["noise_floor"]}. Generated by `{meta["command"]}`.',
        '',
        salt_markdown(table).rstrip('\n'),
        '',
    ]
    lines += [f'- {line}' for line in in_words(table)]
    lines += ['', END]
    return '\n'.join(lines)


def check_readme(readme: Path) -> str:
    """The README's text; UserInputError when it is missing or lacks the markers."""
    try:
        text = readme.read_text(encoding='utf-8')
    except FileNotFoundError:
        raise UserInputError(f'README {readme} does not exist; pass the one to update with '
                             '--readme.') from None
    if text.count(BEGIN) != 1 or text.count(END) != 1 or text.index(BEGIN) > text.index(END):
        raise UserInputError(f'{readme} must hold one line {BEGIN} and, after it, one line '
                             f'{END}: the table is written between them. Add them where the '
                             'table belongs.')
    return text


def update_readme(readme: Path, out_dir: Path) -> None:
    """Replace the README's block with one rendered from salt_table.csv and .json."""
    text = check_readme(readme)
    try:
        table = pd.read_csv(out_dir / CSV_NAME)
        meta = json.loads((out_dir / JSON_NAME).read_text(encoding='utf-8'))
    except FileNotFoundError as e:
        raise UserInputError(f'{e.filename} does not exist: run this script without '
                             '--readme-only first (it writes the table).') from None
    head, rest = text.split(BEGIN)
    tail = rest.split(END)[1]
    readme.write_text(head + render_block(table, meta) + tail, encoding='utf-8')


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--results-dir', type=Path, default=Path('results'),
                        help='where `timetrial run salt` writes (default: results)')
    parser.add_argument('--max-steps', type=int, default=None,
                        help='cap every trial (a smoke run; the table says so)')
    parser.add_argument('--data-dir', type=Path, default=None,
                        help='data root for the run (default: timetrial\'s, ~/.cache/timetrial)')
    parser.add_argument('--noise-floor', type=Path, default=None,
                        help='noise-floor file the ties are called with (default: the one '
                             'shipped for this hardware class, scoring/noise_floors/)')
    parser.add_argument('--skip-run', action='store_true',
                        help='score RESULTS_DIR/salt as it stands')
    parser.add_argument('--readme-only', action='store_true',
                        help='only regenerate the README table from salt_table.csv/.json')
    parser.add_argument('--out-dir', type=Path, default=DEFAULT_OUT,
                        help='where salt_table.csv and .json go (default: workloads/lm_slm)')
    parser.add_argument('--readme', type=Path, default=None,
                        help='the README whose table is regenerated (default: OUT_DIR/README.md)')
    args = parser.parse_args(argv)
    readme = args.readme or args.out_dir / 'README.md'
    try:
        check_readme(readme)  # before an hour of trials, not after
        if args.noise_floor is not None:
            from scoring.noise_floor import find_noise_floors

            find_noise_floors([], args.noise_floor)  # likewise: a bad file is said now
        if not args.readme_only:
            run_wall_s = None
            if not args.skip_run:
                run_wall_s = run_suite(args.results_dir, args.max_steps, args.data_dir)
                print(f'run_wall_s:{run_wall_s:.1f}', flush=True)
                if run_wall_s > BUDGET_S:
                    print(f'warning: the suite took over {BUDGET_S / 60:.0f} minutes '
                          '(a loaded machine?)', file=sys.stderr)
            from scoring.api import score

            experiment = args.results_dir / EXPERIMENT
            started = time.perf_counter()
            rep = score(experiment, out_dir=experiment / 'scoring',
                        bootstrap_samples=BOOTSTRAP_SAMPLES,
                        noise_floor=args.noise_floor or shipped_noise_floor())
            print(f'score_s:{time.perf_counter() - started:.1f}')
            if rep.salt is None:
                raise UserInputError(f'No trial under {experiment} called the teacher: there is '
                                     'no SALT table to write. Run the salt suite there first.')
            command = 'python benchmarks/salt_table.py' + (
                f' --max-steps {args.max_steps}' if args.max_steps is not None else '')
            write_table(rep, args.out_dir, provenance(rep, run_wall_s, command))
            print(f'wrote: {args.out_dir / CSV_NAME} {args.out_dir / JSON_NAME}')
        update_readme(readme, args.out_dir)
        print(f'wrote: {readme}')
        for line in in_words(pd.read_csv(args.out_dir / CSV_NAME)):
            print(line)
    except UserInputError as e:
        print(f'salt_table: error: {e}', file=sys.stderr)
        return 2
    return 0


if __name__ == '__main__':
    sys.exit(main())
