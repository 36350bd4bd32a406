"""The timed training loop of one trial, under the timing rules of docs/architecture.md.

The clock is the submission's own time on the device. Before every clock read
the device is synchronized (``backend.sync``: ``block_until_ready`` /
``torch.cuda.synchronize``), so asynchronous dispatch never hides work.

On the clock: ``init_optimizer_state``, ``data_selection`` (drawing batches
included), ``update_params``, ``prepare_for_eval``, first-call compilation
(it happens inside those calls) and every use of an auxiliary model made from
them. Off the clock, each accumulated and logged on its own: dataset and model
construction, evaluation, logging, checkpointing.

Evaluation runs when ``eval_period_time_sec`` of submission time has passed
since the last one (AlgoPerf's rule; there is no evaluation at step 0) and at
the end. A trial stops at the first evaluation that meets the validation
target (unless ``stop_at_target`` is off), when the budget
(``max_allowed_runtime_sec`` × ``budget_factor``) is used up — checked after
every step, not only at evaluations —, at ``max_steps``, on
``TrainingCompleteError``, on a non-finite loss (``diverged``: a loss the
submission reports through ``workload.metrics_logger`` is checked every step,
the evaluation losses at every evaluation), or on an exception from submission
code (``failed``, traceback kept). A target met at an evaluation whose
submission time is past the budget does not count.

Resuming restores params, optimizer and model state, the data-iterator
position and every accumulated time from the latest checkpoint; per-step RNG
keys are ``fold_in(seed key, step)``, so the resumed trajectory is the one an
uninterrupted run takes. Steps redone after a resume cost submission time
again only from the checkpoint's accumulated time: nothing is counted twice. A
resumed process pays compilation again, on the clock, as a preempted run
really does.
"""

from __future__ import annotations

import dataclasses
import time
from types import MappingProxyType
from typing import Any, Callable, Dict, List, Optional, Tuple

from harness import results
from harness.errors import SubmissionError, call_submission
from harness.spec import TrainingCompleteError
from harness.submission.search_space import as_hyperparameters
from harness.submission.view import (
    MetricsLogger,
    SubmissionWorkload,
    TrainingStream,
    call_timer,
    drawn_since_last,
    load_stream_state,
    stream_state,
)
from harness.trial import checkpoint
from harness.trial.evaluation import Evaluation
from harness.trial.contention import ContentionMeter
from harness.trial.cores import available_cores
from harness.trial.snapshots import SnapshotBuffer, default_budget_bytes

Clock = Callable[[], float]


@dataclasses.dataclass
class Counters:
    """Everything the loop accumulates; saved in every checkpoint."""

    step: int = 0
    examples_seen: int = 0
    submission_time_s: float = 0.0
    eval_time_s: float = 0.0
    checkpoint_time_s: float = 0.0
    logging_time_s: float = 0.0
    #: Wall time of earlier sessions of this trial (before the last resume).
    wall_time_prior_s: float = 0.0
    last_eval_submission_time_s: float = 0.0
    num_evals: int = 0
    resumes: int = 0
    #: JAX compilations inside update/data selection after the second step.
    recompiles_after_warmup: int = 0
    eval_results: List[Any] = dataclasses.field(default_factory=list)
    reached: Optional[Dict[str, Any]] = None
    #: The last evaluated point known to miss the target (a window's start); the
    #: start of training before any evaluation.
    last_miss: Dict[str, Any] = dataclasses.field(
        default_factory=lambda: {'step': 0, 'time_s': 0.0})
    #: Evaluations of snapshots beyond the regular ones (harness.trial.evaluation).
    extra_evals: int = 0
    #: Wall seconds spent copying snapshots (off the clock).
    snapshot_time_s: float = 0.0
    #: harness.trial.contention.ContentionMeter's sums over the training windows.
    contention: Dict[str, Any] = dataclasses.field(default_factory=dict)


