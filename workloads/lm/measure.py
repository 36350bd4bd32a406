"""A bare AdamW training loop for the lm workload: step throughput and time to a loss.

This is how the shipped ``tiny`` budget was measured (see ``workload.BUDGETS``);
run it to re-measure on another machine::

    python -m workloads.lm.measure --framework jax --data-dir DATA --eval-every-steps 25

It uses the workload's own model, data and eval, but no harness: AdamW
(β = 0.9, 0.95, weight decay 0.1 on matrices only, global-norm clip 1), linear
warmup then cosine decay to zero over ``--steps``. The clock covers the
training steps only (device synchronized before each read); evaluation runs
every ``--eval-every-s`` seconds of training time (or ``--eval-every-steps``), off
the clock, and at the end. Output lines are greppable ``key:value`` pairs.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import numpy as np

from harness import spec
from workloads._common import measure_steps
from workloads.lm import INFO


def _lr_at(step: int, peak_lr: float, total: int, warmup: int) -> float:
    if step < warmup:
        return peak_lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return peak_lr * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def _jax_trainer(workload, params, args):
    import jax
    import optax

    import jax.numpy as jnp

    def schedule(step):  # _lr_at, traceable.
        warm = args.lr * (step + 1) / args.warmup
        progress = jnp.clip((step - args.warmup) / max(1, args.steps - args.warmup), 0.0, 1.0)
        return jnp.where(
            step < args.warmup, warm, args.lr * 0.5 * (1.0 + jnp.cos(jnp.pi * progress))
        )

    decay_mask = jax.tree_util.tree_map(lambda p: p.ndim >= 2, params)
    tx = optax.chain(
        optax.clip_by_global_norm(1.0),
        optax.adamw(schedule, b1=0.9, b2=0.95, weight_decay=0.1, mask=decay_mask),
    )
    return measure_steps.jax_step(workload, tx, params, tx.init(params))


def _torch_trainer(workload, model, args):
    import torch

    decay = [p for p in model.parameters() if p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.ndim < 2]
    opt = torch.optim.AdamW(
        [{'params': decay, 'weight_decay': 0.1}, {'params': no_decay, 'weight_decay': 0.0}],
        lr=args.lr,
        betas=(0.9, 0.95),
    )
    return measure_steps.torch_step(
        workload, model, opt, lambda step: _lr_at(step, args.lr, args.steps, args.warmup))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--framework', choices=spec.FRAMEWORKS, required=True)
    parser.add_argument('--size', default='tiny')
    parser.add_argument('--data-dir', required=True)
    parser.add_argument('--batch-size', type=int, default=None)
    parser.add_argument('--lr', type=float, default=2e-3)
    parser.add_argument('--steps', type=int, default=1500)
    parser.add_argument('--warmup', type=int, default=None, help='default: 5%% of --steps')
    parser.add_argument('--eval-every-s', type=float, default=10.0)
    parser.add_argument(
        '--eval-every-steps',
        type=int,
        default=None,
        help='evaluate every this many steps instead (loss-vs-step curves '
        'do not depend on machine load)',
    )
    parser.add_argument(
        '--max-train-s', type=float, default=None, help='stop after this much training time'
    )
    parser.add_argument(
        '--stop-at-step', type=int, default=None, help='stop early (the schedule keeps --steps)'
    )
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args(argv)
    args.warmup = args.warmup or max(1, args.steps // 20)

    workload = measure_steps.make_workload(INFO, args.framework, args.size)
    workload.check_data(args.data_dir)
    batch_size = args.batch_size or workload.default_batch_size
    if args.framework == 'jax':
        import jax

        params, _ = workload.init_model_fn(jax.random.PRNGKey(args.seed))
        data_rng = jax.random.PRNGKey(args.seed + 1)
        step, current = _jax_trainer(workload, params, args)
    else:
        params, _ = workload.init_model_fn(np.array([0, args.seed], np.uint32))
        data_rng = np.array([0, args.seed + 1], np.uint32)
        step, current = _torch_trainer(workload, params, args)
    queue = workload._build_input_queue(data_rng, 'train', args.data_dir, batch_size)
    tokens_per_step = batch_size * workload.tokens_per_example
    print(
        f'framework:{args.framework} size:{args.size} batch:{batch_size} lr:{args.lr} '
        f'steps:{args.steps} warmup:{args.warmup} tokens_per_step:{tokens_per_step}'
    )

    train_s, next_eval_s, step_times, first_step_s = 0.0, args.eval_every_s, [], None

    def evaluate(step_index):
        start = time.perf_counter()
        metrics = workload.eval_model(
            workload.eval_batch_size, current(), None, None, args.data_dir, None, step_index
        )
        print(
            f'step:{step_index} train_time_s:{train_s:.2f} '
            f'val_loss:{metrics["validation/loss"]:.4f} '
            f'train_loss:{metrics["train/loss"]:.4f} '
            f'eval_s:{time.perf_counter() - start:.2f}',
            flush=True,
        )

    for i in range(args.steps):
        batch = next(queue)
        start = time.perf_counter()
        loss = step(batch)
        elapsed = time.perf_counter() - start
        train_s += elapsed
        if first_step_s is None:
            first_step_s = elapsed  # Includes JAX's compilation.
        else:
            step_times.append(elapsed)
        if not math.isfinite(loss):
            print(f'step:{i + 1} diverged loss:{loss}')
            return
        if args.eval_every_steps:
            if (i + 1) % args.eval_every_steps == 0 and i + 1 < args.steps:
                evaluate(i + 1)
        elif train_s >= next_eval_s:
            evaluate(i + 1)
            next_eval_s += args.eval_every_s
        if args.max_train_s is not None and train_s >= args.max_train_s:
            break
        if args.stop_at_step is not None and i + 1 >= args.stop_at_step:
            break
    evaluate(i + 1)
    median_s = statistics.median(step_times) if step_times else float('nan')
    # The fastest tenth of the steps: close to an idle machine's speed when others share it.
    p10_s = float(np.percentile(step_times, 10)) if step_times else float('nan')
    print(
        f'first_step_s:{first_step_s:.2f} median_step_ms:{1000 * median_s:.1f} '
        f'p10_step_ms:{1000 * p10_s:.1f} tokens_per_s:{tokens_per_step / median_s:.0f} '
        f'train_time_s:{train_s:.1f}'
    )


if __name__ == '__main__':
    main()
