"""The results files of one trial: their names, typed records, one reader/writer pair.

This module is the results contract (docs/architecture.md, "Results layout").
Both trial runners write through it, scoring and every tool that reads results
read through it, and the tests' stand-ins write through it too, so a key can
only change here. It imports the standard library only (PyYAML lazily, to
read the ``trial.yaml`` of results written before ``trial.json``).

    <results>/<experiment>/<submission>/<workload>[-<variant>]_<framework>/study_<s>/trial_<t>/
      trial.json     TrialIdentity: what the trial is (written once, at its start)
      meta.json      TrialMeta: hardware, versions, host, start time, sessions
      evals.jsonl    EvalRecord, one JSON object per line, appended at every evaluation
      result.json    TrialResult: written once, atomically, when the trial ends
      trial.log      greppable ``key:value`` lines;  error.txt  the traceback of a failure
      checkpoint/    the latest two checkpoints (harness.trial.checkpoint)

Writes are append-only (evals.jsonl, one ``write`` per line, fsync'd) or
atomic (temp file + fsync + rename): a killed process never leaves a
half-written file that a reader would trust; a last line of evals.jsonl
without its newline is a write in progress and is skipped.

Readers are tolerant of files written by other versions: a key a record does
not declare lands in its ``extra`` mapping (and is written back out as is), a
declared optional key that is missing reads as its default.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional

# ---- file names -------------------------------------------------------------------------

TRIAL_JSON = 'trial.json'
#: Results written before trial.json held the identity in YAML; still read.
LEGACY_TRIAL_YAML = 'trial.yaml'
META_JSON = 'meta.json'
EVALS_JSONL = 'evals.jsonl'
RESULT_JSON = 'result.json'
CHECKPOINT_DIR = 'checkpoint'
LOG_FILE = 'trial.log'
ERROR_FILE = 'error.txt'
#: CTR: the validation predictions at the end of the trial (replica difference).
PREDICTIONS_NPY = 'validation_predictions.npy'
#: Written by the launcher beside a trial's own files (harness.launch.records).
PREEMPTIONS_JSON = 'preemptions.json'
JOB_JSON = 'job.json'
JOB_FAILURE_JSON = 'job_failure.json'

STATUSES = ('reached', 'budget_exhausted', 'diverged', 'failed', 'training_complete')
#: A run told to go on past its target ends with one of these and a time_to_target_s:
#: it reached the target all the same (TrialResult.reached).
STATUSES_PAST_TARGET = ('budget_exhausted', 'training_complete')
TARGET_MODES = ('min', 'max')
RULESETS = ('external', 'self')
#: ``device``: seconds of the submission's own time on the device (centralized
#: workloads); ``simulated``: seconds on a federated workload's simulated clock.
CLOCKS = ('device', 'simulated')


# ---- records ----------------------------------------------------------------------------

class _Record:
    """JSON mapping <-> dataclass, keeping keys the dataclass does not declare in ``extra``."""

    extra: Dict[str, Any]

    def to_json(self) -> Dict[str, Any]:
        out: Dict[str, Any] = {}
        for f in dataclasses.fields(self):
            if f.name == 'extra':
                continue
            value = getattr(self, f.name)
            out[f.name] = value.to_json() if isinstance(value, _Record) else value
        out.update(self.extra)
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]):
        names = {f.name for f in dataclasses.fields(cls)} - {'extra'}
        known = {k: v for k, v in data.items() if k in names}
        missing = [f.name for f in dataclasses.fields(cls)
                   if f.name in names and f.name not in known
                   and f.default is dataclasses.MISSING
                   and f.default_factory is dataclasses.MISSING]
        if missing:
            raise ValueError(f'missing key(s) {", ".join(missing)}')
        record = cls(**known, extra={k: v for k, v in data.items() if k not in names})
        record._convert()
        return record

    def _convert(self) -> None:
        """Turn nested mappings into their record types (after from_json)."""


@dataclasses.dataclass
class Target(_Record):
    """The validation target a trial is timed to: ``metric`` reaches ``value``."""

    metric: str                      # 'validation/loss'
    value: float
    mode: str                        # 'min': value <= target; 'max': value >= target
    extra: Dict[str, Any] = dataclasses.field(default_factory=dict)

    def met_by(self, value: Optional[float]) -> bool:
        if value is None or not math.isfinite(value):
            return False
        return value <= self.value if self.mode == 'min' else value >= self.value


@dataclasses.dataclass
class TrialIdentity(_Record):
    """``trial.json``: what the trial is. A resumed trial must match ``key()``."""

    workload: str                    # the base workload's name
    variant: Optional[str]
    size: str
    framework: str                   # 'jax' | 'pytorch'
    submission: str                  # the name results are filed under
    ruleset: str                     # 'external' | 'self'
    study: int
    trial: int
    hparams: Optional[Dict[str, Any]]  # None under self-tuning
    seed: int
    target: Target
    kind: str = 'centralized'        # 'centralized' | 'federated'
    clock: str = 'device'            # see CLOCKS
    experiment: Optional[str] = None
    submission_path: Optional[str] = None
    max_steps: Optional[int] = None
    stop_at_target: bool = True
    budget_factor: float = 1.0
    #: The workload's budget as the trial saw it (seconds of its clock).
    budget: Optional[Dict[str, Any]] = None
    #: Workload attributes the submission needs beyond AlgoPerf's API (its
    #: REQUIRES_WORKLOAD_API, e.g. a teacher), and those the workload offers: scoring
    #: counts a workload that lacks what an entrant needs as not applicable to it.
    requires: List[str] = dataclasses.field(default_factory=list)
    offers: List[str] = dataclasses.field(default_factory=list)
    extra: Dict[str, Any] = dataclasses.field(default_factory=dict)

    KEY_FIELDS = ('workload', 'variant', 'size', 'framework', 'submission', 'ruleset', 'study',
                  'trial', 'hparams', 'seed')

    def key(self) -> Dict[str, Any]:
        return {k: getattr(self, k) for k in self.KEY_FIELDS}

    def _convert(self) -> None:
        if isinstance(self.target, Mapping):
            self.target = Target.from_json(self.target)


@dataclasses.dataclass
class TrialMeta(_Record):
    """``meta.json``: where and with what the trial ran."""

    hardware: Dict[str, Any]         # the fingerprint (harness.hardware)
    hardware_class: str              # e.g. 'cpu-amd-epyc-2c'
    git_commit: Optional[str] = None
    host: Optional[str] = None
    start_time: Optional[str] = None  # ISO 8601, UTC
    versions: Dict[str, Any] = dataclasses.field(default_factory=dict)
    sessions: int = 1                # processes that ran the trial (1 + resumes)
    clock: str = 'device'
    #: One-off costs the report shows beside the times, and where they ended: lm_slm's
    #: teacher (``Workload.teacher_training_cost``): ``time_s``, ``flops`` (off the clock),
    #: ``steps``, ``tokens``, ``epochs``, ``max_epochs``, ``split``, ``validation_loss``,
    #: ``target``, ``margin_nats`` (loss - target), ``name``, ``role``, ``device``, ...
    teacher_training_cost: Optional[Dict[str, Any]] = None
    resumed_on_other_hardware: List[str] = dataclasses.field(default_factory=list)
    extra: Dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class EvalRecord(_Record):
    """One line of ``evals.jsonl``. Metrics are flat ``split/name`` keys in the file."""

    step: int
    submission_time_s: float         # the clock's reading at this step
    wall_time_s: float
    eval_time_s: float               # evaluation time so far, this one included
    examples_seen: int
    metrics: Dict[str, float] = dataclasses.field(default_factory=dict)
    eval_duration_s: Optional[float] = None
    tokens_seen: Optional[int] = None
    checkpoint_time_s: Optional[float] = None
    #: Seconds of teacher calls so far, timed by the harness's workload view (on the clock).
    teacher_time_s: Optional[float] = None
    #: None: a regular evaluation; 'refine': a probe of a snapshot between two regular
    #: ones, searching the first point that meets the target (written before the
    #: regular evaluation that found it met, so the file is in training order).
    kind: Optional[str] = None
    #: The latest value of each metric the submission reported through
    #: ``workload.metrics_logger`` as of this evaluation (e.g. salt's ``kd_stage``, ``kd_weight``).
    reported_metrics: Optional[Dict[str, float]] = None
    extra: Dict[str, Any] = dataclasses.field(default_factory=dict)

    def to_json(self) -> Dict[str, Any]:
        out = {k: v for k, v in super().to_json().items() if k != 'metrics' and v is not None}
        out.update(self.metrics)
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> 'EvalRecord':
        metrics = {k: v for k, v in data.items() if '/' in k}
        nested = data.get('metrics')
        if isinstance(nested, Mapping):
            metrics.update(nested)
        rest = {k: v for k, v in data.items() if '/' not in k and k != 'metrics'}
        record = super().from_json(rest)
        record.metrics = metrics
        return record


#: The keys every evals.jsonl line has, in this order (scoring's fixed columns).
EVAL_REQUIRED_KEYS = ('step', 'submission_time_s', 'wall_time_s', 'eval_time_s', 'examples_seen')


@dataclasses.dataclass
class TrialResult(_Record):
    """``result.json``: how the trial ended. Times are seconds of the trial's clock."""

    status: str                      # see STATUSES
    time_to_target_s: Optional[float]
    steps_to_target: Optional[int]
    examples_to_target: Optional[int]
    final_step: int
    submission_time_s: float
    error: Optional[str]             # the first line; error.txt has the traceback
    tokens_to_target: Optional[int] = None
    flops_to_target: Optional[float] = None
    examples_seen: Optional[int] = None
    eval_time_s: Optional[float] = None
    checkpoint_time_s: Optional[float] = None
    logging_time_s: Optional[float] = None
    wall_time_s: Optional[float] = None
    budget_s: Optional[float] = None
    num_evals: Optional[int] = None
    time_to_target_resolution_s: Optional[float] = None
    extra_evals: Optional[int] = None
    eval_wall_share: Optional[float] = None
    resumes: int = 0
    preemptions: int = 0
    recompiles_after_warmup: Optional[int] = None
    global_batch_size: Optional[int] = None
    batch_size_note: Optional[str] = None
    param_count: Optional[int] = None
    #: Seconds of teacher calls in the whole trial, timed by the harness's workload view.
    teacher_time_s: Optional[float] = None
    #: ``reported_metrics`` of the evaluation that met the target (e.g. the SALT stage then).
    reported_at_target: Optional[Dict[str, float]] = None
    final_metrics: Optional[Dict[str, float]] = None
    hardware_class: Optional[str] = None
    #: Clock seconds between the time to target and the last evaluated point before it
    #: that missed the target: the time to target is known to within this.
    time_to_target_resolution_s: Optional[float] = None
    #: Evaluations beyond the regular ones (probes of snapshots) that found it.
    extra_evals: Optional[int] = None
    #: Evaluation's share of the trial's wall time (evaluation is off the clock).
    eval_wall_share: Optional[float] = None
    #: Contention while the trial trained (see harness.trial.contention).
    cpu_share: Optional[float] = None
    run_queue_share: Optional[float] = None
    other_cpu_share: Optional[float] = None
    load_average: Optional[float] = None
    timing_disturbed: Optional[bool] = None
    #: CPU cores the trial trained on (its own: harness.trial.cores).
    threads: Optional[int] = None
    #: PyTorch DDP: the processes the trial ran as (None: one process).
    ddp_processes: Optional[int] = None
    clock: str = 'device'
    extra: Dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def reached(self) -> bool:
        """Counts as reaching the target (a run told to go on past it included)."""
        if self.status == 'reached':
            return True
        return self.status in STATUSES_PAST_TARGET and self.time_to_target_s is not None

    @classmethod
    def failed(cls, error: str, **fields: Any) -> 'TrialResult':
        """A trial that ended before training could start, or crashed in the harness."""
        return cls(status='failed', time_to_target_s=None, steps_to_target=None,
                   examples_to_target=None, final_step=0, submission_time_s=0.0, error=error,
                   **fields)