class TrialRunner(Evaluation):
    """One trial's timed loop. Evaluation (regular, and the refinement of the first hit)
    is in ``harness.trial.evaluation``."""

    def __init__(self, *, config, workload, submission, backend, trial_dir, data_dir: str,
                 clock: Clock = time.perf_counter, wall_clock: Clock = time.monotonic,
                 on_event: Optional[Callable[[str, Dict[str, Any]], None]] = None,
                 log_file=None, snapshot_budget_bytes: Optional[int] = None):
        self.config = config
        self.workload = workload
        self.sub = submission
        self.backend = backend
        self.trial_dir = trial_dir
        self.data_dir = data_dir
        self.clock = clock
        self.wall_clock = wall_clock
        self.on_event = on_event or (lambda kind, info: None)
        self.log_file = log_file
        self.metrics_logger = MetricsLogger()
        workload.attach_metrics_logger(self.metrics_logger)
        # The view times the teacher's calls with the runner's own clock and device sync.
        self.view = SubmissionWorkload(workload, sync=backend.sync, clock=clock)
        self.teacher_timer = call_timer(self.view) if getattr(
            workload, 'teacher_calls', ()) else None
        self.hparams = as_hyperparameters(config.hparams)
        self.budget_s = workload.max_allowed_runtime_sec * config.budget_factor
        self.c = Counters()
        self.snapshots = SnapshotBuffer(
            snapshot_budget_bytes if snapshot_budget_bytes is not None
            else default_budget_bytes() // backend.world_size)
        self.status: Optional[str] = None
        self.error: Optional[str] = None
        self.error_traceback: Optional[str] = None

    # ---- small helpers -------------------------------------------------------

    def log(self, **fields) -> None:
        """One greppable key:value line in trial.log (off the clock)."""
        if self.log_file is None:
            return
        t0 = self.clock()
        parts = []
        for k, v in fields.items():
            if isinstance(v, float):
                v = f'{v:.6g}'
            parts.append(f'{k}:{v}')
        self.log_file.write(' '.join(parts) + '\n')
        self.log_file.flush()
        self.c.logging_time_s += self.clock() - t0

    def _agreed_time(self, t0: float) -> float:
        """Seconds since ``t0`` on this process's clock; under DDP the maximum over ranks."""
        return self.backend.agree_max([self.clock() - t0])[0]

    def _wall_time_s(self) -> float:
        return self.c.wall_time_prior_s + (self.wall_clock() - self._session_wall_start)

    def _train_state(self) -> MappingProxyType:
        return MappingProxyType({
            'accumulated_submission_time': self.c.submission_time_s,
            'accumulated_eval_time': self.c.eval_time_s,
            'accumulated_logging_time': self.c.logging_time_s,
            'last_eval_time': self.c.last_eval_submission_time_s,
            'is_time_remaining': self.c.submission_time_s < self.budget_s,
            'validation_goal_reached': self.c.reached is not None,
            'training_complete': False,
            'global_step': self.c.step,
            'eval_results': tuple(self.c.eval_results),
        })

    # ---- setup -----------------------------------------------------------------

    def setup(self, saved: Optional[Dict[str, Any]]) -> None:
        """Build data and model (off the clock); init or restore the optimizer."""
        seed = self.config.seed
        self.base_rng = self.backend.initial_rng(seed)
        init_rng, opt_rng, _ = self.backend.init_rngs(self.base_rng)
        # The data order depends on the seed alone, identically in both frameworks.
        data_rng = self.backend.initial_rng((seed * 1_000_003 + 17) % 2**31)
        self.batch_size, self.batch_size_note = batch_size_of(self.workload, self.sub)
        self.input_queue = TrainingStream(self.workload._build_input_queue(
            data_rng, 'train', self.data_dir, self.batch_size))
        params, model_state = self.workload.init_model_fn(init_rng)
        self.param_count = self.backend.param_count(params)
        if saved is not None:
            # Restoring is checkpoint work: off the clock (the original init was timed).
            params = self.backend.params_from_host(saved['params'], params)
            model_state = self.backend.state_from_host(saved['model_state'], model_state)
        # DDP wraps the model here (a no-op in one process): construction, off the clock.
        params = self.backend.prepare_model(params)
        if saved is None:
            t0 = self.clock()
            opt_state = call_submission(
                'init_optimizer_state', self.sub.init_optimizer_state, workload=self.view,
                model_params=params, model_state=model_state, hyperparameters=self.hparams,
                rng=opt_rng)
            self.backend.sync(params, opt_state, model_state)
            self.c.submission_time_s += self._agreed_time(t0)
        else:
            opt_state = call_submission(
                'init_optimizer_state', self.sub.init_optimizer_state, workload=self.view,
                model_params=params, model_state=model_state, hyperparameters=self.hparams,
                rng=opt_rng)
            opt_state = self.backend.state_from_host(saved['optimizer_state'], opt_state)
            load_stream_state(self.input_queue, saved['data'])
            if saved.get('workload_accounting') is not None:
                self.workload.restore_teacher_accounting(saved['workload_accounting'])
            self.c = Counters(**saved['counters'])
            self.c.resumes += 1
            # A trial killed after its final checkpoint but before result.json ended
            # already: its outcome is in the checkpoint, and nothing is run again.
            outcome = saved.get('outcome') or {}
            self.status, self.error = outcome.get('status'), outcome.get('error')
        self.params, self.model_state, self.opt_state = params, model_state, opt_state

    # ---- the loop ------------------------------------------------------------

    def begin(self, saved: Optional[Dict[str, Any]] = None) -> None:
        """Start a session: build data and model, init or restore the optimizer.

        Raises SubmissionError if submission code fails here.
        """
        self._session_wall_start = self.wall_clock()
        self._last_checkpoint_wall = self._session_wall_start
        # A resumed process compiles again: count recompiles per process session.
        self._session_steps = 0
        self.setup(saved)
        self.contention = ContentionMeter(len(available_cores()), wall_clock=self.wall_clock)
        self.contention.load_state_dict(self.c.contention)
        self.contention.start()
        if saved is None:
            # The untrained model (after init_optimizer_state) starts the first window.
            self.c.last_miss = {'step': 0, 'time_s': self.c.submission_time_s}
        elif self.status is None and self.c.reached is None:
            # The restored state is the only snapshot of this window's part before the
            # checkpoint: a first hit before it is found with that coarser resolution.
            self.snapshots.add(self._snapshot_now(self.sub.prepare_for_eval is not None))
        self.log(event='start' if saved is None else 'resume', step=self.c.step,
                 batch_size=self.batch_size, params=self.param_count, budget_s=self.budget_s,
                 submission_time_s=self.c.submission_time_s, resumes=self.c.resumes)
        if self.batch_size_note:
            self.log(event='batch_size', note=repr(self.batch_size_note))

    def run(self, saved: Optional[Dict[str, Any]] = None) -> results.TrialResult:
        try:
            self.begin(saved)
            if self.status is None:
                self._loop()
                # The final state lands in the checkpoint too: the latest checkpoint
                # of a finished trial holds its final parameters, and its outcome.
                self._checkpoint()
        except SubmissionError as e:
            self.status = 'failed'
            self.error = str(e)
            self.error_traceback = e.traceback_text
            self.log(event='failed', step=self.c.step, error=repr(str(e)))
        return self._result()

    def _loop(self) -> None:
        while not self.train_one_step():
            pass

    def train_one_step(self) -> bool:
        """One timed step plus its off-the-clock bookkeeping; True when the trial ends."""
        ds_rng, update_rng, _ = self.backend.step_rngs(self.base_rng, self.c.step)
        max_steps = self.config.max_steps
        if max_steps is not None and self.c.step >= max_steps:
            self._final_eval('budget_exhausted')
            return True
        complete = False
        compiles_before = self.backend.compile_count()
        # DDP: no rank starts its clock while another still does off-the-clock work.
        self.backend.barrier()
        t0 = self.clock()
        try:
            batch = call_submission(
                'data_selection', self.sub.data_selection, workload=self.view,
                input_queue=self.input_queue, optimizer_state=self.opt_state,
                current_param_container=self.params, model_state=self.model_state,
                hyperparameters=self.hparams, global_step=self.c.step, rng=ds_rng)
            kwargs = dict(
                workload=self.view, current_param_container=self.params,
                current_params_types=self.workload.model_params_types,
                model_state=self.model_state, hyperparameters=self.hparams, batch=batch,
                loss_type=self.workload.loss_type, optimizer_state=self.opt_state,
                eval_results=list(self.c.eval_results), global_step=self.c.step,
                rng=update_rng)
            if self.sub.accepts_train_state:
                kwargs['train_state'] = self._train_state()
            out = call_submission('update_params', self.sub.update_params, **kwargs)
            self.opt_state, self.params, self.model_state = out
        except TrainingCompleteError:
            complete = True
        self.backend.sync(self.params, self.opt_state, self.model_state)
        elapsed_s = self.clock() - t0
        # Off the clock from here on.
        records = self.metrics_logger.drain()
        bad = self.metrics_logger.non_finite_loss()
        # Under DDP each rank adds the slowest rank's step time and all take the same
        # decisions; in one process this returns its arguments.
        elapsed_s, any_complete, any_bad = self.backend.agree_max(
            [elapsed_s, float(complete), float(bad is not None)])
        self.c.submission_time_s += elapsed_s
        for r in records:
            self.log(**r)
        if any_complete:
            self.log(event='training_complete', step=self.c.step)
            self._final_eval('training_complete')
            return True
        self.c.step += 1
        # Examples drawn from the training stream this step, a pool a submission selects
        # from included; under DDP a batch is this rank's share of the global batch.
        self.c.examples_seen += drawn_since_last(self.input_queue) * self.backend.world_size
        compiles = self.backend.compile_count() - compiles_before
        self._session_steps += 1
        if compiles and self._session_steps > 2:
            # Compiling after the first steps usually means shapes or static
            # arguments change every step: slow, and on the clock.
            self.c.recompiles_after_warmup += compiles
            self.log(event='recompile', step=self.c.step, compiles=compiles)

        step_info = {'step': self.c.step, 'submission_time_s': self.c.submission_time_s,
                     'budget_s': self.budget_s, **self.metrics_logger.last}
        self.on_event('step', step_info)
        if any_bad:
            bad = bad or 'loss (on another DDP rank)'
            self.status = 'diverged'
            self.error = f'non-finite {bad} reported at step {self.c.step}'
            self.log(event='diverged', step=self.c.step, metric=bad)
            return True
        if self.c.submission_time_s >= self.budget_s:
            self._final_eval('budget_exhausted')
            return True
        due = (self.c.submission_time_s - self.c.last_eval_submission_time_s
               >= self.workload.eval_period_time_sec)
        if due:
            if self._evaluate():
                return True
            self._checkpoint()
            return False
        self._maybe_snapshot()
        if self.wall_clock() - self._last_checkpoint_wall >= self.config.checkpoint_every_s:
            self._checkpoint()
        return False

    # ---- checkpoints -----------------------------------------------------------

    def _checkpoint(self) -> None:
        if not self.backend.is_writer:
            return  # DDP ranks hold the same state: the writer saves it
        t0 = self.clock()
        wall_now = self._wall_time_s()
        counters = dataclasses.asdict(self.c)
        counters['wall_time_prior_s'] = wall_now
        counters['contention'] = self.contention.state_dict()
        checkpoint.save(self.trial_dir, self.backend.name, {
            'params': self.backend.params_to_host(self.params),
            'model_state': self.backend.state_to_host(self.model_state),
            'optimizer_state': self.backend.state_to_host(self.opt_state),
            'data': stream_state(self.input_queue),
            'counters': counters,
            # Set in the final checkpoint only: how the trial ended.
            'outcome': ({'status': self.status, 'error': self.error}
                        if self.status is not None else None),
            # Auxiliary-model counters (teacher time, FLOPs) survive a resume too.
            'workload_accounting': (self.workload.teacher_accounting()
                                    if hasattr(self.workload, 'teacher_accounting') else None),
        })
        self._last_checkpoint_wall = self.wall_clock()
        self.c.checkpoint_time_s += self.clock() - t0

    # ---- the result --------------------------------------------------------------

    def _result(self) -> results.TrialResult:
        reached = self.c.reached if self.status == 'reached' or self.c.reached else None
        flops = None
        if reached is not None:
            per_example = self.workload.flops_per_example()
            if per_example:
                flops = per_example * reached['examples']
        teacher_time_s = self._teacher_time_s()
        wall_time_s = self._wall_time_s()
        contention = self.contention.summary() if hasattr(self, 'contention') else {}
        return results.TrialResult(
            status=self.status,
            time_to_target_s=reached['time_s'] if reached else None,
            time_to_target_resolution_s=reached.get('resolution_s') if reached else None,
            extra_evals=self.c.extra_evals,
            steps_to_target=reached['step'] if reached else None,
            examples_to_target=reached['examples'] if reached else None,
            tokens_to_target=(reached['examples'] * self.workload.tokens_per_example
                              if reached else None),
            flops_to_target=flops,
            final_step=self.c.step,
            examples_seen=self.c.examples_seen,
            submission_time_s=self.c.submission_time_s,
            eval_time_s=self.c.eval_time_s,
            checkpoint_time_s=self.c.checkpoint_time_s,
            logging_time_s=self.c.logging_time_s,
            wall_time_s=wall_time_s,
            eval_wall_share=(self.c.eval_time_s / wall_time_s) if wall_time_s > 0 else None,
            cpu_share=contention.get('cpu_share'),
            run_queue_share=contention.get('run_queue_share'),
            other_cpu_share=contention.get('other_cpu_share'),
            load_average=contention.get('load_average'),
            timing_disturbed=contention.get('timing_disturbed'),
            budget_s=self.budget_s,
            num_evals=self.c.num_evals,
            resumes=self.c.resumes,
            recompiles_after_warmup=self.c.recompiles_after_warmup,
            global_batch_size=getattr(self, 'batch_size', None),
            batch_size_note=getattr(self, 'batch_size_note', None),
            param_count=getattr(self, 'param_count', None),
            error=self.error,
            teacher_time_s=teacher_time_s,
            reported_at_target=reached.get('reported') if reached else None,
            final_metrics=self.c.eval_results[-1][1] if self.c.eval_results else None,
        )


def batch_size_of(workload, submission) -> Tuple[int, Optional[str]]:
    """The submission's global batch size, and a note when it is the workload's default.

    ``get_batch_size(name)`` returns a positive int, or None for "the workload's
    default". A ``ValueError`` means the same: it is how AlgoPerf's submissions
    say they have no batch size for a workload name (``Unsupported workload
    name``), and they run here unmodified; the note says so in trial.log and
    result.json. Any other exception is a bug in the submission: the trial fails
    with its traceback (SubmissionError).
    """
    default = workload.default_batch_size
    try:
        size = submission.get_batch_size(workload.name)
    except ValueError as e:
        return default, (f'get_batch_size({workload.name!r}) raised ValueError ({e}): '
                         f'the workload default {default} is used')
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as e:  # noqa: BLE001 — submission code: the trial fails with it
        raise SubmissionError('get_batch_size', e) from e
    if size is None:
        return default, f'get_batch_size({workload.name!r}) returned None: the workload default'
    if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
        raise SubmissionError('get_batch_size', ValueError(
            f'get_batch_size({workload.name!r}) returned {size!r}; it must return a positive '
            'int, or None for the workload\'s default batch size'))
    return size, None
