r"""Knowledge distillation from a small teacher LM (SALT, arXiv:2410.18779), framework-free.

The math, written once; ``kd_jax`` and ``kd_torch`` implement it natively and
the numpy references below are what the tests hold them to.

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
choices where the paper is silent (RESEARCH.md marks them unconfirmed), and
τ = 1 with no truncation gives SALT's stated loss exactly.
Gradient in z: softmax(z) − (1 − ω)·onehot(y) − ω·p_T.

Schedule of ω over steps t (0-based), n = ``kd_fraction`` × step_hint, W =
``kd_transition_fraction`` × step_hint:

- ``salt``, ``salt_ds``: ω for t < n; then ``kd_transition``
  ``step``: 0; ``linear_decay``: ω·(n + W − t)/(W + 1) for n <= t < n + W
  (strictly between ω and 0, reaching ω/(W + 1) at t = n + W − 1), 0 after.
- ``kd_only``: ω at every step.

While ω = 0 the teacher is not called at all (no teacher time).

SALT_DS selection (during the steps with ω > 0): draw ``ds_pool_factor`` ×
batch candidate sequences; score each by the median, over its tokens whose true
next token is among the teacher's ``ds_top_k`` likeliest, of the teacher's loss
−log p_T(y) ("learnable": in the top-k; "hard": high loss); a sequence with no
such token scores NaN and ranks lowest. Rank the pool by score (ascending, ties
by position) and keep ``batch`` sequences evenly spaced in rank over the
percentile band [``ds_low_percentile``, ``ds_high_percentile``) of the pool.
The band must hold at least a batch: (high − low)/100 × pool factor >= 1.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Dict, List, Optional

import numpy as np

from harness.errors import UserInputError

MODES = ('salt', 'salt_ds', 'kd_only')
TRANSITIONS = ('step', 'linear_decay')
OPTIMIZERS = ('adamw', 'nadamw')

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


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _integer(value: Any) -> bool:
    return _number(value) and float(value).is_integer()


def _get(hparams: Dict[str, Any], name: str) -> Any:
    return hparams.get(name, DEFAULTS[name])


def validate_hyperparameters(hparams: Dict[str, Any], mode: str) -> List[str]:
    """Every problem with the distillation hyperparameters of ``mode``, as messages."""
    problems = []
    weight = _get(hparams, 'kd_weight')
    if not _number(weight) or not 0.0 <= weight <= 1.0:
        problems.append(
            f'kd_weight = {weight!r} is invalid: ω must lie in [0, 1] '
            '(0: plain next-token loss, 1: teacher only).'
        )
    temperature = _get(hparams, 'kd_temperature')
    if not _number(temperature) or temperature <= 0:
        problems.append(f'kd_temperature = {temperature!r} is invalid: τ must be > 0.')
    top_k = _get(hparams, 'kd_top_k')
    if not _integer(top_k) or top_k < 0:
        problems.append(
            f'kd_top_k = {top_k!r} is invalid: an integer >= 0 (0 = the whole '
            'distribution; k <= the vocabulary size); in a search space give it as '
            'feasible_points, since a range samples fractions.'
        )
    optimizer = _get(hparams, 'optimizer')
    if optimizer not in OPTIMIZERS:
        problems.append(f'optimizer = {optimizer!r} is invalid: one of {", ".join(OPTIMIZERS)}.')
    if mode in ('salt', 'salt_ds'):
        fraction = _get(hparams, 'kd_fraction')
        if not _number(fraction) or not 0.0 <= fraction <= 1.0:
            problems.append(
                f'kd_fraction = {fraction!r} is invalid: n_KD as a fraction of '
                'step_hint must lie in [0, 1].'
            )
        transition = _get(hparams, 'kd_transition')
        if transition not in TRANSITIONS:
            problems.append(
                f'kd_transition = {transition!r} is invalid: one of {", ".join(TRANSITIONS)}.'
            )
        window = _get(hparams, 'kd_transition_fraction')
        if not _number(window) or not 0.0 <= window <= 1.0:
            problems.append(
                f'kd_transition_fraction = {window!r} is invalid: the decay window '
                'as a fraction of step_hint must lie in [0, 1].'
            )
    if mode == 'salt_ds':
        problems += _selection_problems(hparams)
    return problems


def _selection_problems(hparams: Dict[str, Any]) -> List[str]:
    problems = []
    factor = _get(hparams, 'ds_pool_factor')
    if not _integer(factor) or factor < 1:
        problems.append(
            f'ds_pool_factor = {factor!r} is invalid: an integer >= 1 (candidates '
            'drawn per selected sequence).'
        )
    select_k = _get(hparams, 'ds_top_k')
    if not _integer(select_k) or select_k < 1:
        problems.append(f'ds_top_k = {select_k!r} is invalid: an integer >= 1 (the paper uses 10).')
    low, high = _get(hparams, 'ds_low_percentile'), _get(hparams, 'ds_high_percentile')
    band_ok = True
    for name, value in (('ds_low_percentile', low), ('ds_high_percentile', high)):
        if not _number(value) or not 0.0 <= value <= 100.0:
            problems.append(f'{name} = {value!r} is invalid: a percentile in [0, 100].')
            band_ok = False
    if band_ok and low >= high:
        problems.append(f'ds_low_percentile ({low}) must be below ds_high_percentile ({high}).')
    elif band_ok and _integer(factor) and factor >= 1 and (high - low) / 100.0 * factor < 1.0:
        problems.append(
            f'the band [{low}, {high}) of a pool of {factor} x batch holds '
            f'{(high - low) / 100.0 * factor:.2f} x batch sequences, less than one batch: '
            'widen the band or raise ds_pool_factor.'
        )
    return problems


def settings_from(hparams: Any, step_hint: int, mode: str) -> KdSettings:
    """KdSettings from a trial's hyperparameters (namedtuple or dict); UserInputError if bad."""
    if mode not in MODES:
        raise ValueError(f'unknown distillation mode {mode!r}; known: {", ".join(MODES)}')
    values = hparams._asdict() if hasattr(hparams, '_asdict') else dict(hparams or {})
    problems = validate_hyperparameters(values, mode)
    if problems:
        raise UserInputError(
            f'Invalid {mode} hyperparameters ({len(problems)} problem(s)):\n  - '
            + '\n  - '.join(problems)
        )

    def get(name):
        return _get(values, name)

    kd_steps = None if mode == 'kd_only' else int(round(get('kd_fraction') * step_hint))
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
        window_steps=int(round(get('kd_transition_fraction') * step_hint)),
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
