"""``timetrial noise``: the noise floor of a time to target on this machine.

One configuration (workload, size, variant, submission, hyperparameters) is run
K times with the **same** seed — what is left is the machine: timing jitter,
scheduling, nondeterministic kernels — and K times with **different** seeds
(data order and initialization too: what a study-to-study difference is made
of). Each repeat is a trial of its own, in a fresh process (the local
executor), so every repeat pays compilation as a real trial does. For each
framework and seed mode the coefficient of variation (sample standard
deviation / mean) of the time to target and of the steps to target is written:

- into ``<results>/<experiment>/noise_floor.json`` beside the repeats, and
- into this hardware class's record (``harness.paths.noise_floor_file``), which
  ``timetrial score`` reads to call a difference within the noise a tie.

Bad input (K < 2, unknown names) is refused before anything runs. When fewer
than two repeats of a framework and seed mode reach the target, no CV can be
measured: the command says so (exit status 2) and writes no noise floor.
"""

from __future__ import annotations

import datetime as dt
import shlex
import statistics
import sys
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import yaml

from harness import hardware, paths, registry, results
from harness.errors import UserInputError
from harness.launch.suite import Suite, derive_seed
from harness.submission import search_space
from harness.trial.config import TrialConfig

SEED_MODES = ('same', 'different')


def _cv(values: Sequence[float]) -> Optional[float]:
    if len(values) < 2:
        return None
    mean = statistics.fmean(values)
    return statistics.stdev(values) / mean if mean else None


def repeat_configs(base: TrialConfig, k: int, seed: int) -> Dict[str, List[TrialConfig]]:
    """K trials per seed mode: study r is repeat r; the same seed, or one per repeat."""
    out = {}
    for mode in SEED_MODES:
        out[mode] = [base.replace(
            experiment=f'{base.experiment}/{mode}-seed', study=r, trial=0,
            seed=seed if mode == 'same' else derive_seed(seed, 'noise', r)) for r in range(k)]
    return out


def floor_of(configs: List[TrialConfig], hw_class: str, mode: str, command: str
             ) -> results.NoiseFloor:
    """The NoiseFloor of finished repeats (read from their result.json)."""
    times: List[Optional[float]] = []
    steps: List[Optional[int]] = []
    for c in configs:
        r = results.read_result(c.trial_dir())
        reached = r is not None and r.reached
        times.append(r.time_to_target_s if reached else None)
        steps.append(r.steps_to_target if reached else None)
    hit_times = [t for t in times if t is not None]
    hit_steps = [s for s in steps if s is not None]
    first = configs[0]
    return results.NoiseFloor(
        hardware_class=hw_class, workload=first.workload, size=first.size,
        variant=first.variant, framework=first.framework,
        submission=first.display_submission, seeds=mode, k=len(configs),
        n_reached=len(hit_times), time_to_target_cv=_cv(hit_times),
        steps_to_target_cv=_cv([float(s) for s in hit_steps]),
        times_to_target_s=times, steps_to_target=steps,
        measured_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec='seconds'),
        command=command)


def merge_into(path: Path, floors: Sequence[results.NoiseFloor]) -> None:
    """Replace entries of the same configuration, keep the others."""
    kept = {f.key(): f for f in results.read_noise_floors(path)}
    kept.update({f.key(): f for f in floors})
    results.write_noise_floors(path, list(kept.values()))


