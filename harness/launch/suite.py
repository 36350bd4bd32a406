"""Suite files: parse, validate in full, expand into trials.

A suite is a YAML file (see ``harness/suites/demo.yaml``)::

    experiment: demo              # default: the file's stem
    results_dir: results          # default: results (relative to the working directory)
    seed: 0                       # every trial's hparams and seed derive from it
    ruleset: external             # external | self
    studies: 1
    trials: 1                     # per study; self-tuning runs exactly 1
    held_out_variants: false      # true: one variant per workload, sampled with the seed
    max_steps: null               # optional cap for smoke runs
    stop_at_target: true
    self_tuning_budget_factor: 1.5
    workloads:
      - {name: lm, size: tiny}              # or just `lm` (its smallest size)
      - {name: lm, size: tiny, variants: [null, swiglu]}   # null = the base workload
      # Only some submissions on an entry; its variants on the base workload's seeds:
      - {name: lm_slm, variants: [strong_teacher], submissions: [salt], paired_variants: true}
    submissions: [adamw, {name: ./my_algo, search_space: ./my_space.yaml}]
    frameworks: [jax, pytorch]
    reference: adamw@jax          # scoring's speed-ups are against it (default: top scorer)
    executor:
      default: local              # debug | local | slurm (--executor overrides)
      local: {parallelism: 1}
      slurm: {partition: gpu, gpus_per_node: 1, time_limit_min: 240}

Choices made where the issue was silent:

- Paths to submissions and search spaces are relative to the suite file (they
  travel with it); ``results_dir`` and ``data_dir`` are relative to the working
  directory, like the command-line flags that override them.
- A workload without ``size`` runs its smallest size, as ``timetrial run --workload``.
- Hyperparameters of trial t of study s (external ruleset) are point t of the
  submission's search space, drawn with a seed derived from (suite seed,
  submission, workload[-variant], study) and *not* the framework, so JAX and
  PyTorch run the same hyperparameters. A trial's own seed (init, data order)
  derives from (suite seed, workload[-variant], study, trial), shared by all
  submissions and frameworks: comparisons are paired. ``paired_variants: true``
  on a workload entry drops the variant from that seed, for variants that change
  nothing the seed drives (lm_slm's teachers): its variants then pair with the
  base workload's trials too.
- ``submissions:`` on a workload entry runs only those submissions (by the name
  results are filed under) on it, e.g. one algorithm on the variants.
- Trials are ordered study-major, so a suite stopped half-way has whole studies.

Every problem is reported at once, each with file and line; nothing is
launched from a suite that has one.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import random
import re
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import yaml

from harness import registry
from harness.errors import UserInputError, unknown_name_error
from harness.launch.yaml_schema import BAD, REQUIRED, Context, describe, mapping, plain, strings
from harness.spec import FRAMEWORKS
from harness.submission import search_space
from harness.submission.loader import check_submission, search_space_path
from harness.trial.config import RULESETS, TrialConfig

SUITES_DIR = Path(__file__).resolve().parents[1] / 'suites'
EXECUTORS = ('debug', 'local', 'slurm')

# key: (kind, default, constraints). Kinds: int, float, bool, str, list, mapping.
TOP_KEYS: Dict[str, Tuple[str, Any, Dict[str, Any]]] = {
    'description': ('str', None, {}),
    'experiment': ('str', None, {}),
    'results_dir': ('str', 'results', {}),
    'data_dir': ('str', None, {}),
    'seed': ('int', 0, {'minimum': 0}),
    'ruleset': ('str', 'external', {'choices': RULESETS}),
    'studies': ('int', 1, {'minimum': 1}),
    'trials': ('int', 1, {'minimum': 1}),
    'held_out_variants': ('bool', False, {}),
    'max_steps': ('int', None, {'minimum': 1}),
    'stop_at_target': ('bool', True, {}),
    'self_tuning_budget_factor': ('float', 1.5, {'positive': True}),
    'checkpoint_every_s': ('float', 60.0, {'positive': True}),
    'threads': ('int', None, {'minimum': 1}),
    # The entrant the report's speed-ups are against, in its track (None: the top scorer).
    'reference': ('str', None, {}),
    # Devices per trial (None: all the trial's job sees; PyTorch: one DDP process each).
    'devices': ('int', None, {'minimum': 1}),
    'workloads': ('list', REQUIRED, {}),
    'submissions': ('list', REQUIRED, {}),
    'frameworks': ('list', REQUIRED, {}),
    'executor': ('mapping', {}, {}),
}
WORKLOAD_KEYS = {'name': ('str', REQUIRED, {}), 'size': ('str', None, {}),
                 'variant': ('str', None, {}), 'variants': ('list', None, {}),
                 'frameworks': ('list', None, {}), 'submissions': ('list', None, {}),
                 'paired_variants': ('bool', False, {})}
SUBMISSION_KEYS = {'name': ('str', REQUIRED, {}), 'search_space': ('str', None, {}),
                   'frameworks': ('list', None, {})}
EXECUTOR_KEYS = {'default': ('str', 'local', {'choices': EXECUTORS}),
                 'debug': ('mapping', {}, {}), 'local': ('mapping', {}, {}),
                 'slurm': ('mapping', {}, {})}
LOCAL_KEYS = {'parallelism': ('int', 1, {'minimum': 1})}
SLURM_KEYS = {
    'partition': ('str', None, {}),
    'gpus_per_node': ('int', 0, {'minimum': 0}),   # GPUs per trial (one trial per array task)
    'cpus_per_task': ('int', 1, {'minimum': 1}),
    'mem_gb': ('float', None, {'positive': True}),
    'time_limit_min': ('int', 60, {'minimum': 1}),  # a trial past it requeues and resumes
    'account': ('str', None, {}),
    'qos': ('str', None, {}),
    'constraint': ('str', None, {}),
    'array_parallelism': ('int', 64, {'minimum': 1}),
    'setup': ('list', [], {}),                       # shell lines before the trial (module load ...)
    'max_timeouts': ('int', 10, {'minimum': 0}),     # requeues after hitting the time limit
}
_NAME_RE = re.compile(r'^[A-Za-z0-9][A-Za-z0-9._-]*$')


@dataclasses.dataclass(frozen=True)
class WorkloadEntry:
    name: str
    size: str
    variant: Optional[str]
    frameworks: Optional[Tuple[str, ...]] = None
    held_out: bool = False
    #: Names of the submissions that run on this entry (None: all of the suite's).
    submissions: Optional[Tuple[str, ...]] = None
    #: The variant takes the base workload's trial seeds (``paired_variants``).
    paired: bool = False

    @property
    def key(self) -> str:
        return self.name if not self.variant else f'{self.name}-{self.variant}'

    @property
    def seed_key(self) -> str:
        """What a trial's seed derives from: the key, or the base name when paired."""
        return self.name if self.paired else self.key


