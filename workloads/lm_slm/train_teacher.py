"""Train one lm_slm teacher with the reference recipe and save its checkpoint.

    python -m workloads.lm_slm.train_teacher --size small --teacher half --data-dir DIR

(``timetrial prepare lm_slm`` calls ``ensure_teacher`` for every teacher it
needs.) The recipe is ``teacher.RECIPES`` (AdamW, warmup + cosine, see
``teacher.py``), its steps cut to the epoch cap of the data at hand; the model,
the training stream (the lm *training* split) and the evaluation (lm's
validation split, once, after training) are lm's, at the teacher's config.
Training time is the sum of the synchronized step times, first-step
compilation included, evaluation excluded: the cost a user pays once to get the
teacher. FLOPs are ``steps × batch × lm.flops_per_sequence``.
Either framework trains it (default: JAX when installed); the checkpoint is
framework-neutral, so a teacher trained with one is used by both.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import importlib.util
import math
import platform
import time
from typing import Any, Callable, Dict, Optional

import numpy as np

from harness import spec
from harness.errors import DataNotPreparedError, UserInputError
from workloads.lm import data as lm_data
from workloads.lm import workload as lm
from workloads.lm_slm import teacher as teacher_lib

Log = Callable[[str], None]


def default_framework() -> str:
    """JAX when installed, else PyTorch (the teacher checkpoint serves both)."""
    return 'jax' if importlib.util.find_spec('jax') is not None else 'pytorch'


def has_accelerator(framework: str) -> bool:
    if framework == 'jax':
        import jax

        return jax.default_backend() != 'cpu'
    import torch

    return torch.cuda.is_available()


def student_config(size: str, lm_meta: Dict[str, Any]) -> lm.LmConfig:
    return dataclasses.replace(
        lm.SIZES[size], vocab_size=lm.model_vocab_size(lm_meta['vocab_size'])
    )


def _lr_factor(step: int, recipe: teacher_lib.TeacherRecipe) -> float:
    """Linear warmup then cosine to 0 over the recipe's steps (step is 0-based)."""
    warm = max(1, int(recipe.warmup_fraction * recipe.steps))
    if step < warm:
        return (step + 1) / warm
    progress = min(1.0, (step - warm) / max(1, recipe.steps - warm))
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def _jax_trainer(model, params, recipe: teacher_lib.TeacherRecipe):
    import jax
    import jax.numpy as jnp
    import optax

    warm = max(1, int(recipe.warmup_fraction * recipe.steps))

    def schedule(count):  # _lr_factor, traceable
        count = jnp.asarray(count, jnp.float32)
        progress = jnp.clip((count - warm) / max(1, recipe.steps - warm), 0.0, 1.0)
        return recipe.peak_lr * jnp.where(
            count < warm, (count + 1) / warm, 0.5 * (1.0 + jnp.cos(jnp.pi * progress))
        )

    decay_mask = jax.tree_util.tree_map(lambda p: p.ndim >= 2, params)
    tx = optax.chain(
        optax.clip_by_global_norm(recipe.grad_clip),
        optax.adamw(
            schedule,
            b1=recipe.beta1,
            b2=recipe.beta2,
            weight_decay=recipe.weight_decay,
            mask=decay_mask,
        ),
    )

    def loss_fn(p, batch):
        logits, _ = model.model_fn(p, batch, None, spec.ForwardPassMode.TRAIN, None, True)
        out = model.loss_fn(batch['targets'], logits)
        return out['summed'] / out['n_valid_examples']

    @jax.jit
    def train_step(p, opt_state, batch):
        value, grads = jax.value_and_grad(loss_fn)(p, batch)
        updates, opt_state = tx.update(grads, opt_state, p)
        return optax.apply_updates(p, updates), opt_state, value

    state = {'params': params, 'opt': tx.init(params)}

    def step(batch) -> float:
        state['params'], state['opt'], value = train_step(state['params'], state['opt'], batch)
        return float(jax.block_until_ready(value))

    return step, lambda: state['params']


