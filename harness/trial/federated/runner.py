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
the end. Evaluation costs no simulated time; the time to target is the
simulated time of the first server update whose model meets it, to one
update or 1 % of the time, found by bisection over the server models kept
since the last evaluation that missed (``harness.trial.federated.evaluation``),
not the next regular evaluation's. ``result.json`` records ``time_to_target_resolution_s``
(simulated seconds between the last evaluated model that missed the target, or the
start, and the first that met it), ``extra_evals`` (evaluations beyond the
regular ones) and ``eval_wall_share`` (evaluation's share of the trial's wall
time); each evals.jsonl line says which kind it is (``eval_kind``: regular,
refine, final), in training order. A trial ends at the first evaluation that meets the
target (unless ``stop_at_target`` is False), when the next event lies past the budget (a
last evaluation at the budget), at ``max_steps`` server updates, on
``TrainingCompleteError``, on a non-finite validation loss (``diverged``) or
on an exception from submission code (``failed``, traceback kept).

A checkpoint (``harness.trial.checkpoint``, two generations) is written after every evaluation
and every ``checkpoint_every_s`` wall seconds, between two events; it holds
the whole simulation (clock, event heap, in-flight clients and their computed
updates, server state), so a resumed trial produces the same events and
metrics as an uninterrupted one. The server models kept for the search are not
in it: after a resume the restored model is the window's first, and the
resolution recorded says what that cost.
"""

from __future__ import annotations

import math
import time
from typing import Any, Dict, Optional

from harness import hardware, registry, results, spec, spec_federated
from harness.errors import SubmissionError, UserInputError, call_submission
from harness.paths import resolve_data_dir
from harness.prepare import ensure_prepared
from harness.submission.federated import (
    SubmissionView,
    check_round_config,
    load_federated_submission,
    round_config_dict,
)
from harness.submission.search_space import as_hyperparameters
from harness.trial import checkpoint
from harness.trial.contention import ContentionMeter
from harness.trial.cores import available_cores
from harness.trial.config import TrialConfig
from harness.trial.federated import latency as latency_lib
from harness.trial.federated.evaluation import Evaluation, no_miss_yet
from harness.trial.federated.simulator import EVAL, Simulator
from harness.trial.federated.training import ModelBackend
from harness.trial.snapshots import SnapshotBuffer

CHECKPOINT_FORMAT = 3  # 3: the search's window start (no near-target state)


def _after_event(events_processed: int) -> None:
    """Called after every simulator event; tests replace it to simulate a crash."""


class _Trial(Evaluation):
    """Everything one run of one trial needs; built by ``_setup``."""

    def __init__(self, config: TrialConfig):
        self.config = config
        self.dir = config.trial_dir()
        self.info = registry.validate_workload_choice(
            config.workload, config.size, config.variant, config.framework
        )
        if self.info.kind != 'federated':
            raise UserInputError(
                f'Workload {config.workload!r} is {self.info.kind}, not federated: run it with '
                'harness.trial.run.run_trial.'
            )
        # Budgets are simulated seconds, the same on every machine: the shipped
        # ones apply unless the configuration overrides them (no calibration).
        override = getattr(config, 'budget_override', None)
        self.workload: spec_federated.FederatedWorkload = registry.make_workload(
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
        self.round_config: Optional[spec_federated.RoundConfig] = None
        self.backend: Optional[ModelBackend] = None
        self.sim: Optional[Simulator] = None
        # Accumulated over resumes (restored from the checkpoint).
        self.wall_time_s = 0.0
        # The machine's load on the trial's cores (wall time only: the simulated clock
        # does not depend on the machine).
        self.contention = ContentionMeter(len(available_cores()))
        self.eval_time_s = 0.0
        self.evals_written = 0
        self.preemptions = 0
        self.first_reach: Optional[Dict[str, Any]] = None
        # The search for the first server update meeting the target (evaluation.py):
        # the last evaluated miss (restored from the checkpoint), the server models
        # kept since, and the last evaluation's (version, metrics).
        self.last_miss = no_miss_yet()
        self.extra_evals = 0
        # When the current server model was made (simulated s): its clock reading. A
        # regular evaluation sees the model later, on the evaluation grid; the model met
        # the target when it was made.
        self.version_time_s = 0.0
        self.snapshots = SnapshotBuffer(
            None if config.snapshot_budget_mb is None else int(config.snapshot_budget_mb * 2**20)
        )
        self._last_eval = None

    def load_submission(self) -> None:
        """Import and check the submission, get its round configuration.

        A missing or mis-signed function, or a round configuration the workload
        cannot satisfy, is a UserInputError; an exception raised by the
        submission's own code is a SubmissionError (the trial fails)."""
        config = self.config
        try:
            self.module = load_federated_submission(self.submission_path, config.framework)
        except UserInputError:
            raise
        except Exception as e:  # the submission's module raised while importing
            raise SubmissionError('import', e) from e
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
        result = results.TrialResult.failed(str(error), clock='simulated')
        results.write_result(self.dir, result)
        return result.to_json()

    # ---- files ------------------------------------------------------------------

    def target(self) -> results.Target:
        w = self.workload
        return results.Target(metric=f'validation/{w.target_metric_name}',
                              value=float(w.validation_target_value), mode=w.target_mode)

    def identity(self) -> results.TrialIdentity:
        return results.TrialIdentity(
            **self.config.identity(), target=self.target(), kind='federated', clock='simulated',
            experiment=self.config.experiment, submission_path=str(self.submission_path),
            max_steps=self.config.max_steps, stop_at_target=self.config.stop_at_target,
            budget_factor=self.config.budget_factor,
            budget={'max_allowed_runtime_sec': self.workload.max_allowed_runtime_sec,
                    'eval_period_time_sec': self.workload.eval_period_time_sec,
                    'budget_s': self.budget_s},
            extra={
                'round_config': (
                    round_config_dict(self.round_config) if self.round_config else None
                ),
                'latency': self.latency_cfg,
                'num_clients': self.workload.num_clients,
                'client_groups': {k: int(v.sum()) for k, v in self.groups.items()},
            },
        )

    def write_header(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        existing = results.read_identity_mapping(self.dir)
        identity = self.config.identity()
        if existing is not None and any(existing.get(k) != v for k, v in identity.items()):
            raise UserInputError(
                f'{self.dir} holds a different trial (its identity differs in '
                f'{sorted(k for k, v in identity.items() if existing.get(k) != v)}); use '
                'another --experiment or --results-dir.'
            )
        results.write_identity(self.dir, self.identity())
        if results.read_meta(self.dir) is None:
            results.write_meta(self.dir, hardware.trial_meta(clock='simulated', extra={'kind': 'federated'}))

    def log(self, line: str) -> None:
        with open(self.dir / results.LOG_FILE, 'a', encoding='utf-8') as f:
            f.write(line + '\n')

    # ---- checkpoints ---------------------------------------------------------------

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
            'last_miss': self.last_miss,
            'version_time_s': self.version_time_s,
            'extra_evals': self.extra_evals,
            'contention': self.contention.state_dict(),
        }
        checkpoint.save(self.dir, self.config.framework, state)

    def load_checkpoint(self) -> bool:
        state = checkpoint.load(self.dir, self.config.framework, warn=self.log)
        if state is None:
            return False
        if state.get('format') != CHECKPOINT_FORMAT or state['identity'] != self.config.identity():
            raise UserInputError(
                f'The checkpoint in {checkpoint.checkpoint_path(self.dir).parent} belongs to '
                'another trial or TimeTrial version: delete it to start the trial afresh.'
            )
        self.sim.load_state_dict(state['sim'])
        self.backend.load_state_dict(state['backend'])
        self.wall_time_s = state['wall_time_s']
        self.eval_time_s = state['eval_time_s']
        self.evals_written = state['evals_written']
        self.preemptions = state['preemptions'] + 1
        self.first_reach = state['first_reach']
        self.last_miss = state['last_miss']
        self.version_time_s = state['version_time_s']
        self.extra_evals = state['extra_evals']
        self.contention.load_state_dict(state.get('contention', {}))
        # Evaluations after the checkpoint are redone; drop their earlier copies.
        results.truncate_evals(self.dir, self.evals_written)
        return True

    # ---- the loop -------------------------------------------------------------------------

    def _wall_now(self, wall_start: float) -> float:
        """The trial's wall seconds so far, over resumes."""
        return self.wall_time_s + (time.perf_counter() - wall_start)

    def run(self) -> Dict[str, Any]:
        wall_start = time.perf_counter()
        last_checkpoint = wall_start
        status, error = None, None
        try:
            if not self.load_checkpoint():
                self.backend.initialize()
                self.sim.start()
            else:
                # The models kept before the interruption are gone: the restored one is
                # the first of its window.
                self.snapshot_now(self._wall_now(wall_start))
            made_version = self.backend.version
            self.contention.start()
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
                    status = self._status_after_eval(
                        self.evaluate(event.time_s, self._wall_now(wall_start), 'regular')
                    )
                    if status is None:
                        self.save_checkpoint(wall_start)
                        last_checkpoint = time.perf_counter()
                elif self.backend.version != made_version:
                    # A server update made a new model: note when, and keep it for the
                    # search (off the clock; a copy of its evaluation parameters).
                    self.version_time_s, made_version = self.sim.clock_s, self.backend.version
                    self.snapshot_now(self._wall_now(wall_start))
                if status is not None:
                    break
                if (
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
            status, error = 'failed', str(e)
            results.atomic_write_text(self.dir / results.ERROR_FILE, e.traceback_text)
            self.log(f'failed: {e.phase} raised; see {results.ERROR_FILE}')
        self.contention.stop()
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
        rows = results.read_evals(self.dir)
        if (
            not rows
            or rows[-1].step != self.backend.version
            or rows[-1].submission_time_s != time_s
        ):
            metrics = self.evaluate(time_s, self._wall_now(wall_start), 'final')
            after = self._status_after_eval(metrics)
            if after == 'diverged':
                return after
        return (
            'reached' if self.first_reach is not None and status == 'budget_exhausted' else status
        )

    def write_result(self, status: str, error: Optional[str]) -> Dict[str, Any]:
        reach = self.first_reach or {}
        contention = self.contention.summary()
        result = results.TrialResult(
            status=status,
            time_to_target_s=reach.get('time_s'),
            steps_to_target=reach.get('step'),
            examples_to_target=reach.get('examples'),
            final_step=self.backend.version,
            submission_time_s=self.sim.clock_s,
            error=error,
            clock='simulated',
            wall_time_s=self.wall_time_s,
            eval_time_s=self.eval_time_s,
            preemptions=self.preemptions,
            budget_s=self.budget_s,
            num_evals=self.evals_written,
            time_to_target_resolution_s=reach.get('resolution_s'),
            extra_evals=self.extra_evals,
            cpu_share=contention['cpu_share'],
            run_queue_share=contention['run_queue_share'],
            other_cpu_share=contention['other_cpu_share'],
            load_average=contention['load_average'],
            timing_disturbed=contention['timing_disturbed'],
            eval_wall_share=(
                self.eval_time_s / self.wall_time_s if self.wall_time_s > 0 else None
            ),
            extra={
                'compute_time_s': self.backend.compute_time_s,
                'federated': {
                    'event_digest': self.sim.digest,
                    **self.sim.counts,
                    **self.group_shares(),
                },
            },
        )
        results.write_result(self.dir, result)
        return result.to_json()


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
    # An unreadable checkpoint is refused here, before anything is written.
    checkpoint.verify(config.trial_dir())
    trial = _Trial(config)
    try:
        trial.load_submission()
    except SubmissionError as e:
        trial.write_header()
        return trial.fail_early(e)
    trial.write_header()
    return trial.run()