@dataclasses.dataclass(frozen=True)
class SubmissionEntry:
    ref: str                  # a built-in name or an absolute path (TrialConfig.submission)
    name: str                 # as shown in results
    path: Path
    search_space: Optional[Path]
    frameworks: Optional[Tuple[str, ...]] = None
    #: 'centralized' (AlgoPerf's contract) or 'federated'.
    kind: str = 'centralized'

    def trains(self, workload: WorkloadEntry, workload_kind: str) -> bool:
        """A submission trains the workloads of its own contract (those whose entry lists
        it, when the entry lists its ``submissions``)."""
        if (workload_kind == 'federated') != (self.kind == 'federated'):
            return False
        return workload.submissions is None or self.name in workload.submissions


@dataclasses.dataclass(frozen=True)
class SlurmSettings:
    partition: Optional[str] = None
    gpus_per_node: int = 0
    cpus_per_task: int = 1
    mem_gb: Optional[float] = None
    time_limit_min: int = 60
    account: Optional[str] = None
    qos: Optional[str] = None
    constraint: Optional[str] = None
    array_parallelism: int = 64
    setup: Tuple[str, ...] = ()
    max_timeouts: int = 10


@dataclasses.dataclass(frozen=True)
class Suite:
    path: Path
    experiment: str
    results_dir: Path
    workloads: Tuple[WorkloadEntry, ...]
    submissions: Tuple[SubmissionEntry, ...]
    frameworks: Tuple[str, ...]
    description: Optional[str] = None
    data_dir: Optional[str] = None
    seed: int = 0
    ruleset: str = 'external'
    studies: int = 1
    trials: int = 1
    held_out_variants: bool = False
    max_steps: Optional[int] = None
    stop_at_target: bool = True
    self_tuning_budget_factor: float = 1.5
    checkpoint_every_s: float = 60.0
    devices: Optional[int] = None
    #: CPU cores per trial (None: the local executor's cores ÷ parallelism, else all).
    threads: Optional[int] = None
    #: The entrant (submission, or submission@framework) scoring compares the others with.
    reference: Optional[str] = None
    executor: str = 'local'
    executor_line: Optional[int] = None
    parallelism: int = 1
    slurm: SlurmSettings = SlurmSettings()

    def experiment_dir(self) -> Path:
        return self.results_dir / self.experiment

    def replace(self, **changes) -> 'Suite':
        return dataclasses.replace(self, **changes)