def measure_noise(workload: str, submission: str, *, size: Optional[str] = None,
                  variant: Optional[str] = None, frameworks: Sequence[str] = (),
                  repeats: int = 5, seed: int = 0, hparams: Optional[dict] = None,
                  results_dir: str = 'results', experiment: Optional[str] = None,
                  data_dir: Optional[str] = None, executor: str = 'local',
                  threads: Optional[int] = None, max_steps: Optional[int] = None,
                  log: Callable[[str], None] = print,
                  ) -> Tuple[List[results.NoiseFloor], Path]:
    """Run the repeats, write the noise floors; return them and the experiment directory."""
    from harness.launch.launcher import preflight, run_suite
    from harness.submission.loader import check_submission, search_space_path

    if repeats < 2:
        raise UserInputError(f'--repeats must be at least 2 (a spread needs two runs), got '
                             f'{repeats}.')
    path = registry.resolve_submission(submission)
    info = registry.workload_infos().get(workload)
    if info is None:
        registry.validate_workload_choice(workload, size, variant, 'jax')  # names the known
    frameworks = list(frameworks) or [f for f in info.classes
                                      if not check_submission(str(path), [f])]
    if not frameworks:
        raise UserInputError(f'Submission {path} runs under none of {workload}\'s frameworks '
                             f'({", ".join(info.classes)}): see `timetrial check {submission}`.')
    for fw in frameworks:
        registry.validate_workload_choice(workload, size, variant, fw)
        problems = check_submission(str(path), [fw])
        if problems:
            raise UserInputError(f'Submission {path} under {fw}: ' + '; '.join(problems))
    size = size or info.sizes[0]
    if hparams is None:
        space_file = search_space_path(path)
        if space_file is None:
            raise UserInputError(f'Submission {path} has no search space: give --hparams FILE.')
        hparams = search_space.sample(search_space.load(space_file), seed, 0)
    name = registry.submission_name(path)
    experiment = experiment or f'noise-{workload}{"-" + variant if variant else ""}-{size}'
    exp_dir = Path(results_dir).expanduser().resolve() / experiment
    command = 'timetrial noise ' + ' '.join(shlex.quote(a) for a in sys.argv[2:]) \
        if sys.argv[1:2] == ['noise'] else None

    configs: Dict[str, Dict[str, List[TrialConfig]]] = {}
    for fw in frameworks:
        base = TrialConfig(workload=workload, framework=fw, submission=str(path), size=size,
                           variant=variant, hparams=hparams, experiment=experiment,
                           results_dir=str(Path(results_dir).expanduser().resolve()),
                           data_dir=data_dir, submission_name=name, threads=threads,
                           max_steps=max_steps)
        configs[fw] = repeat_configs(base, repeats, seed)
    request = exp_dir / 'noise_request.yaml'
    exp_dir.mkdir(parents=True, exist_ok=True)
    results.atomic_write_text(request, yaml.safe_dump({
        'workload': workload, 'size': size, 'variant': variant, 'submission': name,
        'frameworks': frameworks, 'repeats': repeats, 'seed': seed, 'hparams': hparams,
        'command': command}, sort_keys=False))
    hw_class = hardware.hardware_class(hardware.fingerprint())
    floors = []
    for mode in SEED_MODES:
        trials = [c for fw in frameworks for c in configs[fw][mode]]
        suite = Suite(path=request, experiment=f'{experiment}/{mode}-seed',
                      results_dir=exp_dir.parent, workloads=(), submissions=(),
                      frameworks=tuple(frameworks), executor=executor, parallelism=1)
        preflight(suite, trials, executor)
        log(f'noise: {len(trials)} repeats, {mode} seed, under {", ".join(frameworks)}')
        run_suite(suite, trials, executor, log=log)
        for fw in frameworks:
            floors.append(floor_of(configs[fw][mode], hw_class, mode, command))
    short = [f for f in floors if f.n_reached < 2]
    if short:
        raise UserInputError(
            'No noise floor written: fewer than two repeats reached the target for '
            + ', '.join(f'{f.framework}/{f.seeds} seed ({f.n_reached} of {f.k})' for f in short)
            + f'. See `timetrial status {exp_dir}/<mode>-seed`; give the workload a reachable '
            'target (timetrial calibrate) or the submission better --hparams.')
    results.write_noise_floors(exp_dir / 'noise_floor.json', floors)
    merge_into(paths.noise_floor_file(hw_class), floors)
    for f in floors:
        log(f'noise_floor workload:{f.workload}@{f.size} framework:{f.framework} seeds:{f.seeds} '
            f'k:{f.k} time_to_target_cv:{f.time_to_target_cv:.4f} '
            f'steps_to_target_cv:{f.steps_to_target_cv:.4f}')
    log(f'written: {exp_dir / "noise_floor.json"} and {paths.noise_floor_file(hw_class)}')
    return floors, exp_dir