@dataclasses.dataclass
class NoiseFloor(_Record):
    """One measured noise floor: K repeats of one configuration (``timetrial noise``).

    ``seeds='same'`` repeats one seed (machine noise alone: timing jitter, and
    nondeterminism in the kernels); ``'different'`` draws K seeds (data order and
    initialization too). Coefficients of variation are sample standard deviation
    over mean of the time (and steps) to target of the repeats that reached it.
    """

    hardware_class: str
    workload: str
    size: str
    variant: Optional[str]
    framework: str
    submission: str
    seeds: str                       # 'same' | 'different'
    k: int                           # repeats run
    n_reached: int                   # repeats that reached the target
    time_to_target_cv: Optional[float]
    steps_to_target_cv: Optional[float]
    times_to_target_s: List[Optional[float]] = dataclasses.field(default_factory=list)
    steps_to_target: List[Optional[int]] = dataclasses.field(default_factory=list)
    measured_at: Optional[str] = None   # ISO 8601, UTC
    command: Optional[str] = None       # what reproduces it
    extra: Dict[str, Any] = dataclasses.field(default_factory=dict)

    def key(self) -> tuple:
        return (self.hardware_class, self.workload, self.size, self.variant, self.framework,
                self.submission, self.seeds)


def required_keys(record_type) -> tuple:
    """The keys a record's file must hold (its fields without a default), in order."""
    return tuple(f.name for f in dataclasses.fields(record_type)
                 if f.name != 'extra' and f.default is dataclasses.MISSING
                 and f.default_factory is dataclasses.MISSING)


