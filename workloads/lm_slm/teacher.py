r"""The teachers of lm_slm: their shapes, regimes, training recipe and checkpoint format.

The question of SALT (arXiv:2410.18779) is whether a *small, weaker* LM speeds
up the pre-training of a larger one. So the base workload's teacher is weaker
than the student's target: its validation loss at the end of its training is at
least ``WEAK_MARGIN_NATS`` (0.1) above the target (``check_regime``, run by
``check_data`` with the trial's own target and by ``prepare`` with the shipped
one). The ``strong_teacher`` variant keeps a teacher that beats the target, as
the control (ordinary strong-teacher distillation).

========================  =====================  ===============  ==============  =============
variant                   teacher (role)         tiny (2 x 128)   small (12x768)  steps tiny/small
========================  =====================  ===============  ==============  =============
(base)                    ``quarter`` (weak)     1 x 32, 1 head   3 x 192, 3 h    1,000 / 190
``weaker_teacher``        ``half_short`` (weak)  1 x 64, 2 heads  6 x 384, 6 h    600 / 95
``undertrained_teacher``  ``half_undertrained``  1 x 64, 2 heads  6 x 384, 6 h    125 / 24
                          (weak)
``strong_teacher``        ``half`` (control)     1 x 64, 2 heads  6 x 384, 6 h    1,000 / 380
========================  =====================  ===============  ==============  =============

``quarter``/``half``: 1/4 or 1/2 of the student's depth and width (head width
kept, at least one block and head).

Measured at tiny (JAX; validation loss at the end of training; the student's
target is 4.75, so the margin is loss − 4.75; tokens and epochs of the
1.56M-token training split)::

    quarter            1,000 steps  4.10M tokens  2.62 epochs  4.916  margin +0.17
    half_short           600 steps  2.46M tokens  1.57 epochs  5.205  margin +0.45
    half_undertrained    125 steps  0.51M tokens  0.33 epochs  6.122  margin +1.37
    half (control)     1,000 steps  4.10M tokens  2.62 epochs  4.691  margin -0.06

(a 300-step ``half`` ended at 5.506). The student (batch 16) meets its target
after about 390 steps, 0.8M tokens; the default teacher is about a sixth of its
size (148k of 951k parameters) and ends 0.17 nats short of that target.

``small`` is UNMEASURED (it trains on a GPU): steps and epoch cap are set by
reasoning from tiny. The small student meets 4.0 at about 220 steps (7.2M
tokens, 4.6 epochs of the Shakespeare corpus) and overfits after ~300; a teacher
with a sixtieth of its non-embedding parameters (``quarter``) for 4 epochs, or
half its depth and width for 2 (``half_short``), should end well above 4.1.
``prepare`` and ``check_data`` enforce the margin when they are trained. The
strong control may not beat 4.0 on Shakespeare within its 8 epochs (``prepare``
logs it): a strong control at small needs a larger corpus.

Reference recipe (``RECIPES``, the same for every teacher of a size): AdamW,
β = (0.9, 0.95), weight decay 0.1 on matrices only, global-norm clip 1, linear
warmup over 5 % of the steps then cosine decay to 0, a batch of 32 sequences of
the student's length from the lm *training* split (its own data seed), at most
``max_epochs`` passes over that split (tiny 3, small 8: a teacher's steps are
cut to fit, so a small corpus never gets a teacher trained for hundreds of
epochs). Step counts are fixed numbers rather than multiples of the student's
step_hint, so recalibrating the student's budget never invalidates a teacher.

Checkpoint, framework-neutral, under ``<data_dir>/lm_slm/<size>/<teacher>/``::

    weights.npz     canonical float32 arrays (``lm.workload.param_specs`` names and
                    layouts, kernels (in, out)): both frameworks load it
    teacher.json    format_version, name, size, role, config, recipe, weights sha256,
                    the lm data it was trained on (train.bin sha256, vocabulary),
                    training {split, time_s, flops, steps, tokens, epochs, max_epochs,
                    framework, device, final_train_loss, validation_loss}; written last
                    (the commit marker)

``teacher.json`` is written after ``weights.npz`` through a temporary file and
a rename, so an interrupted ``prepare`` never leaves a teacher that looks complete.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Dict, Optional, Union

import numpy as np

from harness.errors import DataNotPreparedError, UserInputError
from workloads.lm import workload as lm

FORMAT_VERSION = 1
WEIGHTS_FILE = 'weights.npz'
META_FILE = 'teacher.json'
PREPARE_COMMAND = 'timetrial prepare lm_slm'

PathLike = Union[str, Path]


ROLES = ('weak', 'strong_control')
#: A weak teacher's validation loss must end at least this far above the student's target.
WEAK_MARGIN_NATS = 0.1


@dataclasses.dataclass(frozen=True)
class TeacherSpec:
    """One teacher: its size relative to the student, its steps per size and its role."""

    name: str
    scale: float
    steps: Dict[str, int]
    #: 'weak': must end ``WEAK_MARGIN_NATS`` above the target; 'strong_control': exempt.
    role: str = 'weak'


TEACHERS: Dict[str, TeacherSpec] = {
    # The base workload's: about a sixth of the student's parameters at tiny, 2.6 epochs.
    'quarter': TeacherSpec('quarter', 0.25, {'tiny': 1000, 'small': 190}),
    'half_short': TeacherSpec('half_short', 0.5, {'tiny': 600, 'small': 95}),
    'half_undertrained': TeacherSpec('half_undertrained', 0.5, {'tiny': 125, 'small': 24}),
    # The control: beats the student's target at tiny.
    'half': TeacherSpec('half', 0.5, {'tiny': 1000, 'small': 380}, role='strong_control'),
}
#: Workload variant -> the teacher it uses (None: the base workload).
TEACHER_OF_VARIANT: Dict[Optional[str], str] = {
    None: 'quarter',
    'weaker_teacher': 'half_short',
    'undertrained_teacher': 'half_undertrained',
    'strong_teacher': 'half',
}


@dataclasses.dataclass(frozen=True)
class TeacherRecipe:
    """The fixed training recipe of a size's teachers (see the module docstring)."""

    steps: int
    global_batch_size: int
    peak_lr: float
    #: Passes over the training split at most: ``steps`` is cut to fit the data.
    max_epochs: float
    warmup_fraction: float = 0.05
    beta1: float = 0.9
    beta2: float = 0.95
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    #: Seed of the teacher's training stream (and of its initialization).
    seed: int = 20241024