# ---- shipped suites ---------------------------------------------------------------

def shipped_suites() -> Dict[str, Path]:
    return {p.stem: p for p in sorted(SUITES_DIR.glob('*.yaml'))}


def find_suite(name_or_path: str) -> Path:
    """A suite file, or the name of a shipped suite (``demo``, ``full``)."""
    path = Path(name_or_path).expanduser()
    if path.is_file():
        return path.resolve()
    shipped = shipped_suites()
    if name_or_path in shipped:
        return shipped[name_or_path]
    if path.suffix in ('.yaml', '.yml') or '/' in name_or_path:
        raise UserInputError(f'Suite file {name_or_path} does not exist.')
    raise unknown_name_error('suite', name_or_path, shipped,
                             hint='A suite may also be given as a path to its YAML file.')


# ---- parse and validate -------------------------------------------------------------

def derive_seed(*parts: Any) -> int:
    """A stable 31-bit seed from its parts (never Python's salted hash())."""
    digest = hashlib.sha256('/'.join(str(p) for p in parts).encode('utf-8')).digest()
    return int.from_bytes(digest[:4], 'little') & 0x7FFFFFFF


def load_suite(path: Path) -> Suite:
    """Read and validate a suite; raise one UserInputError listing every problem."""
    path = Path(path).resolve()
    try:
        text = path.read_text(encoding='utf-8')
    except OSError as e:
        raise UserInputError(f'Cannot read suite {path}: {e.strerror}.') from None
    ctx = Context(path)
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as e:
        mark = getattr(e, 'problem_mark', None)
        line = f':{mark.line + 1}' if mark else ''
        raise UserInputError(f'{path}{line}: not valid YAML: {e}') from None
    if node is None:
        raise UserInputError(f'{path}: the suite is empty; see harness/suites/demo.yaml.')
    raw = plain(node, (), ctx, yaml.SafeLoader(''))
    if not isinstance(raw, dict):
        ctx.error((), f'a suite is a mapping of keys ({", ".join(TOP_KEYS)}), '
                      f'got {describe(raw)}')
        ctx.raise_if_any()
    if isinstance(raw.get('executor'), str):       # a common slip: `executor: slurm`
        ctx.error(('executor',), f'expected a mapping, e.g. `executor: {{default: '
                                 f'{raw["executor"]}}}`, got {raw["executor"]!r}')
        raw = {**raw, 'executor': {}}
    top = mapping(ctx, (), raw, TOP_KEYS, 'suite')
    ex = top['executor'] if isinstance(top['executor'], dict) else {}
    executor = mapping(ctx, ('executor',), ex, EXECUTOR_KEYS, 'executor')
    sections = {}
    for name, keys in (('debug', {}), ('local', LOCAL_KEYS), ('slurm', SLURM_KEYS)):
        section = executor[name] if isinstance(executor[name], dict) else {}
        sections[name] = mapping(ctx, ('executor', name), section, keys, f'{name} executor')
    slurm = sections['slurm']
    setup = strings(ctx, ('executor', 'slurm', 'setup'), slurm['setup']) or []

    frameworks = strings(ctx, ('frameworks',), top['frameworks'], choices=FRAMEWORKS)
    if frameworks is not None and not frameworks and top['frameworks'] is not BAD:
        ctx.error(('frameworks',), f'list at least one of {", ".join(FRAMEWORKS)}')
    frameworks = tuple(dict.fromkeys(frameworks or ()))
    workloads = _workloads(ctx, top, frameworks)
    submissions = _submissions(ctx, top, path.parent, frameworks)
    _check_kinds(ctx, workloads, submissions)
    _check_entry_submissions(ctx, top, submissions)
    _check_reference(ctx, top['reference'], submissions, frameworks)

    if top['ruleset'] == 'self' and top['trials'] not in (1, BAD) and 'trials' in raw:
        ctx.error(('trials',), f'self-tuning runs one trial per study, got {top["trials"]}; '
                               'remove `trials` or set it to 1 (use `studies` for repeats)')
    experiment = top['experiment'] if top['experiment'] not in (None, BAD) else path.stem
    if not _NAME_RE.match(experiment):
        ctx.error(('experiment',), f'{experiment!r} is not a usable directory name: use letters, '
                                   'digits, ".", "_" and "-"')
    ctx.raise_if_any()

    suite = Suite(
        path=path, experiment=experiment,
        results_dir=Path(top['results_dir']).expanduser().resolve(),
        workloads=tuple(workloads), submissions=tuple(submissions), frameworks=frameworks,
        description=top['description'],
        data_dir=str(Path(top['data_dir']).expanduser().resolve()) if top['data_dir'] else None,
        seed=top['seed'], ruleset=top['ruleset'], studies=top['studies'],
        trials=1 if top['ruleset'] == 'self' else top['trials'],
        held_out_variants=top['held_out_variants'], max_steps=top['max_steps'],
        stop_at_target=top['stop_at_target'],
        self_tuning_budget_factor=top['self_tuning_budget_factor'],
        checkpoint_every_s=top['checkpoint_every_s'], devices=top['devices'],
        threads=top['threads'], reference=top['reference'], executor=executor['default'], executor_line=ctx.lines.get(('executor', 'default')),
        parallelism=sections['local']['parallelism'],
        slurm=SlurmSettings(**{**slurm, 'setup': tuple(setup)}),
    )
    return suite