#: ``NoiseFloor.seeds``: one seed repeated, or a seed per repeat.
NOISE_FLOOR_SEEDS = ('same', 'different')


# ---- writing ------------------------------------------------------------------------------

def _json_default(obj):
    if hasattr(obj, 'item'):       # numpy / jax / torch scalars
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, _Record):
        return obj.to_json()
    raise TypeError(f'not JSON serializable: {type(obj).__name__}')


def _clean(value):
    """JSON has no NaN/inf: write them as null (readers take null as missing)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f'.{path.name}.', suffix='.tmp')
    try:
        with os.fdopen(fd, 'wb') as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode('utf-8'))


def atomic_write_json(path: Path, obj: Any) -> None:
    if isinstance(obj, _Record):
        obj = obj.to_json()
    atomic_write_text(path, json.dumps(_clean(obj), indent=2, sort_keys=True,
                                       default=_json_default) + '\n')


def append_jsonl(path: Path, obj: Any) -> None:
    """Append one line and fsync it; the line is written in a single call."""
    if isinstance(obj, _Record):
        obj = obj.to_json()
    line = json.dumps(_clean(obj), sort_keys=True, default=_json_default) + '\n'
    with open(path, 'a', encoding='utf-8') as f:
        f.write(line)
        f.flush()
        os.fsync(f.fileno())


def write_identity(trial_dir: Path, identity: TrialIdentity) -> None:
    atomic_write_json(Path(trial_dir) / TRIAL_JSON, identity)


def write_meta(trial_dir: Path, meta: TrialMeta) -> None:
    atomic_write_json(Path(trial_dir) / META_JSON, meta)


def append_eval(trial_dir: Path, record: EvalRecord) -> None:
    append_jsonl(Path(trial_dir) / EVALS_JSONL, record)


def write_evals(trial_dir: Path, records: List[EvalRecord]) -> None:
    """evals.jsonl at once, atomically (tools that write whole trials; the runners append)."""
    atomic_write_text(Path(trial_dir) / EVALS_JSONL, ''.join(
        json.dumps(_clean(r.to_json()), sort_keys=True, default=_json_default) + '\n'
        for r in records))


def write_result(trial_dir: Path, result: TrialResult) -> None:
    atomic_write_json(Path(trial_dir) / RESULT_JSON, result)


def write_noise_floors(path: Path, floors: List[NoiseFloor]) -> None:
    """A noise-floor file: ``{"noise_floors": [...]}``, one entry per configuration."""
    atomic_write_json(path, {'noise_floors': [f.to_json() for f in floors]})


def truncate_evals(trial_dir: Path, keep: int) -> None:
    """Keep the first ``keep`` evaluations: on resume, evaluations after the
    checkpoint are redone, so their earlier copies are dropped (atomically)."""
    path = Path(trial_dir) / EVALS_JSONL
    rows = read_jsonl(path)[:keep]
    atomic_write_text(path, ''.join(json.dumps(r, sort_keys=True) + '\n' for r in rows))


# ---- reading ------------------------------------------------------------------------------

def read_json(path: Path) -> Optional[Dict[str, Any]]:
    """The parsed file, or None if it does not exist (ValueError if it is not JSON)."""
    try:
        with open(path, encoding='utf-8') as f:
            return json.load(f)
    except FileNotFoundError:
        return None


def parse_jsonl(text: str, path: Any = '<text>',
                on_bad_line: Optional[Callable[[str, str], None]] = None) -> List[Dict[str, Any]]:
    """The JSON-object lines of ``text``; a torn last line (no newline) is skipped.

    A bad line (not JSON, or not an object) goes to ``on_bad_line(where, why)``
    and is skipped; without the callback it raises ValueError naming the file
    and line. Fast path: one ``json.loads`` over the whole file (scoring reads
    500,000 lines for 10,000 trials).
    """
    if not text.endswith('\n'):
        # A torn last line is a write in progress (an append is one write call).
        text = text[: text.rfind('\n') + 1]
    body = text.rstrip('\n')
    if not body:
        return []
    try:
        rows = json.loads('[' + body.replace('\n', ',') + ']')
        if all(isinstance(r, dict) for r in rows):
            return rows
    except ValueError:
        pass
    rows = []  # slow path: find each bad line, keep the good ones
    for number, line in enumerate(body.split('\n'), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            if not isinstance(row, dict):
                raise ValueError(f'expected a JSON object, found {type(row).__name__}')
        except ValueError as e:
            why = f'not a JSON object ({e})'
            if on_bad_line is None:
                raise ValueError(f'{path}:{number}: {why}') from None
            on_bad_line(f'{path}:{number}', why)
            continue
        rows.append(row)
    return rows


def read_jsonl(path: Path) -> List[Dict[str, Any]]:
    """Every complete line of a JSON-lines file ([] if it does not exist)."""
    try:
        with open(path, encoding='utf-8') as f:
            text = f.read()
    except FileNotFoundError:
        return []
    return parse_jsonl(text, path)


def read_identity(trial_dir: Path) -> Optional[TrialIdentity]:
    """trial.json (or an older trial.yaml); None if the trial has neither.

    ValueError when the file is unreadable or lacks a required key.
    """
    data = read_identity_mapping(trial_dir)
    return None if data is None else TrialIdentity.from_json(data)


def read_identity_mapping(trial_dir: Path) -> Optional[Dict[str, Any]]:
    """The identity file as a plain mapping (scoring reads 10,000s of them: no records)."""
    trial_dir = Path(trial_dir)
    data = read_json(trial_dir / TRIAL_JSON)
    if data is not None:
        return data
    legacy = trial_dir / LEGACY_TRIAL_YAML
    if not legacy.exists():
        return None
    import yaml  # results from before trial.json

    loader = getattr(yaml, 'CSafeLoader', yaml.SafeLoader)
    try:
        return yaml.load(legacy.read_text(encoding='utf-8'), Loader=loader)
    except yaml.YAMLError as e:
        raise ValueError(f'{legacy}: not valid YAML ({e})') from None


def has_identity(trial_dir: Path) -> bool:
    """The trial has started (its identity file exists)."""
    trial_dir = Path(trial_dir)
    return (trial_dir / TRIAL_JSON).exists() or (trial_dir / LEGACY_TRIAL_YAML).exists()


def read_meta(trial_dir: Path) -> Optional[TrialMeta]:
    data = read_json(Path(trial_dir) / META_JSON)
    return None if data is None else TrialMeta.from_json(data)


def read_evals(trial_dir: Path) -> List[EvalRecord]:
    return [EvalRecord.from_json(row) for row in read_jsonl(Path(trial_dir) / EVALS_JSONL)]


def read_noise_floors(path: Path) -> List[NoiseFloor]:
    """The entries of a noise-floor file ([] if it does not exist)."""
    data = read_json(path)
    if data is None:
        return []
    if not isinstance(data, dict) or not isinstance(data.get('noise_floors'), list):
        raise ValueError(f'{path}: expected {{"noise_floors": [...]}}')
    return [NoiseFloor.from_json(entry) for entry in data['noise_floors']]


def read_result(trial_dir: Path) -> Optional[TrialResult]:
    data = read_json(Path(trial_dir) / RESULT_JSON)
    return None if data is None else TrialResult.from_json(data)
