"""Distillation from a small teacher in PyTorch: SALT, SALT_DS and KD-only (math: ``kd.py``).

A submission is a mode and three lines::

    init_optimizer_state = kd_torch.make_init_optimizer_state('salt')
    update_params = kd_torch.update_params
    data_selection = kd_torch.data_selection

Same functions, same order as ``kd_jax``. The teacher's output carries no
gradient (the workload runs it under ``no_grad``). Underneath is AdamW or
NAdamW (``optimizer``) with the baselines' warmup + cosine schedule and
gradient clipping; under DDP the loss and its normalizer are all-reduced as in
``torch_common``.
"""

from __future__ import annotations

from typing import Any, Dict, Iterator, Optional, Tuple

import torch

from harness import spec
from harness.spec import UserInputError
from submissions._lib import kd, torch_common
from submissions._lib.schedules import warmup_cosine_factor
from submissions._lib.torch_nadamw import NAdamW

TOPK_VALUES, TOPK_INDICES = 'teacher_topk_values', 'teacher_topk_indices'
LOGITS = 'teacher_logits'
TEACHER_KEYS = (TOPK_VALUES, TOPK_INDICES, LOGITS)

Teacher = Optional[Tuple[torch.Tensor, Optional[torch.Tensor]]]


# ---- the loss -------------------------------------------------------------------------------


def token_losses(
    logits: torch.Tensor, targets: torch.Tensor, teacher: Teacher, kd_weight, temperature
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(mixed loss, CE with the labels, CE with the teacher), each (B, T); see kd_jax."""
    z = logits.float()  # (B, T, V)
    lse = torch.logsumexp(z, dim=-1)
    z_y = torch.gather(z, -1, targets[..., None].long())[..., 0]
    label_ce = lse - z_y
    if teacher is None:
        return label_ce, label_ce, torch.zeros_like(label_ce)
    values, indices = teacher
    p_t = torch.softmax(values.float() / temperature, dim=-1)  # renormalized
    z_t = z if indices is None else torch.gather(z, -1, indices.long())
    teacher_ce = lse - (p_t * z_t).sum(-1)
    return (1.0 - kd_weight) * label_ce + kd_weight * teacher_ce, label_ce, teacher_ce


def teacher_targets(workload, batch: Dict[str, Any], settings: kd.KdSettings) -> Teacher:
    """What the loss needs of the teacher for ``batch`` (calls it: on the clock)."""
    if settings.top_k and TOPK_VALUES in batch:
        return batch[TOPK_VALUES], batch[TOPK_INDICES]
    if not settings.top_k and LOGITS in batch:
        return batch[LOGITS], None
    if settings.top_k:
        return workload.teacher_topk(batch, settings.top_k)
    return workload.teacher_logits(batch), None


# ---- optimizer and train step ---------------------------------------------------------------


def build_optimizer(model, hyperparameters, optimizer: str) -> torch.optim.Optimizer:
    """The adamw / nadamw baselines' optimizers exactly, so KD is the only difference."""
    cls = NAdamW if optimizer == 'nadamw' else torch.optim.AdamW
    return cls(
        model.parameters(),
        lr=hyperparameters.learning_rate,
        betas=(1.0 - hyperparameters.one_minus_beta1, hyperparameters.beta2),
        eps=1e-8,
        weight_decay=hyperparameters.weight_decay,
        **({'fused': True} if cls is torch.optim.AdamW else {}),  # As the adamw baseline.
    )


def vocab_size(workload) -> Optional[int]:
    """The student's vocabulary from its embedding's shape (None if the model has none)."""
    try:
        return int(workload.param_shapes['embed.weight'].shape_tuple[0])
    except (KeyError, TypeError, AttributeError):
        return None


def check_teacher(workload, mode: str) -> None:
    try:
        workload.teacher_logits  # noqa: B018 — probing the view
    except AttributeError:
        raise UserInputError(
            f'{mode} distills from a teacher, but workload {workload.name!r} has none: run it '
            "on 'lm_slm' (the lm workload with a teacher)."
        ) from None


def make_init_optimizer_state(mode: str):
    def init_optimizer_state(
        workload: spec.Workload,
        model_params: spec.ParameterContainer,
        model_state: spec.ModelAuxiliaryState,
        hyperparameters: spec.Hyperparameters,
        rng: spec.RandomState,
    ) -> spec.OptimizerState:
        del model_state, rng
        settings = kd.settings_from(hyperparameters, workload.step_hint, mode)
        check_teacher(workload, mode)
        kd.check_top_k(settings, vocab_size(workload))
        optimizer = build_optimizer(model_params, hyperparameters, settings.optimizer)
        step_hint = workload.step_hint
        warmup_factor = torch_common.hparam(hyperparameters, 'warmup_factor', 0.05)
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: warmup_cosine_factor(step, step_hint, warmup_factor)
        )
        return {'optimizer': optimizer, 'scheduler': scheduler, 'settings': settings}

    return init_optimizer_state


