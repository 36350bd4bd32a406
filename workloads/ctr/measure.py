r"""A bare AdamW loop for the ctr workload: step throughput and time to a validation loss.

This is how the shipped ``tiny`` targets were measured (see ``workload.BUDGETS``);
re-measure on another machine with::

    python -m workloads.ctr.measure --framework jax --size tiny --data-dir DIR --max-train-s 90

and, for the validation loss against steps (the target's margin against the
eval-to-eval jitter) whatever the machine's load::

    python -m workloads.ctr.measure --framework jax --size tiny --data-dir DIR \
        --eval-every-steps 50 --max-train-s 100000 --seed 0

The recipe is the ``adamw`` baseline's at the middle of its search space:
AdamW (β1 0.9, β2 0.99, weight decay 0.03 on every parameter, optax's and
torch's default), global-norm clip 1, linear warmup over 5% of ``--steps``
then cosine decay to zero at ``--steps`` (the workload's ``step_hint`` by
default), the workload's default batch size. The clock covers the steps only
(batch fetch included, device synchronized before each read, first-step
compilation included); evaluation runs every ``--eval-every-s`` seconds of
training time (or every ``--eval-every-steps`` steps), off the clock. Output
lines are greppable ``key:value`` pairs.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import numpy as np

from harness import spec
from workloads._common import measure_steps
from workloads.ctr import INFO

WARMUP_FACTOR = 0.05


def _warmup_steps(args) -> int:
    return max(int(WARMUP_FACTOR * args.steps), 1)


def jax_schedule(args):
    """optax's form of ``measure_steps.warmup_cosine_lr`` (equal at every step)."""
    import optax

    warm = _warmup_steps(args)
    return optax.join_schedules(
        [
            # lr (c + 1) / warm at steps c = 0 .. warm - 1
            optax.linear_schedule(args.lr / warm, args.lr, max(warm - 1, 1)),
            optax.cosine_decay_schedule(args.lr, max(args.steps - warm, 1)),
        ],
        [warm],
    )


def torch_lr_at(args):
    warm = _warmup_steps(args)
    return lambda step: measure_steps.warmup_cosine_lr(step, args.lr, args.steps, warm)


def _jax_trainer(workload, params, args):
    import optax

    from workloads._common import jax_utils

    schedule = jax_schedule(args)
    tx = optax.chain(
        optax.clip_by_global_norm(1.0), optax.adamw(schedule, b1=0.9, b2=0.99, weight_decay=args.wd)
    )
    return measure_steps.jax_step(workload, tx, params, jax_utils.replicate(tx.init(params)))


def _torch_trainer(workload, model, args):
    import torch

    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.99), weight_decay=args.wd)
    return measure_steps.torch_step(workload, model, opt, torch_lr_at(args))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--framework', choices=spec.FRAMEWORKS, required=True)
    parser.add_argument('--size', default='tiny')
    parser.add_argument('--variant', default=None)
    parser.add_argument('--data-dir', required=True)
    parser.add_argument('--batch-size', type=int, default=None)
    parser.add_argument('--lr', type=float, default=2e-3)
    parser.add_argument('--wd', type=float, default=0.03)
    parser.add_argument(
        '--steps',
        type=int,
        default=None,
        help='length of the schedule (default: the workload step_hint)',
    )
    parser.add_argument(
        '--eval-every-s', type=float, default=None, help='default: the workload eval period'
    )
    parser.add_argument(
        '--eval-every-steps',
        type=int,
        default=None,
        help='evaluate every this many steps instead (loss against steps, on any machine load)',
    )
    parser.add_argument('--max-train-s', type=float, default=None)
    parser.add_argument(
        '--target',
        type=float,
        default=None,
        help='report the first eval at or below this validation loss',
    )
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args(argv)

    workload = measure_steps.make_workload(INFO, args.framework, args.size, args.variant)
    workload.check_data(args.data_dir)
    args.steps = args.steps or workload.step_hint
    eval_every_s = args.eval_every_s or workload.eval_period_time_sec
    target = workload.validation_target_value if args.target is None else args.target
    max_train_s = args.max_train_s or workload.max_allowed_runtime_sec
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
    print(
        f'framework:{args.framework} size:{args.size} variant:{args.variant} '
        f'batch:{batch_size} lr:{args.lr} wd:{args.wd} steps:{args.steps} target:{target}'
    )

    train_s, next_eval_s, step_times, first_step_s, reached_s = 0.0, eval_every_s, [], None, None

    def evaluate(step_index):
        nonlocal reached_s
        start = time.perf_counter()
        m = workload.eval_model(
            workload.eval_batch_size, current(), None, None, args.data_dir, None, step_index
        )
        if reached_s is None and m['validation/loss'] <= target:
            reached_s = train_s
        print(
            f'step:{step_index} train_time_s:{train_s:.2f} '
            f'val_loss:{m["validation/loss"]:.4f} val_auc:{m["validation/auc"]:.4f} '
            f'val_calibration:{m["validation/calibration"]:.3f} '
            f'train_loss:{m["train/loss"]:.4f} eval_s:{time.perf_counter() - start:.2f}',
            flush=True,
        )

    i = 0
    while train_s < max_train_s and i < args.steps:
        start = time.perf_counter()
        loss = step(next(queue))
        elapsed = time.perf_counter() - start
        train_s += elapsed
        i += 1
        if first_step_s is None:
            first_step_s = elapsed  # includes JAX's compilation
        else:
            step_times.append(elapsed)
        if not math.isfinite(loss):
            print(f'step:{i} diverged loss:{loss}')
            return
        if args.eval_every_steps:
            if i % args.eval_every_steps == 0 and i < args.steps:
                evaluate(i)
        elif train_s >= next_eval_s:
            evaluate(i)
            next_eval_s = train_s + eval_every_s
    evaluate(i)
    median_s = statistics.median(step_times) if step_times else float('nan')
    print(
        f'first_step_s:{first_step_s:.2f} median_step_ms:{1000 * median_s:.2f} '
        f'examples_per_s:{batch_size / median_s:.0f} train_time_s:{train_s:.1f} '
        f'time_to_target_s:{reached_s if reached_s is None else round(reached_s, 1)}'
    )


if __name__ == '__main__':
    main()
