"""One federated trial: the simulated clock, evaluations, results and checkpoints.

``run_federated_trial(config)`` is what ``harness.trial.run.run_trial`` calls for
workloads of kind 'federated'. It writes the same files as a centralized trial
(``harness.results``), with these meanings:

- ``submission_time_s`` (and ``time_to_target_s``) are *simulated* seconds:
  the clock of ``harness.trial.federated.simulator``; budgets and evaluation periods
  are simulated seconds too. ``compute_time_s`` beside it is the real time
  spent in the submission's functions, ``wall_time_s`` the real time of the
  trial, ``eval_time_s`` the real time spent evaluating.
- ``step`` is the server version: the number of ``server_update`` calls.
- ``examples_seen`` counts the sequences behind the updates the server
  received (local steps x client batch size per report).

Evaluations happen every ``eval_period_time_sec`` simulated seconds and at
the end; a trial ends at the first evaluation that meets the target (unless
``stop_at_target`` is False), when the next event lies past the budget (a
last evaluation at the budget), at ``max_steps`` server updates, on
``TrainingCompleteError``, on a non-finite validation loss (``diverged``) or
on an exception from submission code (``failed``, traceback kept).

A checkpoint (``checkpoint/state.pkl``) is written after every evaluation
and every ``checkpoint_every_s`` wall seconds, between two events; it holds
the whole simulation (clock, event heap, in-flight clients and their computed
updates, server state), so a resumed trial produces the same events and
metrics as an uninterrupted one.
"""

from __future__ import annotations

import math
import pickle
import socket
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Dict, Optional

from harness import hardware, registry, results, spec
from harness.trial.federated import latency as latency_lib
from harness.trial.federated.training import ModelBackend, SubmissionError, call_submission
from harness.trial.federated.simulator import EVAL, Simulator
from harness.submission.federated import (
    SubmissionView,
    check_round_config,
    load_federated_submission,
    round_config_dict,
)
from harness.paths import resolve_data_dir
from harness.prepare import ensure_prepared
from harness.submission.search_space import as_hyperparameters
from harness.trial.config import TrialConfig

CHECKPOINT_FILE = 'state.pkl'
CHECKPOINT_FORMAT = 1


def _after_event(events_processed: int) -> None:
    """Called after every simulator event; tests replace it to simulate a crash."""