RECIPES: Dict[str, TeacherRecipe] = {
    # 3e-3 is lm's measured tiny learning rate. ``steps`` here is a placeholder:
    # recipe_for sets each teacher's own.
    'tiny': TeacherRecipe(steps=0, global_batch_size=32, peak_lr=3e-3, max_epochs=3.0),
    # A smaller peak for the deeper model.
    'small': TeacherRecipe(steps=0, global_batch_size=32, peak_lr=1e-3, max_epochs=8.0),
}


def teacher_config(student: lm.LmConfig, scale: float) -> lm.LmConfig:
    """The student's config scaled in depth and width (head width kept, >= 1 block/head)."""
    head_dim = student.head_dim
    n_heads = max(1, round(student.n_heads * scale))
    return dataclasses.replace(
        student,
        n_layers=max(1, round(student.n_layers * scale)),
        d_model=n_heads * head_dim,
        n_heads=n_heads,
    )


def recipe_for(size: str, name: str, steps: Optional[int] = None) -> TeacherRecipe:
    """The reference recipe of ``size`` for teacher ``name`` (``steps`` overrides, for tests)."""
    if steps is None:
        steps = TEACHERS[name].steps[size]
    return dataclasses.replace(RECIPES[size], steps=int(steps))


def capped_steps(recipe: TeacherRecipe, seq_len: int, train_tokens: int) -> int:
    """The recipe's steps, cut so that the teacher sees at most ``max_epochs`` of the split."""
    tokens_per_step = recipe.global_batch_size * seq_len
    cap = int(recipe.max_epochs * train_tokens // tokens_per_step)
    return max(1, min(recipe.steps, cap))


def teacher_forward_flops(config: lm.LmConfig, seq_len: Optional[int] = None) -> float:
    """Forward FLOPs of one sequence of ``seq_len`` tokens: T·(2·N + 4·L·T·D).

    A third of ``lm.flops_per_sequence`` (the same PaLM count, without the backward pass).
    """
    t = config.seq_len if seq_len is None else int(seq_len)
    return float(t * (2 * lm.count_params(config) + 4 * config.n_layers * t * config.d_model))


# ---- the checkpoint ------------------------------------------------------------------------


def teacher_dir(data_dir: PathLike, size: str, name: str) -> Path:
    return Path(data_dir).expanduser() / 'lm_slm' / size / name


def sha256_file(path: Path, chunk_bytes: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        while chunk := f.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()


def config_dict(config: lm.LmConfig) -> Dict[str, Any]:
    return dataclasses.asdict(config)


def save(out_dir: PathLike, weights: Dict[str, np.ndarray], meta: Dict[str, Any]) -> Dict[str, Any]:
    """Write ``weights.npz`` then ``teacher.json`` (with the weights' sha256); return the meta."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / META_FILE).unlink(missing_ok=True)  # From here on the teacher is "not prepared".
    fd, tmp_name = tempfile.mkstemp(dir=out, prefix='.weights-', suffix='.npz')
    os.close(fd)
    try:
        np.savez(tmp_name, **{k: np.asarray(v, np.float32) for k, v in weights.items()})
        os.replace(tmp_name, out / WEIGHTS_FILE)
    finally:
        Path(tmp_name).unlink(missing_ok=True)
    meta = {
        **meta,
        'format_version': FORMAT_VERSION,
        'weights_file': WEIGHTS_FILE,
        'weights_sha256': sha256_file(out / WEIGHTS_FILE),
    }
    tmp_meta = out / f'.{META_FILE}.tmp'
    tmp_meta.write_text(json.dumps(meta, indent=2, sort_keys=True) + '\n', encoding='utf-8')
    os.replace(tmp_meta, out / META_FILE)
    return meta


def _not_prepared(message: str, data_dir: PathLike) -> DataNotPreparedError:
    return DataNotPreparedError(
        f'{message} Run `{PREPARE_COMMAND} --data-dir {Path(data_dir).expanduser()}` to train '
        'the teachers (it prepares the lm data first if needed).'
    )


def load_meta(data_dir: PathLike, size: str, name: str) -> Dict[str, Any]:
    """``teacher.json`` of a prepared teacher; DataNotPreparedError if missing or unreadable."""
    folder = teacher_dir(data_dir, size, name)
    path = folder / META_FILE
    if not path.is_file():
        raise _not_prepared(
            f'The lm_slm teacher {name!r} of size {size!r} is not prepared: {path} is missing.',
            data_dir,
        )
    try:
        meta = json.loads(path.read_text(encoding='utf-8'))
    except (OSError, json.JSONDecodeError) as err:
        raise _not_prepared(f'{path} is unreadable ({err}).', data_dir) from None
    if not isinstance(meta, dict) or meta.get('format_version') != FORMAT_VERSION:
        found = meta.get('format_version') if isinstance(meta, dict) else None
        raise _not_prepared(
            f'{path} is from another version of TimeTrial (format_version '
            f'{found}, this one reads {FORMAT_VERSION}).',
            data_dir,
        )
    if not (folder / meta.get('weights_file', WEIGHTS_FILE)).is_file():
        raise _not_prepared(f'{folder / WEIGHTS_FILE} is missing.', data_dir)
    return meta


def load_weights(
    data_dir: PathLike, size: str, name: str, meta: Dict[str, Any]
) -> Dict[str, np.ndarray]:
    """The canonical float32 arrays, after checking the file against its recorded sha256."""
    path = teacher_dir(data_dir, size, name) / meta.get('weights_file', WEIGHTS_FILE)
    digest = sha256_file(path)
    if digest != meta.get('weights_sha256'):
        raise _not_prepared(
            f'{path} does not match its checksum in {META_FILE} (sha256 '
            f'{digest}, recorded {meta.get("weights_sha256")}): the file is '
            'corrupt or was replaced.',
            data_dir,
        )
    with np.load(path) as archive:
        return {key: np.asarray(archive[key], np.float32) for key in archive.files}


def data_fingerprint(lm_meta: Dict[str, Any]) -> Dict[str, Any]:
    """What identifies the lm data a teacher was trained on."""
    return {
        'train_sha256': lm_meta.get('sha256', {}).get('train.bin'),
        'vocab_size': int(lm_meta['vocab_size']),
    }


def check_compatible(
    meta: Dict[str, Any], student: lm.LmConfig, lm_meta: Dict[str, Any], data_dir: PathLike
) -> None:
    """UserInputError listing every mismatch between a teacher and the student or the data."""
    where = teacher_dir(data_dir, meta.get('size', '?'), meta.get('name', '?')) / META_FILE
    config = meta.get('config', {})
    problems = []
    if config.get('vocab_size') != student.vocab_size:
        problems.append(
            f'the teacher has a vocabulary of {config.get("vocab_size")} tokens, '
            f'the student {student.vocab_size}'
        )
    if config.get('seq_len') != student.seq_len:
        problems.append(
            f'the teacher was trained on sequences of {config.get("seq_len")} '
            f'tokens, the student uses {student.seq_len}'
        )
    trained_on = meta.get('data', {})
    current = data_fingerprint(lm_meta)
    if trained_on.get('train_sha256') != current['train_sha256']:
        problems.append(
            'the teacher was trained on other lm data (train.bin sha256 '
            f'{trained_on.get("train_sha256")}, now {current["train_sha256"]})'
        )
    if problems:
        raise UserInputError(
            f'The lm_slm teacher in {where} does not fit the student: '
            + '; '.join(problems)
            + f'. Run `{PREPARE_COMMAND} --data-dir {Path(data_dir).expanduser()}` to train '
            'teachers for the current lm data.'
        )


def regime_problems(meta: Dict[str, Any], target: float) -> list:
    """Why a teacher does not fit its regime (see the module docstring); [] if it does.

    Every teacher: trained on the training split, within the recipe's epoch cap, its
    validation loss recorded. A weak one also ends ``WEAK_MARGIN_NATS`` above ``target``.
    """
    training = meta.get('training', {})
    problems = []
    if training.get('split') != 'train':
        problems.append(
            'it records no training split (trained by an older TimeTrial); the teachers are '
            'trained on the lm training split only'
        )
    epochs, cap = training.get('epochs'), meta.get('recipe', {}).get('max_epochs')
    if epochs is None or cap is None:
        problems.append('it records no epoch count or cap (trained by an older TimeTrial)')
    elif epochs > cap + 1e-9:
        problems.append(f'it saw {epochs:.2f} epochs of the training split, over the cap of {cap}')
    loss = training.get('validation_loss')
    if not isinstance(loss, (int, float)) or loss != loss:
        problems.append('it records no validation loss')
        return problems
    if meta.get('role', 'weak') == 'weak' and loss < target + WEAK_MARGIN_NATS:
        problems.append(
            f'it is not weaker than the student: its validation loss {loss:.4f} is less than '
            f'{WEAK_MARGIN_NATS} nats above the student\'s target {target:.4g} (it must be at '
            f'least {target + WEAK_MARGIN_NATS:.4g}; margin {loss - target:+.4f})'
        )
    return problems


def check_regime(meta: Dict[str, Any], target: float, variant: Optional[str],
                 data_dir: PathLike) -> None:
    """UserInputError naming every way the teacher misses its regime (``regime_problems``)."""
    problems = regime_problems(meta, target)
    if not problems:
        return
    where = teacher_dir(data_dir, meta.get('size', '?'), meta.get('name', '?')) / META_FILE
    control = next(v for v, n in TEACHER_OF_VARIANT.items() if TEACHERS[n].role != 'weak')
    raise UserInputError(
        f'The lm_slm teacher {meta.get("name")!r} in {where} (variant '
        f'{variant or "none"}) does not fit its regime: ' + '; '.join(problems) + '. '
        'lm_slm asks whether a small, weaker teacher speeds up training. Fix: run '
        f'`{PREPARE_COMMAND} --data-dir {Path(data_dir).expanduser()}` to train it with the '
        'reference recipe; if it still beats the target (another corpus, a recalibrated '
        f'target), give it fewer steps in workloads/lm_slm/teacher.py TEACHERS; to distill '
        f'from a strong teacher on purpose, run the control variant {control!r}.'
    )


def check_weights(config: lm.LmConfig, weights: Dict[str, np.ndarray]) -> None:
    """DataNotPreparedError unless ``weights`` has exactly the config's names and shapes."""
    specs = lm.param_specs(config)
    problems = [f'missing {name}' for name in specs if name not in weights]
    problems += [f'unexpected {name}' for name in weights if name not in specs]
    problems += [
        f'{name}: shape {tuple(weights[name].shape)}, config says {shape}'
        for name, (shape, _) in specs.items()
        if name in weights and tuple(weights[name].shape) != tuple(shape)
    ]
    if problems:
        raise DataNotPreparedError(
            'The lm_slm teacher checkpoint does not match its recorded config: '
            + '; '.join(problems)
            + f'. Run `{PREPARE_COMMAND}` to train it again.'
        )


def config_from_meta(meta: Dict[str, Any]) -> lm.LmConfig:
    fields = {f.name for f in dataclasses.fields(lm.LmConfig)}
    return lm.LmConfig(**{k: v for k, v in meta['config'].items() if k in fields})
