"""The one-trial half of ``timetrial run``: a trial given by flags, with a live progress bar."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict

import yaml

from harness import registry
from harness.errors import UserInputError
from harness.submission import search_space
from harness.submission.framework import file_framework
from harness.trial.config import RULESETS, TrialConfig


def load_hparams(path: str) -> Dict[str, Any]:
    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text(encoding='utf-8'))
    except OSError as e:
        raise UserInputError(f'Cannot read --hparams {p}: {e.strerror}.') from None
    except yaml.YAMLError as e:
        raise UserInputError(f'--hparams {p} is not valid YAML/JSON: {e}') from None
    if not isinstance(data, dict) or not data:
        raise UserInputError(f'--hparams {p} must be a mapping of hyperparameter name -> value.')
    return data


def config_from_args(args) -> TrialConfig:
    from harness.submission.loader import search_space_path

    if args.framework is None and args.submission is not None:
        # A single .py file says its framework by what it imports.
        path = Path(args.submission).expanduser()
        if path.suffix == '.py' and path.is_file():
            args.framework, _ = file_framework(path)
    missing = [f'--{n}' for n in ('workload', 'submission', 'framework')
               if getattr(args, n) is None]
    if missing:
        raise UserInputError(f'A single trial needs {", ".join(missing)} (or give a suite file). '
                             'Example: timetrial run --workload lm --size tiny --submission adamw '
                             '--framework jax')
    registry.check_framework(args.framework)
    info = registry.validate_workload_choice(args.workload, args.size, args.variant, args.framework)
    if args.ruleset not in RULESETS:
        raise UserInputError(f'--ruleset must be one of {", ".join(RULESETS)}, got {args.ruleset!r}.')
    if args.devices is not None and args.devices <= 0:
        raise UserInputError(f'--devices must be a positive number of devices, got {args.devices}.')
    if args.threads is not None and args.threads <= 0:
        raise UserInputError(f'--threads must be a positive number of cores, got {args.threads}.')
    if args.max_steps is not None and args.max_steps <= 0:
        raise UserInputError(f'--max-steps must be a positive number of steps, got {args.max_steps}.')
    path = registry.resolve_submission(args.submission)
    hparams = None
    if args.ruleset == 'external':
        if args.hparams:
            hparams = load_hparams(args.hparams)
        else:
            space_file = args.tuning_search_space or search_space_path(path)
            if space_file is None:
                raise UserInputError(
                    f'Submission {path} has no search space: give --tuning-search-space FILE or '
                    '--hparams FILE, or run it under --ruleset self.')
            hparams = search_space.sample(search_space.load(space_file), args.seed,
                                          args.trial_index)
    return TrialConfig(
        workload=args.workload, framework=args.framework, submission=str(path),
        size=args.size or info.sizes[0], variant=args.variant, ruleset=args.ruleset,
        hparams=hparams, seed=args.seed, study=0, trial=args.trial_index,
        experiment=args.experiment or 'default', results_dir=args.results_dir or 'results',
        data_dir=args.data_dir,
        max_steps=args.max_steps, stop_at_target=not args.no_stop_at_target,
        budget_factor=1.5 if args.ruleset == 'self' else 1.0,
        checkpoint_every_s=60.0 if args.checkpoint_every_s is None else args.checkpoint_every_s,
        submission_name=registry.submission_name(path), devices=args.devices,
        threads=args.threads)


def run_single_trial(args) -> int:
    from rich.console import Console

    from harness.cli.progress import TrialProgress
    from harness.prepare import ensure_prepared
    from harness.trial.run import build_workload, run_trial

    console = Console(stderr=True)
    config = config_from_args(args)
    from harness.submission.loader import check_submission

    problems = check_submission(config.submission, [config.framework])
    if problems:
        raise UserInputError(f'Submission {config.submission} has {len(problems)} problem(s):\n  - '
                             + '\n  - '.join(problems))
    ensure_prepared(build_workload(config), config.workload, config.variant, config.data_dir,
                    log=lambda m: console.print(m))
    with TrialProgress(console, label=f'{config.display_submission} '
                       f'{config.workload_dirname}') as progress:
        result = run_trial(config, resume=args.resume, on_event=progress.on_event)
    print_result(console, config, result)
    return 0


def print_result(console, config: TrialConfig, result: Dict[str, Any]) -> None:
    # Plain greppable lines: never wrapped at the terminal's width, no markup read in paths
    # or in the submission's error message.
    plain = dict(soft_wrap=True, markup=False, highlight=False)
    ttt = result.get('time_to_target_s')
    console.print(
        f'status:{result["status"]} time_to_target_s:{ttt if ttt is None else round(ttt, 2)} '
        f'steps:{result.get("final_step")} submission_time_s:'
        f'{round(result.get("submission_time_s") or 0.0, 2)} dir:{config.trial_dir()}', **plain)
    if result.get('error'):
        # One line (`phase: Type: message`); the whole traceback is in error.txt.
        first = (str(result['error']).strip().splitlines() or [''])[0]
        console.print(f'error: {first} (traceback: {config.trial_dir() / "error.txt"})', **plain)
