r"""Knowledge distillation from a small teacher LM (SALT, arXiv:2410.18779), framework-free.

The math, written once (see docs/methods.md, section SALT); ``kd_jax`` and
``kd_torch`` implement it natively and the numpy references below are what the
tests hold them to. Here too: the hyperparameter checks, the settings of a
trial, and what both frameworks ask of the teacher.

Loss per token (z: the student's logits at one position, y: the true next
token, ω: ``kd_weight``, τ: ``kd_temperature``)::

    p_T      = softmax(u / τ) over the teacher's logits u           (kd_top_k = 0)
             = softmax(ℓ_S / τ) over S, 0 elsewhere                 (kd_top_k = k)
               where S is the teacher's k likeliest tokens and ℓ their log-probabilities:
               the truncated distribution, renormalized
    CE_label = logsumexp(z) − z_y                                   (= −log p_θ(y))
    CE_T     = −Σ_v p_T,v · log p_θ,v = logsumexp(z) − Σ_v p_T,v · z_v
    ℓ        = (1 − ω)·CE_label + ω·CE_T = logsumexp(z) − (1 − ω)·z_y − ω·Σ_v p_T,v·z_v

averaged over valid tokens (the batch's ``weights`` mask when present). The
student is read at temperature 1 -- its own next-token distribution, the one
evaluated -- and only the teacher's is tempered; no τ² factor (that factor
balances tempered student gradients, which we do not have). Both are our
choices where the paper is silent, and τ = 1 with no truncation gives SALT's
stated loss exactly.
Gradient in z: softmax(z) − (1 − ω)·onehot(y) − ω·p_T.

Schedule of ω over steps t (0-based), n = ``kd_fraction`` × H, W =
``kd_transition_fraction`` × H, where H is the run's own horizon: the steps the
reference baseline (the base optimizer, calibrated) needs to reach the target,
``workload.reference_steps_to_target`` -- not step_hint, the steps that fit in
the whole budget (about 3× as many), which would put the switch after the
target is met. The paper distills for about the first 17 % of training.

- ``salt``, ``salt_ds``: ω for t < n; then ``kd_transition``
  ``step``: 0; ``linear_decay``: ω·(n + W − t)/(W + 1) for n <= t < n + W
  (strictly between ω and 0, reaching ω/(W + 1) at t = n + W − 1), 0 after.
- ``kd_only``: ω at every step.

While ω = 0 the teacher is not called at all (no teacher time). Every step
reports its stage (``kd_stage``: 0 distilling at full ω, 1 in the linear decay,
2 plain next-token training) through ``workload.metrics_logger``, so the trial
says which stage it was in when it met the target.

SALT_DS selection (during the steps with ω > 0): draw ``ds_pool_factor`` ×
batch candidate sequences; score each by the median, over its tokens whose true
next token is among the teacher's ``ds_top_k`` likeliest, of the teacher's loss
−log p_T(y) ("learnable": in the top-k; "hard": high loss); a sequence with no
such token scores NaN and ranks lowest. Rank the pool by score (ascending, ties
by position) and keep ``batch`` sequences evenly spaced in rank over the
percentile band [``ds_low_percentile``, ``ds_high_percentile``) of the pool.
The band must hold at least a batch: (high − low)/100 × pool factor >= 1.

Underneath, in every mode, is a base optimizer, the hyperparameter
``optimizer``: ``adamw`` (the default) or ``nadamw``, built exactly as the
adamw / nadamw baselines build theirs (``jax_common.adam_tx``,
``torch_common.adam_optimizer``), with their warmup + cosine schedule and
gradient clipping, so that distillation is the only difference.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Dict, List, Mapping, Optional, Tuple

import numpy as np

from harness.errors import UserInputError
from submissions._lib import common, hparam_checks
from submissions._lib.hparam_checks import integer, number, one_of

MODES = ('salt', 'salt_ds', 'kd_only')
TRANSITIONS = ('step', 'linear_decay')
#: ``kd_stage`` values reported each step: index into this tuple.
STAGES = ('distill', 'transition', 'plain')
#: The base optimizer, hyperparameter ``optimizer``: the adamw or nadamw baseline's, exactly.
OPTIMIZERS = common.BASE_OPTIMIZERS

DEFAULTS: Dict[str, Any] = {
    'kd_weight': 0.5,
    'kd_temperature': 1.0,
    'kd_top_k': 0,
    'kd_fraction': 0.2,
    'kd_transition': 'step',
    'kd_transition_fraction': 0.05,
    'optimizer': 'adamw',
    'ds_pool_factor': 2,
    'ds_top_k': 10,
    'ds_low_percentile': 50.0,
    'ds_high_percentile': 100.0,
}

#: Keys that SALT_DS adds to a selected batch: the teacher's output for the KD loss.
TOPK_VALUES, TOPK_INDICES = 'teacher_topk_values', 'teacher_topk_indices'
LOGITS = 'teacher_logits'
TEACHER_KEYS = (TOPK_VALUES, TOPK_INDICES, LOGITS)


@dataclasses.dataclass(frozen=True)
class KdSettings:
    """The distillation settings of one trial (step counts already resolved)."""

    mode: str
    weight: float
    temperature: float
    top_k: int
    #: Steps of full-weight distillation; None: every step (kd_only).
    kd_steps: Optional[int]
    transition: str
    window_steps: int
    optimizer: str
    pool_factor: int = 1
    select_top_k: int = 10
    low_percentile: float = 0.0
    high_percentile: float = 100.0


# ---- hyperparameter checks ------------------------------------------------------------------

#: Every mode: the base optimizer's rules, the loss's and the choice of base optimizer.
_KD_RULES = {
    **hparam_checks.ADAM,
    'optimizer': one_of(OPTIMIZERS, 'the base optimizer: the adamw or nadamw baseline'),
    'kd_weight': number(0, 1, symbol='ω', hint='0: plain next-token loss, 1: teacher only'),
    'kd_temperature': number(0, low_open=True, symbol='τ'),
    'kd_top_k': integer(
        0,
        '0 = the whole distribution; k <= the vocabulary size; in a search space give it as '
        'feasible_points, since a range samples fractions',
    ),
}
#: SALT's stage switch.
_SWITCH_RULES = {
    'kd_fraction': number(
        0, 1, hint="n_KD as a fraction of the reference baseline's steps to the target"
    ),
    'kd_transition': one_of(TRANSITIONS),
    'kd_transition_fraction': number(
        0, 1, hint="the decay window as a fraction of the reference baseline's steps to the target"
    ),
}
#: SALT_DS's selection.
_SELECTION_RULES = {
    'ds_pool_factor': integer(1, 'candidates drawn per selected sequence'),
    'ds_top_k': integer(1, 'the paper uses 10'),
    'ds_low_percentile': number(0, 100, hint='a percentile'),
    'ds_high_percentile': number(0, 100, hint='a percentile'),
}
RULES = {
    'kd_only': _KD_RULES,
    'salt': {**_KD_RULES, **_SWITCH_RULES},
    'salt_ds': {**_KD_RULES, **_SWITCH_RULES, **_SELECTION_RULES},
}


def _band_problems(values: Mapping[str, Any]) -> List[str]:
    """The selection band [low, high) must be a band and hold at least one batch.

    Over a search space, the narrowest band it allows is checked (largest low,
    smallest high, smallest pool); values that break their own rule are
    reported by it and skipped here.
    """

    def valid(name, rule):
        points = hparam_checks.candidates(values.get(name, DEFAULTS[name]))
        return [v for v in points if rule.accepts(v)]

    lows = valid('ds_low_percentile', _SELECTION_RULES['ds_low_percentile'])
    highs = valid('ds_high_percentile', _SELECTION_RULES['ds_high_percentile'])
    factors = valid('ds_pool_factor', _SELECTION_RULES['ds_pool_factor'])
    if not lows or not highs:
        return []
    low, high = max(lows), min(highs)
    if low >= high:
        return [f'ds_low_percentile ({low}) must be below ds_high_percentile ({high}).']
    if factors and (high - low) / 100.0 * min(factors) < 1.0:
        factor = min(factors)
        return [
            f'the band [{low}, {high}) of a pool of {factor} x batch holds '
            f'{(high - low) / 100.0 * factor:.2f} x batch sequences, less than one batch: '
            'widen the band or raise ds_pool_factor.'
        ]
    return []


def validate_hyperparameters(hparams: Mapping[str, Any], mode: str) -> List[str]:
    """Every problem with the hyperparameters of distillation ``mode``, as messages."""
    cross_checks = (_band_problems,) if mode == 'salt_ds' else ()
    return hparam_checks.problems(RULES[mode], hparams, cross_checks)


def settings_from(hparams: Any, horizon_steps: int, mode: str) -> KdSettings:
    """KdSettings from a trial's hyperparameters (namedtuple or dict); UserInputError if bad.

    ``horizon_steps``: the reference baseline's steps to the target (see ``horizon_steps()``).
    """
    if mode not in MODES:
        raise ValueError(f'unknown distillation mode {mode!r}; known: {", ".join(MODES)}')
    values = hparams._asdict() if hasattr(hparams, '_asdict') else dict(hparams or {})
    hparam_checks.raise_if_any(mode, validate_hyperparameters(values, mode))

    def get(name):
        return values.get(name, DEFAULTS[name])

    kd_steps = None if mode == 'kd_only' else int(round(get('kd_fraction') * horizon_steps))
    selection = {}
    if mode == 'salt_ds':
        selection = dict(
            pool_factor=int(get('ds_pool_factor')),
            select_top_k=int(get('ds_top_k')),
            low_percentile=float(get('ds_low_percentile')),
            high_percentile=float(get('ds_high_percentile')),
        )
    return KdSettings(
        mode=mode,
        weight=float(get('kd_weight')),
        temperature=float(get('kd_temperature')),
        top_k=int(get('kd_top_k')),
        kd_steps=kd_steps,
        transition=get('kd_transition'),
        window_steps=int(round(get('kd_transition_fraction') * horizon_steps)),
        optimizer=get('optimizer'),
        **selection,
    )


def check_top_k(settings: KdSettings, vocab_size: Optional[int]) -> None:
    """UserInputError if a top-k exceeds the vocabulary (None: unknown, checked by the teacher)."""
    if vocab_size is None:
        return
    problems = [
        f'{name} = {k} is larger than the vocabulary ({vocab_size} tokens)'
        for name, k in (
            ('kd_top_k', settings.top_k),
            ('ds_top_k', settings.select_top_k if settings.mode == 'salt_ds' else 0),
        )
        if k > vocab_size
    ]
    if problems:
        raise UserInputError(
            '; '.join(problems) + ': lower it (kd_top_k = 0 uses the whole distribution).'
        )


# ---- the teacher ----------------------------------------------------------------------------


def check_teacher(workload, mode: str) -> None:
    """UserInputError unless the workload has a teacher to distill from."""
    try:
        workload.teacher_logits  # noqa: B018 — probing the view
    except AttributeError:
        raise UserInputError(
            f'{mode} distills from a teacher, but workload {workload.name!r} has none: run it '
            "on 'lm_slm' (the lm workload with a teacher)."
        ) from None


def vocab_size(workload, embedding: Tuple[str, ...]) -> Optional[int]:
    """The student's vocabulary: rows of the parameter at path ``embedding`` in
    ``workload.param_shapes`` (None if the model has no such parameter)."""
    try:
        shape = workload.param_shapes
        for key in embedding:
            shape = shape[key]
        return int(shape.shape_tuple[0])
    except (KeyError, TypeError, AttributeError):
        return None


def horizon_steps(workload, mode: str) -> int:
    """The run's horizon: the reference baseline's steps to the target (UserInputError if
    the workload does not know them)."""
    steps = getattr(workload, 'reference_steps_to_target', None)
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise UserInputError(
            f'{mode} sets its distillation phase as a fraction of the reference baseline\'s '
            f'steps to the target (workload.reference_steps_to_target), which workload '
            f'{workload.name!r} does not know (got {steps!r}): run `timetrial calibrate` for '
            "it, or run on 'lm_slm', which ships them."
        )
    return steps


def trial_settings(
    workload, hyperparameters: Any, mode: str, embedding: Tuple[str, ...]
) -> KdSettings:
    """The settings of a trial, checked against its workload (UserInputError if bad)."""
    check_teacher(workload, mode)
    # kd_only distills at every step: it needs no horizon.
    horizon = 0 if mode == 'kd_only' else horizon_steps(workload, mode)
    settings = settings_from(hyperparameters, horizon, mode)
    check_top_k(settings, vocab_size(workload, embedding))
    return settings


def teacher_targets(workload, batch: Dict[str, Any], settings: KdSettings):
    """What the loss needs of the teacher for ``batch``: (logits, None) or (top-k
    log-probabilities, token ids); from the batch when SALT_DS put them there, else
    from a call of the teacher (on the clock)."""
    if settings.top_k and TOPK_VALUES in batch:
        return batch[TOPK_VALUES], batch[TOPK_INDICES]
    if not settings.top_k and LOGITS in batch:
        return batch[LOGITS], None
    if settings.top_k:
        return workload.teacher_topk(batch, settings.top_k)
    return workload.teacher_logits(batch), None


def student_batch(batch: Dict[str, Any]) -> Dict[str, Any]:
    """``batch`` without the teacher's outputs that SALT_DS added."""
    return {k: v for k, v in batch.items() if k not in TEACHER_KEYS}