def _check_reference(ctx: Context, reference, submissions, frameworks) -> None:
    """``reference:`` names one of the suite's entrants: a submission, or submission@framework."""
    if reference in (None, BAD):
        return
    name, _, framework = str(reference).partition('@')
    names = [s.name for s in submissions]
    if name not in names or (framework and framework not in frameworks):
        ctx.error(('reference',), f'{reference!r} is not an entrant of this suite: name one of '
                  f'its submissions ({", ".join(names)}), optionally @ one of its frameworks '
                  f'({", ".join(frameworks)})')


def _check_kinds(ctx: Context, workloads, submissions) -> None:
    """Every submission trains some workload of the suite, and only workloads of its contract
    (a suite may hold both: federated submissions train its federated workloads, centralized
    ones the others)."""
    kinds = {w.name: registry.workload_info(w.name).kind for w in workloads}
    by_name = {s.name: s for s in submissions}
    for i, w in enumerate(workloads):
        for j, name in enumerate(w.submissions or ()):
            s = by_name.get(name)
            if s is not None and (s.kind == 'federated') != (kinds[w.name] == 'federated'):
                ctx.error(('workloads', i, 'submissions', j),
                          f'{name} is a {s.kind} submission; {w.name} is a {kinds[w.name]} '
                          'workload: a submission trains workloads of its own contract only')
    for i, s in enumerate(submissions):
        if kinds and not any(s.trains(w, kinds[w.name]) for w in workloads):
            ctx.error(('submissions', i), (
                f'{s.name} is a {s.kind} submission, and the suite has no {s.kind} workload '
                f'for it (workloads: {", ".join(sorted(kinds))})'))


def _check_entry_submissions(ctx: Context, top: Dict[str, Any], submissions) -> None:
    """A workload entry's ``submissions`` must name submissions of the suite."""
    names = [s.name for s in submissions]
    raw = top['workloads'] if isinstance(top['workloads'], list) else []
    for i, item in enumerate(raw):
        listed = item.get('submissions') if isinstance(item, dict) else None
        for j, name in enumerate(listed if isinstance(listed, list) else []):
            if isinstance(name, str) and name not in names:
                close = difflib.get_close_matches(name, names, n=2)
                ctx.error(('workloads', i, 'submissions', j), (
                    f'{name!r} is not one of the suite\'s submissions ({", ".join(names)})'
                    + (f'; did you mean {", ".join(close)}?' if close else '')))