def _torch_trainer(model, module, recipe: teacher_lib.TeacherRecipe):
    import torch

    decay = [p for p in module.parameters() if p.ndim >= 2]
    no_decay = [p for p in module.parameters() if p.ndim < 2]
    opt = torch.optim.AdamW(
        [
            {'params': decay, 'weight_decay': recipe.weight_decay},
            {'params': no_decay, 'weight_decay': 0.0},
        ],
        lr=recipe.peak_lr,
        betas=(recipe.beta1, recipe.beta2),
    )
    counter = {'step': 0}

    def step(batch) -> float:
        for group in opt.param_groups:
            group['lr'] = recipe.peak_lr * _lr_factor(counter['step'], recipe)
        opt.zero_grad(set_to_none=True)
        logits, _ = model.model_fn(module, batch, None, spec.ForwardPassMode.TRAIN, None, True)
        out = model.loss_fn(batch['targets'], logits)
        value = out['summed'] / out['n_valid_examples']
        value.backward()
        torch.nn.utils.clip_grad_norm_(module.parameters(), recipe.grad_clip)
        opt.step()
        counter['step'] += 1
        return value.item()  # .item() synchronizes the device

    return step, lambda: module


def _make_model(framework: str, size: str, config: lm.LmConfig):
    if framework == 'jax':
        from workloads.lm_slm.jax_impl import TeacherModelJax

        return TeacherModelJax(size, config)
    from workloads.lm_slm.torch_impl import TeacherModelTorch

    return TeacherModelTorch(size, config)


def _rngs(framework: str, seed: int):
    """(init, data) random states of the framework for the recipe's seed."""
    if framework == 'jax':
        import jax

        return jax.random.PRNGKey(seed), jax.random.PRNGKey(seed + 1)
    return np.array([0, seed], np.uint32), np.array([0, seed + 1], np.uint32)


def _device(framework: str) -> str:
    if framework == 'jax':
        import jax

        devices = jax.devices()
        return f'{len(devices)} x {devices[0].device_kind}'
    import torch

    if torch.cuda.is_available():
        return f'{torch.cuda.device_count()} x {torch.cuda.get_device_name(0)}'
    return f'cpu ({platform.machine()}, {torch.get_num_threads()} threads)'