# ---- the schedule ---------------------------------------------------------------------------


def kd_weight_at(step: int, settings: KdSettings) -> float:
    """ω at 0-based ``step`` (see the module docstring)."""
    if settings.kd_steps is None or step < settings.kd_steps:
        return settings.weight
    if settings.transition == 'linear_decay':
        window = settings.window_steps
        remaining = settings.kd_steps + window - step
        if remaining > 0:
            return settings.weight * remaining / (window + 1)
    return 0.0


def kd_stage(step: int, settings: KdSettings) -> int:
    """The index in ``STAGES`` of 0-based ``step``: distilling, decaying or plain."""
    if settings.kd_steps is None or step < settings.kd_steps:
        return 0
    return 1 if kd_weight_at(step, settings) > 0.0 else 2


def uses_selection(step: int, settings: KdSettings) -> bool:
    return settings.mode == 'salt_ds' and kd_weight_at(step, settings) > 0.0


# ---- numpy references ------------------------------------------------------------------------


def _logsumexp(x: np.ndarray) -> np.ndarray:
    top = x.max(-1, keepdims=True)
    return (top + np.log(np.exp(x - top).sum(-1, keepdims=True)))[..., 0]


def teacher_distribution(
    values: np.ndarray, indices: Optional[np.ndarray], vocab_size: int, temperature: float
) -> np.ndarray:
    """p_T as a dense (..., V) float64 array: softmax(values/τ), scattered to ``indices``."""
    scaled = np.asarray(values, np.float64) / temperature
    probs = np.exp(scaled - _logsumexp(scaled)[..., None])
    if indices is None:
        return probs
    dense = np.zeros(probs.shape[:-1] + (vocab_size,))
    np.put_along_axis(dense, np.asarray(indices), probs, axis=-1)
    return dense