def _workloads(ctx: Context, top: Dict[str, Any], frameworks: Tuple[str, ...]):
    entries: List[WorkloadEntry] = []
    seen: Dict[str, str] = {}
    for i, item in enumerate(top['workloads'] if isinstance(top['workloads'], list) else []):
        path = ('workloads', i)
        if isinstance(item, str):
            item = {'name': item}
        if not isinstance(item, dict):
            ctx.error(path, f'a workload is a name or a mapping {{name, size, variant(s)}}, '
                            f'got {describe(item)}')
            continue
        w = mapping(ctx, path, item, WORKLOAD_KEYS, 'workload')
        if w['name'] is BAD:
            continue
        try:
            info = registry.workload_info(w['name'])
        except UserInputError as e:
            ctx.error(path + ('name',), str(e))
            continue
        size = w['size'] if w['size'] not in (None, BAD) else info.sizes[0]
        if size not in info.sizes:
            ctx.error(path + ('size',), f'workload {info.name!r} has no size {size!r}; '
                                        f'its sizes: {", ".join(info.sizes)}')
        if w['variant'] is not None and w['variants'] is not None:
            ctx.error(path + ('variants',), 'give `variant` or `variants`, not both')
        variants = strings(ctx, path + ('variants',), w['variants'], allow_null=True)
        if variants is None:
            variants = [w['variant'] if w['variant'] is not BAD else None]
        own = strings(ctx, path + ('frameworks',), w['frameworks'], choices=FRAMEWORKS)
        only = strings(ctx, path + ('submissions',), w['submissions'])
        paired = w['paired_variants'] is True
        for j, variant in enumerate(variants):
            where = path + (('variants', j) if w['variants'] is not None else ('variant',))
            if variant == 'base' and 'base' not in info.variants:
                variant = None
            if variant is not None and variant not in info.variants:
                close = difflib.get_close_matches(variant, info.variants, n=2)
                ctx.error(where, f'workload {info.name!r} has no variant {variant!r}.'
                                 + (f' Did you mean: {", ".join(close)}?' if close else '')
                                 + f' Its variants: {", ".join(info.variants) or "(none)"}.')
                continue
            entry = WorkloadEntry(info.name, size, variant, tuple(own) if own else None,
                                  submissions=tuple(only) if only is not None else None,
                                  paired=paired)
            if entry.key in seen:
                # Results directories name workload and variant, not size.
                ctx.error(where, f'{entry.key} is listed twice (also at {seen[entry.key]}); '
                                 'its trials would share one results directory. A suite runs '
                                 'one size per workload: use a second suite for another size')
                continue
            seen[entry.key] = f'line {ctx.line(where)}'
            for fw in _effective(frameworks, entry.frameworks):
                if fw not in info.classes:
                    ctx.error(path, f'workload {info.name!r} has no {fw} implementation (it '
                                    f'has: {", ".join(sorted(info.classes))}); give this entry '
                                    f'`frameworks: [{", ".join(sorted(info.classes))}]`')
            entries.append(entry)
    if top['held_out_variants'] is True:
        entries += _held_out(entries, top['seed'] if top['seed'] is not BAD else 0)
    return entries


def _held_out(entries: List[WorkloadEntry], seed: int) -> List[WorkloadEntry]:
    """AlgoPerf-style: one variant per workload, sampled with the suite seed."""
    extra, seen = [], set()
    listed = {(e.name, e.variant) for e in entries}
    for e in entries:
        info = registry.workload_info(e.name)
        if e.name in seen or not info.variants:
            continue
        seen.add(e.name)
        variant = random.Random(derive_seed(seed, 'held_out', e.name)).choice(
            sorted(info.variants))
        if (e.name, variant) not in listed:
            extra.append(WorkloadEntry(e.name, e.size, variant, e.frameworks, held_out=True))
    return extra


def _effective(frameworks: Tuple[str, ...], own: Optional[Tuple[str, ...]]) -> List[str]:
    return [f for f in frameworks if own is None or f in own]