def train_teacher(
    data_dir: str,
    size: str,
    name: str,
    *,
    framework: Optional[str] = None,
    steps: Optional[int] = None,
    log: Log = print,
) -> Dict[str, Any]:
    """Train teacher ``name`` of ``size`` on the prepared lm data; save it; return its meta."""
    if name not in teacher_lib.TEACHERS:
        raise UserInputError(
            f'Unknown lm_slm teacher {name!r}; known: {", ".join(teacher_lib.TEACHERS)}.'
        )
    if size not in teacher_lib.RECIPES:
        raise UserInputError(
            f'Unknown lm_slm size {size!r}; known: {", ".join(teacher_lib.RECIPES)}.'
        )
    framework = framework or default_framework()
    lm_meta = lm_data.load_meta(data_dir)
    config = teacher_lib.teacher_config(
        student_config(size, lm_meta), teacher_lib.TEACHERS[name].scale
    )
    recipe = teacher_lib.recipe_for(size, name, steps)
    train_tokens = int(lm_meta['train_tokens'])
    # The schedule runs over the steps actually taken (the epoch cap may cut them).
    run = dataclasses.replace(
        recipe, steps=teacher_lib.capped_steps(recipe, config.seq_len, train_tokens)
    )
    model = _make_model(framework, size, config)
    model.check_data(data_dir)
    init_rng, data_rng = _rngs(framework, recipe.seed)
    params, _ = model.init_model_fn(init_rng)
    queue = model._build_input_queue(data_rng, 'train', data_dir, recipe.global_batch_size)
    trainer = _jax_trainer if framework == 'jax' else _torch_trainer
    step, current = trainer(model, params, run)
    capped = f' (cut from {recipe.steps} by the {recipe.max_epochs:g}-epoch cap)'
    log(
        f'lm_slm: training teacher {name} ({config.n_layers} x {config.d_model}, '
        f'{lm.count_params(config):,} params) for size {size}: {run.steps} steps of '
        f'{recipe.global_batch_size} x {config.seq_len} tokens with {framework}'
        + (capped if run.steps < recipe.steps else '')
    )

    train_s, loss = 0.0, float('nan')
    report_every = max(1, run.steps // 10)
    for i in range(run.steps):
        batch = next(queue)
        start = time.perf_counter()
        loss = step(batch)  # returns a host float: the device is synchronized
        train_s += time.perf_counter() - start
        if not math.isfinite(loss):
            raise RuntimeError(
                f'lm_slm teacher {name} diverged at step {i + 1} (loss {loss}); '
                'the reference recipe should not do this: please report it.'
            )
        if (i + 1) % report_every == 0 or i + 1 == run.steps:
            log(
                f'lm_slm: teacher:{name} step:{i + 1}/{run.steps} train_loss:{loss:.4f} '
                f'train_time_s:{train_s:.1f}'
            )
    metrics = model.eval_model(
        model.eval_batch_size, current(), None, None, data_dir, None, run.steps
    )
    tokens = run.steps * recipe.global_batch_size * config.seq_len
    meta = {
        'name': name,
        'size': size,
        'role': teacher_lib.TEACHERS[name].role,
        'config': teacher_lib.config_dict(config),
        'param_count': lm.count_params(config),
        'recipe': dataclasses.asdict(recipe),
        'data': teacher_lib.data_fingerprint(lm_meta),
        'training': {
            'split': 'train',
            'time_s': train_s,
            'flops': run.steps * recipe.global_batch_size * lm.flops_per_sequence(config),
            'steps': run.steps,
            'tokens': tokens,
            'epochs': tokens / train_tokens,
            'max_epochs': recipe.max_epochs,
            'framework': framework,
            'device': _device(framework),
            'final_train_loss': loss,
            'validation_loss': metrics['validation/loss'],
            'finished_at': dt.datetime.now(dt.timezone.utc).isoformat(timespec='seconds'),
        },
    }
    meta = teacher_lib.save(
        teacher_lib.teacher_dir(data_dir, size, name), model.params_to_canonical(current()), meta
    )
    log(
        f'lm_slm: teacher {name} ({size}) saved: validation/loss '
        f'{metrics["validation/loss"]:.4f}, {tokens:,} tokens ({tokens / train_tokens:.2f} '
        f'epochs), {train_s:.1f} s, {meta["training"]["flops"]:.3g} FLOPs'
    )
    return meta


def is_current(data_dir: str, size: str, name: str, steps: Optional[int] = None) -> bool:
    """A teacher is prepared, trained with today's recipe and config on today's lm data."""
    try:
        meta = teacher_lib.load_meta(data_dir, size, name)
        lm_meta = lm_data.load_meta(data_dir)
    except DataNotPreparedError:
        return False
    config = teacher_lib.teacher_config(
        student_config(size, lm_meta), teacher_lib.TEACHERS[name].scale
    )
    return (
        meta.get('recipe') == dataclasses.asdict(teacher_lib.recipe_for(size, name, steps))
        and meta.get('config') == teacher_lib.config_dict(config)
        and meta.get('data') == teacher_lib.data_fingerprint(lm_meta)
    )


def ensure_teacher(
    data_dir: str,
    size: str,
    name: str,
    *,
    framework: Optional[str] = None,
    steps: Optional[int] = None,
    log: Log = print,
) -> Dict[str, Any]:
    """Train the teacher unless an up-to-date one is already there; return its meta."""
    if is_current(data_dir, size, name, steps):
        log(f'lm_slm: teacher {name} ({size}) is already prepared; nothing to do')
        return teacher_lib.load_meta(data_dir, size, name)
    return train_teacher(data_dir, size, name, framework=framework, steps=steps, log=log)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--size', required=True, choices=sorted(teacher_lib.RECIPES))
    parser.add_argument('--teacher', default='half', choices=sorted(teacher_lib.TEACHERS))
    parser.add_argument('--data-dir', required=True)
    parser.add_argument('--framework', choices=spec.FRAMEWORKS, default=None)
    parser.add_argument('--force', action='store_true', help='retrain even if up to date')
    args = parser.parse_args(argv)
    if args.force:
        train_teacher(args.data_dir, args.size, args.teacher, framework=args.framework)
    else:
        ensure_teacher(args.data_dir, args.size, args.teacher, framework=args.framework)


if __name__ == '__main__':
    main()