class _Trial:
    """Everything one run of one trial needs; built by ``_setup``."""

    def __init__(self, config: TrialConfig):
        self.config = config
        self.dir = config.trial_dir()
        self.info = registry.validate_workload_choice(
            config.workload, config.size, config.variant, config.framework
        )
        if self.info.kind != 'federated':
            raise spec.UserInputError(
                f'Workload {config.workload!r} is {self.info.kind}, not federated: run it with '
                'harness.trial.run.run_trial.'
            )
        # Budgets are simulated seconds, the same on every machine: the shipped
        # ones apply unless the configuration overrides them (no calibration).
        override = getattr(config, 'budget_override', None)
        self.workload: spec.FederatedWorkload = registry.make_workload(
            config.workload,
            config.framework,
            config.size,
            config.variant,
            budget=spec.Budget(**override) if override else None,
        )
        data_dir = str(resolve_data_dir(config.data_dir))
        ensure_prepared(self.workload, config.workload, config.variant, data_dir)
        self.workload.load_clients(data_dir)
        self.submission_path = registry.resolve_submission(config.submission)
        self.hyperparameters = as_hyperparameters(config.hparams)
        self.latency_cfg = self.workload.latency_configs[config.variant]
        self.latency = latency_lib.from_config(
            self.latency_cfg,
            self.workload.num_clients,
            config.seed,
            where=f'latency of variant {config.variant}',
        )
        self.groups = self.latency.groups()
        self.budget_s = self.workload.max_allowed_runtime_sec * config.budget_factor
        self.round_config: Optional[spec.RoundConfig] = None
        self.backend: Optional[ModelBackend] = None
        self.sim: Optional[Simulator] = None
        # Accumulated over resumes (restored from the checkpoint).
        self.wall_time_s = 0.0
        self.eval_time_s = 0.0
        self.evals_written = 0
        self.preemptions = 0
        self.first_reach: Optional[Dict[str, Any]] = None

    def load_submission(self) -> None:
        """Import and check the submission, get its round configuration.

        A missing or mis-signed function, or a round configuration the workload
        cannot satisfy, is a UserInputError; an exception raised by the
        submission's own code is a SubmissionError (the trial fails)."""
        config = self.config
        try:
            self.module = load_federated_submission(self.submission_path, config.framework)
        except spec.UserInputError:
            raise
        except Exception as e:  # the submission's module raised while importing
            raise SubmissionError('import', traceback.format_exc()) from e
        round_config = call_submission(
            'get_round_config', self.module.get_round_config, config.workload, self.hyperparameters
        )
        self.round_config = check_round_config(
            round_config, self.workload.num_clients, f'submission {config.display_submission}'
        )
        self.backend = ModelBackend(
            self.workload,
            SubmissionView(self.workload),
            self.module,
            self.hyperparameters,
            self.round_config,
            config.seed,
        )
        self.sim = Simulator(
            self.round_config,
            self.latency,
            self.workload.num_clients,
            config.seed,
            self.backend,
            self.workload.eval_period_time_sec,
        )

    def fail_early(self, error: SubmissionError) -> Dict[str, Any]:
        """The submission raised before the simulation started."""
        results.atomic_write_text(self.dir / results.ERROR_FILE, error.traceback_text)
        result = {
            'status': 'failed',
            'time_to_target_s': None,
            'steps_to_target': None,
            'examples_to_target': None,
            'final_step': 0,
            'submission_time_s': 0.0,
            'error': error.traceback_text,
            'clock': 'simulated',
        }
        results.atomic_write_json(self.dir / results.RESULT_JSON, result)
        return results.read_json(self.dir / results.RESULT_JSON)

    # ---- files ------------------------------------------------------------------

    def target(self) -> Dict[str, Any]:
        w = self.workload
        return {
            'metric': f'validation/{w.target_metric_name}',
            'value': w.validation_target_value,
            'mode': w.target_mode,
        }

    def trial_yaml(self) -> Dict[str, Any]:
        out = dict(self.config.identity())
        out.update(
            {
                'kind': 'federated',
                'clock': 'simulated',
                'experiment': self.config.experiment,
                'target': self.target(),
                'budget_s': self.budget_s,
                'eval_period_s': self.workload.eval_period_time_sec,
                'max_steps': self.config.max_steps,
                'stop_at_target': self.config.stop_at_target,
                'round_config': (
                    round_config_dict(self.round_config) if self.round_config else None
                ),
                'latency': self.latency_cfg,
                'num_clients': self.workload.num_clients,
                'client_groups': {k: int(v.sum()) for k, v in self.groups.items()},
            }
        )
        return out

    def write_header(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        existing = results.read_yaml(self.dir / results.TRIAL_YAML)
        identity = self.config.identity()
        if existing is not None and any(existing.get(k) != v for k, v in identity.items()):
            raise spec.UserInputError(
                f'{self.dir} holds a different trial (trial.yaml differs in '
                f'{sorted(k for k, v in identity.items() if existing.get(k) != v)}); use '
                'another --experiment or --results-dir.'
            )
        results.atomic_write_yaml(self.dir / results.TRIAL_YAML, self.trial_yaml())
        if not (self.dir / results.META_JSON).exists():
            fp = hardware.fingerprint()
            results.atomic_write_json(
                self.dir / results.META_JSON,
                {
                    'hardware': fp,
                    'hardware_class': hardware.hardware_class(fp),
                    'git_commit': hardware.git_commit(),
                    'host': socket.gethostname(),
                    'start_time': datetime.now(timezone.utc).isoformat(),
                    'clock': 'simulated',
                    'kind': 'federated',
                },
            )

    def log(self, line: str) -> None:
        with open(self.dir / results.LOG_FILE, 'a', encoding='utf-8') as f:
            f.write(line + '\n')

    # ---- checkpoints ---------------------------------------------------------------

    def checkpoint_path(self) -> Path:
        return self.dir / results.CHECKPOINT_DIR / CHECKPOINT_FILE

    def save_checkpoint(self, wall_start: float) -> None:
        state = {
            'format': CHECKPOINT_FORMAT,
            'identity': self.config.identity(),
            'sim': self.sim.state_dict(),
            'backend': self.backend.state_dict(),
            'wall_time_s': self.wall_time_s + (time.perf_counter() - wall_start),
            'eval_time_s': self.eval_time_s,
            'evals_written': self.evals_written,
            'preemptions': self.preemptions,
            'first_reach': self.first_reach,
        }
        results.atomic_write_bytes(self.checkpoint_path(), pickle.dumps(state, protocol=4))

    def load_checkpoint(self) -> bool:
        path = self.checkpoint_path()
        if not path.exists():
            return False
        with open(path, 'rb') as f:
            state = pickle.load(f)
        if state.get('format') != CHECKPOINT_FORMAT or state['identity'] != self.config.identity():
            raise spec.UserInputError(
                f'The checkpoint {path} belongs to another trial or '
                'TimeTrial version: delete it to start the trial afresh.'
            )
        self.sim.load_state_dict(state['sim'])
        self.backend.load_state_dict(state['backend'])
        self.wall_time_s = state['wall_time_s']
        self.eval_time_s = state['eval_time_s']
        self.evals_written = state['evals_written']
        self.preemptions = state['preemptions'] + 1
        self.first_reach = state['first_reach']
        # Evaluations after the checkpoint are redone; drop their earlier copies.
        results.truncate_evals(self.dir / results.EVALS_JSONL, self.evals_written)
        return True

    # ---- evaluation ----------------------------------------------------------------------

    def evaluate(self, time_s: float, wall_start: float) -> Dict[str, Any]:
        start = time.perf_counter()
        metrics = self.workload.eval_clients(self.backend.eval_params(), self.groups)
        self.eval_time_s += time.perf_counter() - start
        metrics.update(self.backend.take_window())
        metrics.update({f'federated/{k}': v for k, v in self.sim.counts.items()})
        row = {
            'step': self.backend.version,
            'submission_time_s': time_s,
            'wall_time_s': self.wall_time_s + (time.perf_counter() - wall_start),
            'eval_time_s': self.eval_time_s,
            'examples_seen': self.backend.examples_delivered,
            'compute_time_s': self.backend.compute_time_s,
            **metrics,
        }
        results.append_jsonl(self.dir / results.EVALS_JSONL, row)
        self.evals_written += 1
        target = self.target()
        value = metrics.get(target['metric'])
        if (
            self.first_reach is None
            and value is not None
            and math.isfinite(value)
            and self.workload.has_reached_validation_target(metrics)
        ):
            self.first_reach = {
                'time_s': time_s,
                'step': row['step'],
                'examples': row['examples_seen'],
            }
        groups = ''.join(
            f' val_accuracy_{g}:{metrics.get(f"validation/accuracy_{g}", float("nan")):.4f}'
            for g in self.groups
        )
        self.log(
            f'step:{row["step"]} sim_time:{time_s:.0f}s '
            f'val_accuracy:{metrics.get("validation/accuracy", float("nan")):.4f}{groups} '
            f'val_loss:{metrics.get("validation/loss", float("nan")):.4f} '
            f'compute_time:{self.backend.compute_time_s:.1f}s '
            f'wall_time:{row["wall_time_s"]:.1f}s'
        )
        return metrics

    # ---- the loop -------------------------------------------------------------------------

    def run(self) -> Dict[str, Any]:
        wall_start = time.perf_counter()
        last_checkpoint = wall_start
        status, error = None, None
        try:
            if not self.load_checkpoint():
                self.backend.initialize()
                self.sim.start()
            events = 0
            while status is None:
                if self.sim.next_time() > self.budget_s:
                    self.sim.advance_clock(self.budget_s)
                    status = self._final(self.budget_s, 'budget_exhausted', wall_start)
                    break
                event = self.sim.step()
                events += 1
                if event is None:  # nothing left to happen: the population is exhausted
                    status = self._final(self.sim.clock_s, 'budget_exhausted', wall_start)
                    break
                if event.kind == EVAL:
                    metrics = self.evaluate(event.time_s, wall_start)
                    status = self._status_after_eval(metrics)
                    if status is None:
                        self.save_checkpoint(wall_start)
                        last_checkpoint = time.perf_counter()
                elif (
                    self.config.max_steps is not None
                    and self.backend.version >= self.config.max_steps
                ):
                    status = self._final(self.sim.clock_s, 'budget_exhausted', wall_start)
                elif time.perf_counter() - last_checkpoint >= self.config.checkpoint_every_s:
                    self.save_checkpoint(wall_start)
                    last_checkpoint = time.perf_counter()
                _after_event(events)
        except spec.TrainingCompleteError:
            status = self._final(self.sim.clock_s, 'training_complete', wall_start)
        except SubmissionError as e:
            status, error = 'failed', e.traceback_text
            results.atomic_write_text(self.dir / results.ERROR_FILE, error)
            self.log(f'failed: {e.function} raised; see {results.ERROR_FILE}')
        self.wall_time_s += time.perf_counter() - wall_start
        return self.write_result(status, error)

    def _status_after_eval(self, metrics) -> Optional[str]:
        loss = metrics.get('validation/loss')
        if loss is None or not math.isfinite(loss):
            return 'diverged'
        if self.first_reach is not None and self.config.stop_at_target:
            return 'reached'
        return None

    def _final(self, time_s: float, status: str, wall_start: float) -> str:
        """A last evaluation at ``time_s`` unless one just happened there."""
        rows = results.read_jsonl(self.dir / results.EVALS_JSONL)
        if (
            not rows
            or rows[-1]['step'] != self.backend.version
            or rows[-1]['submission_time_s'] != time_s
        ):
            metrics = self.evaluate(time_s, wall_start)
            after = self._status_after_eval(metrics)
            if after == 'diverged':
                return after
        return (
            'reached' if self.first_reach is not None and status == 'budget_exhausted' else status
        )

    def write_result(self, status: str, error: Optional[str]) -> Dict[str, Any]:
        reach = self.first_reach or {}
        result = {
            'status': status,
            'time_to_target_s': reach.get('time_s'),
            'steps_to_target': reach.get('step'),
            'examples_to_target': reach.get('examples'),
            'final_step': self.backend.version,
            'submission_time_s': self.sim.clock_s,
            'error': error,
            'clock': 'simulated',
            'wall_time_s': self.wall_time_s,
            'eval_time_s': self.eval_time_s,
            'compute_time_s': self.backend.compute_time_s,
            'preemptions': self.preemptions,
            'federated': {'event_digest': self.sim.digest, **self.sim.counts},
        }
        results.atomic_write_json(self.dir / results.RESULT_JSON, result)
        return results.read_json(self.dir / results.RESULT_JSON)


def run_federated_trial(config: TrialConfig) -> Dict[str, Any]:
    """Run (or resume, or skip if finished) one federated trial; return result.json.

    Bad input (unknown names, a round configuration the workload cannot
    satisfy, a bad latency configuration, missing data) raises UserInputError
    before anything is written; an exception from submission code ends the
    trial as ``failed`` with its traceback, never raised.
    """
    finished = results.read_json(config.trial_dir() / results.RESULT_JSON)
    if finished is not None:
        return finished
    trial = _Trial(config)
    try:
        trial.load_submission()
    except SubmissionError as e:
        trial.write_header()
        return trial.fail_early(e)
    trial.write_header()
    return trial.run()