def update_params(
    workload: spec.Workload,
    current_param_container: spec.ParameterContainer,
    current_params_types: spec.ParameterTypeTree,
    model_state: spec.ModelAuxiliaryState,
    hyperparameters: spec.Hyperparameters,
    batch: Dict[str, spec.Tensor],
    loss_type: spec.LossType,
    optimizer_state: spec.OptimizerState,
    eval_results,
    global_step: int,
    rng: spec.RandomState,
    train_state=None,
) -> spec.UpdateReturn:
    del current_params_types, loss_type, eval_results, train_state
    model = current_param_container
    settings = optimizer_state['settings']
    kd_weight = kd.kd_weight_at(global_step, settings)
    teacher = teacher_targets(workload, batch, settings) if kd_weight > 0.0 else None
    optimizer = optimizer_state['optimizer']
    optimizer.zero_grad(set_to_none=True)
    logits, new_model_state = workload.model_fn(
        params=model,
        augmented_and_preprocessed_input_batch=batch,
        model_state=model_state,
        mode=spec.ForwardPassMode.TRAIN,
        rng=rng,
        update_batch_norm=True,
        dropout_rate=torch_common.hparam(hyperparameters, 'dropout_rate', 0.0),
    )
    mixed, label_ce, teacher_ce = token_losses(
        logits, batch['targets'], teacher, kd_weight, settings.temperature
    )
    mask = batch.get('weights')
    mask = torch.ones_like(mixed) if mask is None else mask.to(mixed.dtype)
    loss, reported = torch_common.global_mean_loss((mixed * mask).sum(), mask.sum())
    loss.backward()
    grad_clip = torch_common.hparam(hyperparameters, 'grad_clip', None)
    grad_norm = torch.nn.utils.clip_grad_norm_(
        model.parameters(), max_norm=float('inf') if grad_clip is None else grad_clip
    )
    optimizer.step()
    optimizer_state['scheduler'].step()
    if workload.metrics_logger is not None:
        # label_loss and teacher_ce are this rank's (under DDP, its share of the batch).
        with torch.no_grad():
            metrics = {
                'loss': reported,
                'grad_norm': grad_norm.detach(),
                'kd_weight': kd_weight,
                'label_loss': (label_ce * mask).sum() / mask.sum(),
            }
            if teacher is not None:
                metrics['teacher_ce'] = (teacher_ce * mask).sum() / mask.sum()
        workload.metrics_logger.append_scalar_metrics(metrics, global_step)
    return optimizer_state, model, new_model_state


# ---- data selection (SALT_DS) ---------------------------------------------------------------


def masked_median(x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Row medians (the mean of the two middle values) of x over ``valid``; NaN if none.

    Not ``torch.nanmedian``: it returns the lower middle value, numpy and JAX the mean.
    """
    count = valid.sum(-1)
    ordered = torch.sort(torch.where(valid, x, torch.full_like(x, float('inf'))), dim=-1).values
    last = x.shape[-1] - 1
    lower = torch.gather(ordered, -1, ((count - 1) // 2).clamp(0, last)[:, None])[:, 0]
    upper = torch.gather(ordered, -1, (count // 2).clamp(0, last)[:, None])[:, 0]
    return torch.where(count > 0, 0.5 * (lower + upper), torch.full_like(lower, float('nan')))


def sequence_scores(
    values: torch.Tensor, indices: torch.Tensor, targets: torch.Tensor, mask: Optional[torch.Tensor]
) -> torch.Tensor:
    """(P,) SALT_DS scores: median teacher loss over tokens whose target is in the top-k."""
    hit = indices == targets[..., None].to(indices.dtype)  # (P, T, k)
    valid = hit.any(-1)
    if mask is not None:
        valid = valid & (mask > 0)
    loss = -torch.where(hit, values.float(), torch.zeros_like(values, dtype=torch.float32)).sum(-1)
    return masked_median(loss, valid)


def data_selection(
    workload,
    input_queue: Iterator[Dict[str, Any]],
    optimizer_state,
    current_param_container,
    model_state,
    hyperparameters,
    global_step,
    rng,
) -> Dict[str, spec.Tensor]:
    """The next batch; under SALT_DS while ω > 0, the teacher-selected band of a larger pool.

    Under DDP each rank scores and selects within its own share of the pool (every
    rank must keep the same number of rows), so selection is stratified by rank: a
    trajectory close to, not the same as, one process's (tests/integration checks
    the plain baselines, whose trajectory is the same).
    """
    del current_param_container, model_state, hyperparameters, rng
    settings = optimizer_state['settings']
    if not kd.uses_selection(global_step, settings):
        return next(input_queue)
    draws = [next(input_queue) for _ in range(settings.pool_factor)]
    batch_size = int(draws[0]['inputs'].shape[0])
    pool = {key: torch.cat([d[key] for d in draws]) for key in draws[0]}
    # One teacher pass serves both scoring and the KD loss of the kept rows.
    select_k = settings.select_top_k
    if settings.top_k:
        values, indices = workload.teacher_topk(pool, max(select_k, settings.top_k))
        scored = values[..., :select_k], indices[..., :select_k]
    else:
        logits = workload.teacher_logits(pool)
        scored = torch.topk(torch.log_softmax(logits, dim=-1), select_k, dim=-1)
    scores = sequence_scores(*scored, pool['targets'], pool.get('weights'))
    keep = torch.from_numpy(
        kd.band_indices(
            scores.cpu().numpy(), batch_size, settings.low_percentile, settings.high_percentile
        )
    )
    keep = keep.to(pool['inputs'].device)
    batch = {key: value.index_select(0, keep) for key, value in pool.items()}
    if settings.top_k:
        batch[TOPK_VALUES] = values[..., : settings.top_k].index_select(0, keep)
        batch[TOPK_INDICES] = indices[..., : settings.top_k].index_select(0, keep)
    else:
        batch[LOGITS] = logits.index_select(0, keep)
    return batch


prepare_for_eval = torch_common.prepare_for_eval
get_batch_size = torch_common.get_batch_size