def _submissions(ctx: Context, top: Dict[str, Any], suite_dir: Path,
                 frameworks: Tuple[str, ...]) -> List[SubmissionEntry]:
    entries: List[SubmissionEntry] = []
    for i, item in enumerate(top['submissions'] if isinstance(top['submissions'], list) else []):
        path = ('submissions', i)
        if isinstance(item, str):
            item = {'name': item}
        if not isinstance(item, dict):
            ctx.error(path, f'a submission is a name, a path, or a mapping {{name, search_space}}, '
                            f'got {describe(item)}')
            continue
        s = mapping(ctx, path, item, SUBMISSION_KEYS, 'submission')
        if s['name'] is BAD:
            continue
        ref = s['name']
        near = suite_dir / ref
        if not Path(ref).is_absolute() and near.exists():
            ref = str(near.resolve())
        try:
            sub_path = registry.resolve_submission(ref)
        except UserInputError as e:
            ctx.error(path + ('name',), str(e))
            continue
        ref = ref if ref in registry.builtin_submissions() else str(sub_path)
        space = None
        if s['search_space'] not in (None, BAD):
            space = (suite_dir / s['search_space']).expanduser().resolve()
            if not space.is_file():
                ctx.error(path + ('search_space',), f'search space {space} does not exist')
                continue
        else:
            space = search_space_path(sub_path)
        own = strings(ctx, path + ('frameworks',), s['frameworks'], choices=FRAMEWORKS)
        wanted = _effective(frameworks, tuple(own) if own else None)
        if wanted:
            for problem in check_submission(ref, wanted, str(space) if space else None,
                                            require_search_space=top['ruleset'] == 'external'):
                ctx.error(path, problem)
        name = registry.submission_name(sub_path)
        if any(e.name == name for e in entries):
            ctx.error(path + ('name',), f'another submission is also named {name!r}; '
                                        'their results would mix in one directory')
            continue
        entries.append(SubmissionEntry(ref, name, sub_path, space, tuple(own) if own else None,
                                       registry.submission_kind(sub_path)))
    return entries


# ---- expansion ------------------------------------------------------------------------

def trial_id(config: TrialConfig) -> str:
    """'<submission>/<workload>[-<variant>]_<framework>/study_<s>/trial_<t>' (stable)."""
    return (f'{config.display_submission}/{config.workload_dirname}/'
            f'study_{config.study}/trial_{config.trial}')


def expand(suite: Suite) -> List[TrialConfig]:
    """Every trial of the suite, study-major, with its hyperparameters and seeds."""
    spaces: Dict[Path, Any] = {}
    trials = []
    kinds = {w.name: registry.workload_info(w.name).kind for w in suite.workloads}
    for study in range(suite.studies):
        for w in suite.workloads:
            for s in suite.submissions:
                if not s.trains(w, kinds[w.name]):
                    continue
                for fw in _effective(_effective(suite.frameworks, w.frameworks), s.frameworks):
                    for t in range(suite.trials):
                        trials.append(_config(suite, w, s, fw, study, t, spaces))
    return trials


def _config(suite: Suite, w: WorkloadEntry, s: SubmissionEntry, framework: str, study: int,
            trial: int, spaces: Dict[Path, Any]) -> TrialConfig:
    hparams = None
    if suite.ruleset == 'external':
        if s.search_space is None:
            raise UserInputError(f'Submission {s.name} has no search space; the external '
                                 'ruleset needs one (add search_space.yaml or `search_space:`).')
        if s.search_space not in spaces:
            spaces[s.search_space] = search_space.load(s.search_space)
        hp_seed = derive_seed(suite.seed, 'hparams', s.name, w.key, study)
        hparams = search_space.sample(spaces[s.search_space], hp_seed, trial)
    return TrialConfig(
        workload=w.name, framework=framework, submission=s.ref, size=w.size, variant=w.variant,
        ruleset=suite.ruleset, hparams=hparams,
        seed=derive_seed(suite.seed, 'trial', w.seed_key, study, trial),
        study=study, trial=trial, experiment=suite.experiment,
        results_dir=str(suite.results_dir), data_dir=suite.data_dir, max_steps=suite.max_steps,
        stop_at_target=suite.stop_at_target,
        budget_factor=suite.self_tuning_budget_factor if suite.ruleset == 'self' else 1.0,
        checkpoint_every_s=suite.checkpoint_every_s, submission_name=s.name,
        devices=suite.devices, threads=suite.threads)