def reference_token_loss(
    logits: np.ndarray,
    targets: np.ndarray,
    teacher_values: np.ndarray,
    teacher_indices: Optional[np.ndarray],
    weight: float,
    temperature: float,
) -> np.ndarray:
    """(1 − ω)·CE(y, p_θ) + ω·CE(p_T, p_θ) per token, float64, shape of ``targets``."""
    z = np.asarray(logits, np.float64)
    log_p = z - _logsumexp(z)[..., None]
    p_t = teacher_distribution(teacher_values, teacher_indices, z.shape[-1], temperature)
    label = -np.take_along_axis(log_p, np.asarray(targets)[..., None], -1)[..., 0]
    teacher = -(p_t * log_p).sum(-1)
    return (1.0 - weight) * label + weight * teacher


def reference_sequence_scores(
    values: np.ndarray, indices: np.ndarray, targets: np.ndarray, mask: Optional[np.ndarray] = None
) -> np.ndarray:
    """(P,) median teacher loss over each sequence's valid tokens whose target is in the top-k."""
    hit = np.asarray(indices) == np.asarray(targets)[..., None]  # (P, T, k)
    valid = hit.any(-1)
    if mask is not None:
        valid &= np.asarray(mask) > 0
    loss = -(np.asarray(values, np.float64) * hit).sum(-1)  # (P, T)
    out = np.full(loss.shape[0], np.nan)
    for row in range(loss.shape[0]):
        if valid[row].any():
            out[row] = np.median(loss[row][valid[row]])
    return out


def band_indices(
    scores: np.ndarray, batch_size: int, low_percentile: float, high_percentile: float
) -> np.ndarray:
    """Pool rows to keep: ``batch_size`` evenly spaced in rank over the percentile band.

    Ranks ascend by score (NaN lowest, ties by position); returned in pool order.
    """
    scores = np.asarray(scores, np.float64)
    pool = scores.shape[0]
    order = np.argsort(np.where(np.isnan(scores), -np.inf, scores), kind='stable')
    low = int(math.floor(low_percentile / 100.0 * pool))
    high = int(math.ceil(high_percentile / 100.0 * pool))
    width = high - low
    if width < batch_size:
        raise UserInputError(
            f'The selection band [{low_percentile}, {high_percentile}) of a pool of {pool} '
            f'sequences holds {width}, fewer than the batch of {batch_size}: widen the band or '
            'raise ds_pool_factor.'
        )
    picks = low + (np.arange(batch_size) * width) // batch_size
    return np.sort(order[picks])
