r"""The teachers of lm_slm: their shapes, the reference training recipe, the checkpoint format.

Shapes. A teacher is the lm model (same code, tokenizer, sequence length and
vocabulary) at a smaller config, derived from the student's size:

==========================  =======================  ==================  =================
variant                     teacher                  tiny (student 2x128) small (12x768)
==========================  =======================  ==================  =================
(base)                      ``half``: 1/2 depth,     1 x 64, 2 heads      6 x 384, 6 heads
                            1/2 width
``quarter_teacher``         ``quarter``: 1/4 depth,  1 x 32, 1 head       3 x 192, 3 heads
                            1/4 width
``undertrained_teacher``    ``half_undertrained``:   as half              as half
                            half, 1/8 of the steps
==========================  =======================  ==================  =================

Widths keep the student's head width (``d_model / n_heads``) and depths are at
least one block.

Reference recipe (``RECIPES``; the same for every teacher of a size, except the
undertrained one's step count): AdamW, β = (0.9, 0.95), weight decay 0.1 on
matrices only, global-norm clip 1, linear warmup over 5 % of the steps then
cosine decay to 0, a batch of 32 sequences of the student's length, the
lm training stream with its own data seed. Steps: 1,000 (tiny, 4.1M tokens)
and 10,000 (small, 328M tokens), fixed numbers rather than multiples of the
student's step_hint, so recalibrating the student's budget never invalidates
a teacher; at tiny they bring the half-size teacher below the student's
target (validation loss 4.69 against 4.75), as SALT's small model is a
competent LM in its own right. The undertrained teacher gets an eighth of them.

Checkpoint, framework-neutral, under ``<data_dir>/lm_slm/<size>/<teacher>/``::

    weights.npz     canonical float32 arrays (``lm.workload.param_specs`` names and
                    layouts, kernels (in, out)): both frameworks load it
    teacher.json    format_version, name, size, config, recipe, weights sha256,
                    the lm data it was trained on (train.bin sha256, vocabulary),
                    training {time_s, flops, steps, tokens, framework, device,
                    validation_loss}; written last (the commit marker)

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


@dataclasses.dataclass(frozen=True)
class TeacherSpec:
    """One teacher: its size relative to the student and its share of the reference steps."""

    name: str
    scale: float
    steps_fraction: float = 1.0


TEACHERS: Dict[str, TeacherSpec] = {
    'half': TeacherSpec('half', 0.5),
    'quarter': TeacherSpec('quarter', 0.25),
    'half_undertrained': TeacherSpec('half_undertrained', 0.5, steps_fraction=0.125),
}
#: Workload variant -> the teacher it uses (None: the base workload).
TEACHER_OF_VARIANT: Dict[Optional[str], str] = {
    None: 'half',
    'quarter_teacher': 'quarter',
    'undertrained_teacher': 'half_undertrained',
}


@dataclasses.dataclass(frozen=True)
class TeacherRecipe:
    """The fixed training recipe of a size's teachers (see the module docstring)."""

    steps: int
    global_batch_size: int
    peak_lr: float
    warmup_fraction: float = 0.05
    beta1: float = 0.9
    beta2: float = 0.95
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    #: Seed of the teacher's training stream (and of its initialization).
    seed: int = 20241024


RECIPES: Dict[str, TeacherRecipe] = {
    # 3e-3 is lm's measured tiny learning rate.
    'tiny': TeacherRecipe(steps=1000, global_batch_size=32, peak_lr=3e-3),
    # A smaller peak for the deeper model.
    'small': TeacherRecipe(steps=10_000, global_batch_size=32, peak_lr=1e-3),
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
    base = RECIPES[size]
    if steps is None:
        steps = max(1, round(base.steps * TEACHERS[name].steps_fraction))
    return dataclasses.replace(base, steps=int(steps))


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
