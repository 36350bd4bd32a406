"""Teacher overhead: a distillation step's time over a plain step's, against the FLOP model.

On ``lm_slm`` (default ``tiny`` and the base workload's teacher; ``--variant
strong_teacher`` for the half-size one), in one process per framework, two
trainers share the workload, the init and the batch stream:

- kd:    the ``kd_only`` submission's step at ω = 0.5: the teacher's forward on
         the batch (through ``workload.teacher_logits``/``teacher_topk``, timed
         by the harness's workload view), then the student's step on the mixed loss;
- plain: the same submission code at ω = 0, which never calls the teacher: the
         plain next-token step SALT takes after n_KD.

Everything is on the clock as in a trial (data selection included, device
synchronized before each clock read); nothing is precomputed. Blocks of steps
of the two alternate so machine noise hits both alike; the ratio is the median
over rounds of (median kd step / median plain step). The prediction is
1 + (teacher forward FLOPs / student training FLOPs) per sequence, from
``teacher.teacher_forward_flops`` and ``lm.flops_per_sequence``; the FLOP model
leaves out the KD loss's softmax over the teacher's logits and moving those
logits, which is what a gap between the two measures.

    python benchmarks/teacher_overhead.py [--framework jax|pytorch|both] [--size tiny]
        [--variant V] [--block 10] [--rounds 5] [--top-k 0] [--data-dir DIR]

Output: greppable key:value lines; ``agreement`` = measured / predicted (the
issue's goal: within 10 %, i.e. 0.9 .. 1.1). On a shared machine take the
median of several runs.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness import paths, registry  # noqa: E402
from harness.submission.search_space import as_hyperparameters  # noqa: E402
from harness.submission.loader import load_submission  # noqa: E402
from harness.submission.view import MetricsLogger, SubmissionWorkload, call_timer  # noqa: E402
from workloads.lm import workload as lm  # noqa: E402
from workloads.lm_slm import teacher as teacher_lib  # noqa: E402

HPARAMS = {
    'learning_rate': 2e-3,
    'one_minus_beta1': 0.1,
    'beta2': 0.99,
    'warmup_factor': 0.05,
    'weight_decay': 0.05,
    'grad_clip': 1.0,
    'dropout_rate': 0.0,
    'optimizer': 'adamw',
    'kd_temperature': 1.0,
}


class Trainer:
    """The runner's timed calls, without evaluation: data_selection + update_params + sync."""

    def __init__(self, framework, workload, params, model_state, data_dir, weight, top_k, seed):
        import numpy as np

        self.framework = framework
        self.view = SubmissionWorkload(workload)
        self.sub = load_submission('kd_only', framework)
        self.hparams = as_hyperparameters({**HPARAMS, 'kd_weight': weight, 'kd_top_k': top_k})
        if framework == 'jax':
            import jax

            self.rng = jax.random.PRNGKey(seed)
        else:
            self.rng = np.array([0, seed], np.uint32)
        self.params, self.model_state = params, model_state
        self.queue = workload._build_input_queue(
            self.rng, 'train', data_dir, workload.default_batch_size
        )
        self.opt_state = self.sub.init_optimizer_state(
            workload=self.view,
            model_params=params,
            model_state=model_state,
            hyperparameters=self.hparams,
            rng=self.rng,
        )
        self.step = 0

    def sync(self):
        if self.framework == 'jax':
            import jax

            jax.block_until_ready((self.params, self.opt_state[0]))
        else:
            import torch

            if torch.cuda.is_available():
                torch.cuda.synchronize()

    def timed_step(self) -> float:
        start = time.perf_counter()
        batch = self.sub.data_selection(
            workload=self.view,
            input_queue=self.queue,
            optimizer_state=self.opt_state,
            current_param_container=self.params,
            model_state=self.model_state,
            hyperparameters=self.hparams,
            global_step=self.step,
            rng=self.rng,
        )
        self.opt_state, self.params, self.model_state = self.sub.update_params(
            workload=self.view,
            current_param_container=self.params,
            current_params_types=None,
            model_state=self.model_state,
            hyperparameters=self.hparams,
            batch=batch,
            loss_type=None,
            optimizer_state=self.opt_state,
            eval_results=[],
            global_step=self.step,
            rng=self.rng,
        )
        self.sync()
        self.step += 1
        self.view.metrics_logger.drain()
        return time.perf_counter() - start


def _copy_params(framework, workload, params):
    """An independent copy of the initial params (each trainer updates its own)."""
    if framework == 'jax':
        return workload.params_from_canonical(workload.params_to_canonical(params))
    import copy

    return copy.deepcopy(params)


def run(framework: str, args) -> dict:
    import numpy as np

    data_dir = str(paths.resolve_data_dir(args.data_dir))
    workload = registry.make_workload('lm_slm', framework, args.size, args.variant)
    workload.check_data(data_dir)
    workload.attach_metrics_logger(MetricsLogger())
    if framework == 'jax':
        import jax

        params, model_state = workload.init_model_fn(jax.random.PRNGKey(0))
    else:
        params, model_state = workload.init_model_fn(np.array([0, 0], np.uint32))
    plain = Trainer(
        framework,
        workload,
        _copy_params(framework, workload, params),
        model_state,
        data_dir,
        0.0,
        args.top_k,
        seed=1,
    )
    kd = Trainer(framework, workload, params, model_state, data_dir, 0.5, args.top_k, seed=1)
    for trainer in (plain, kd):  # compile and warm up, off the measurement
        for _ in range(args.warmup):
            trainer.timed_step()
    # The plain trainer never calls the teacher: the kd view's timer holds all of it.
    timer = call_timer(kd.view)
    teacher_before = timer.time_s
    ratios, kd_ms, plain_ms, kd_total_s = [], [], [], 0.0
    for r in range(args.rounds):
        order = (kd, plain) if r % 2 == 0 else (plain, kd)
        times = {}
        for trainer in order:
            times[trainer] = [trainer.timed_step() for _ in range(args.block)]
        kd_total_s += sum(times[kd])
        kd_ms.append(1000 * statistics.median(times[kd]))
        plain_ms.append(1000 * statistics.median(times[plain]))
        ratios.append(kd_ms[-1] / plain_ms[-1])
    teacher_s = timer.time_s - teacher_before
    student = workload.config
    teacher_flops = teacher_lib.teacher_forward_flops(workload.teacher_config)
    student_flops = lm.flops_per_sequence(student)
    predicted = 1.0 + teacher_flops / student_flops
    measured = statistics.median(ratios)
    return {
        'framework': framework,
        'size': args.size,
        'variant': args.variant,
        'top_k': args.top_k,
        'teacher': f'{workload.teacher_config.n_layers}x{workload.teacher_config.d_model}',
        'student': f'{student.n_layers}x{student.d_model}',
        'kd_step_ms': statistics.median(kd_ms),
        'plain_step_ms': statistics.median(plain_ms),
        'teacher_share_of_kd_step': teacher_s / kd_total_s,
        'measured_ratio': measured,
        'predicted_ratio': predicted,
        'agreement': measured / predicted,
        'ratio_spread': f'{min(ratios):.3f}..{max(ratios):.3f}',
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--framework', choices=('jax', 'pytorch', 'both'), default='both')
    parser.add_argument('--size', default='tiny')
    parser.add_argument(
        '--variant', default=None, help='lm_slm variant (default: the base workload\'s teacher)'
    )
    parser.add_argument('--block', type=int, default=10, help='steps per block')
    parser.add_argument('--rounds', type=int, default=5, help='alternating blocks of each')
    parser.add_argument('--warmup', type=int, default=3, help='untimed steps of each first')
    parser.add_argument(
        '--top-k',
        type=int,
        default=0,
        help='teacher top-k (0: the whole distribution, the default search space)',
    )
    parser.add_argument('--data-dir', default=None)
    args = parser.parse_args(argv)
    frameworks = ('jax', 'pytorch') if args.framework == 'both' else (args.framework,)
    for framework in frameworks:
        out = run(framework, args)
        print(
            ' '.join(
                f'{k}:{v:.4g}' if isinstance(v, float) else f'{k}:{v}' for k, v in out.items()
            ),
            flush=True,
        )


if __name__ == '__main__':
    main()
