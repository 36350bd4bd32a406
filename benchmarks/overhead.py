"""Harness overhead: timed training steps in the runner vs a bare hand-written loop.

For `lm` at `tiny` size, in one process per framework, interleaving blocks of
steps of the two so that machine noise hits both alike:

- bare:    the same model (the workload's model_fn/loss_fn), the same AdamW
           (PyTorch: fused, as the baseline's), the same batches, in a plain loop:
           jitted (JAX); PyTorch's model_fn compiled or eager as
           ``--torch-compile`` says (default on), in both loops alike;
- bare_synced: the bare loop waiting for the device after every step, as the
           timing rules make the harness do before each clock read;
- harness: TrialRunner.train_one_step with the `adamw` submission: RNG folding,
           data_selection, update_params, device sync, clock reads, metrics
           drain, logging — everything but evaluation (eval period set beyond
           the run).

Prints per framework: the throughput ratio harness/bare (goal >= 0.97), the
ratio harness/bare_synced (what the harness's own code costs, the per-step
sync aside: with asynchronous dispatch, JAX overlaps the next step's dispatch
with the current step's compute in the bare loop, which honest per-step timing
gives up), tokens/s, and achieved FLOP/s (flops_per_example × examples/s,
≈ 6·params·tokens) against a matmul peak measured here.

    python benchmarks/overhead.py [--framework jax|pytorch|both] [--block 10] [--rounds 7]
        [--torch-compile on|off|auto]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness import paths  # noqa: E402
from harness.trial.backends import get_backend  # noqa: E402
from harness.prepare import ensure_prepared  # noqa: E402
from harness.trial.runner import TrialRunner  # noqa: E402
from harness.submission.loader import load_submission  # noqa: E402
from harness.trial.run import build_workload  # noqa: E402
from harness.trial.config import TrialConfig  # noqa: E402

HPARAMS = {'learning_rate': 2e-3, 'one_minus_beta1': 0.1, 'beta2': 0.99, 'warmup_factor': 0.05,
           'weight_decay': 0.05, 'grad_clip': 1.0, 'label_smoothing': 0.0, 'dropout_rate': 0.0}


def matmul_peak_flops(framework: str, n: int = 1024, reps: int = 20) -> float:
    if framework == 'jax':
        import jax
        import jax.numpy as jnp

        a = jnp.ones((n, n), jnp.float32)
        f = jax.jit(lambda x: x @ x)
        f(a).block_until_ready()
        t0 = time.perf_counter()
        for _ in range(reps):
            out = f(a)
        out.block_until_ready()
    else:
        import torch

        a = torch.ones((n, n), device=get_backend('pytorch').device)
        a @ a
        get_backend('pytorch').sync()
        t0 = time.perf_counter()
        for _ in range(reps):
            a @ a
        get_backend('pytorch').sync()
    return 2 * n**3 * reps / (time.perf_counter() - t0)


def bare_loop_jax(workload, data_dir, batch_size, seed):
    import jax
    import jax.numpy as jnp
    import optax

    from harness import spec
    from submissions._lib.jax_common import lr_schedule
    from harness.submission.search_space import as_hyperparameters

    hp = as_hyperparameters(HPARAMS)
    backend = get_backend('jax')
    params, model_state = workload.init_model_fn(backend.initial_rng(seed))
    batches = workload._build_input_queue(backend.initial_rng(seed + 1), 'train', data_dir,
                                          batch_size)
    tx = optax.adamw(lr_schedule(workload, hp), b1=0.9, b2=0.99, eps=1e-8, weight_decay=0.05)
    opt_state = tx.init(params)

    @jax.jit
    def step(params, opt_state, batch, rng):
        def loss_fn(p):
            logits, _ = workload.model_fn(p, batch, model_state, spec.ForwardPassMode.TRAIN, rng,
                                          True, 0.0)
            out = workload.loss_fn(batch['targets'], logits, batch.get('weights'))
            return out['summed'] / out['n_valid_examples']

        loss, grads = jax.value_and_grad(loss_fn)(params)
        scale = jnp.minimum(1.0, 1.0 / (optax.tree.norm(grads) + 1e-6))
        grads = jax.tree.map(lambda g: g * scale, grads)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    state = {'params': params, 'opt': opt_state, 'rng': jax.random.PRNGKey(seed)}

    def run(n, synced=False):
        for _ in range(n):
            state['params'], state['opt'], loss = step(state['params'], state['opt'],
                                                       next(batches), state['rng'])
            if synced:
                backend.sync(state['params'], state['opt'], loss)
        loss.block_until_ready()

    return run


def bare_loop_torch(workload, data_dir, batch_size, seed):
    import torch

    from harness import spec
    from submissions._lib.schedules import warmup_cosine_factor

    backend = get_backend('pytorch')
    model, model_state = workload.init_model_fn(backend.initial_rng(seed))
    batches = workload._build_input_queue(backend.initial_rng(seed + 1), 'train', data_dir,
                                          batch_size)
    opt = torch.optim.AdamW(model.parameters(), lr=HPARAMS['learning_rate'], betas=(0.9, 0.99),
                            eps=1e-8, weight_decay=0.05, fused=True)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: warmup_cosine_factor(s, workload.step_hint, 0.05))

    def run(n, synced=False):
        for _ in range(n):
            batch = next(batches)
            opt.zero_grad(set_to_none=True)
            logits, _ = workload.model_fn(model, batch, model_state, spec.ForwardPassMode.TRAIN,
                                          None, True, 0.0)
            out = workload.loss_fn(batch['targets'], logits, batch.get('weights'))
            (out['summed'] / out['n_valid_examples']).backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            if synced:
                backend.sync()
        backend.sync()

    return run


def harness_loop(config: TrialConfig, workload, data_dir: str, tmp: Path):
    submission = load_submission('adamw', config.framework)
    backend = get_backend(config.framework)
    log_file = open(tmp / f'{config.framework}.log', 'w', encoding='utf-8')
    runner = TrialRunner(config=config, workload=workload, submission=submission,
                         backend=backend, trial_dir=tmp, data_dir=data_dir, log_file=log_file)
    runner.begin(None)

    def run(n):
        for _ in range(n):
            if runner.train_one_step():
                raise RuntimeError('the trial ended during the benchmark: raise its budget')

    return run, runner


def measure(framework: str, block: int, rounds: int, data_dir: str) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix='timetrial-overhead-'))
    base = TrialConfig(workload='lm', framework=framework, submission='adamw', size='tiny',
                       hparams=HPARAMS, data_dir=data_dir, results_dir=str(tmp),
                       checkpoint_every_s=1e9)
    probe = build_workload(base)
    ensure_prepared(probe, 'lm', None, data_dir)
    override = {'validation_target_value': -1.0, 'max_allowed_runtime_sec': 1e9,
                'eval_period_time_sec': 1e9, 'step_hint': probe.step_hint}
    config = base.replace(budget_override=override)
    batch_size = probe.default_batch_size
    bare_workload = build_workload(config)
    bare = (bare_loop_jax if framework == 'jax' else bare_loop_torch)(
        bare_workload, data_dir, batch_size, seed=0)
    harness, runner = harness_loop(config, build_workload(config), data_dir, tmp)
    bare(3)
    harness(3)  # compile / warm up both outside the measurement
    times = {'bare': [], 'bare_synced': [], 'harness': []}

    def bare_synced(n):
        bare(n, synced=True)

    for _ in range(rounds):
        for name, fn in (('bare', bare), ('bare_synced', bare_synced), ('harness', harness)):
            t0 = time.perf_counter()
            fn(block)
            times[name].append((time.perf_counter() - t0) / block)
    bare_s = statistics.median(times['bare'])
    synced_s = statistics.median(times['bare_synced'])
    harness_s = statistics.median(times['harness'])
    tokens = batch_size * probe.tokens_per_example
    flops = probe.flops_per_example() * batch_size
    return {
        'framework': framework, 'params': runner.param_count, 'batch_size': batch_size,
        'bare_step_ms': bare_s * 1e3, 'harness_step_ms': harness_s * 1e3,
        'throughput_ratio': bare_s / harness_s, 'ratio_vs_synced_bare': synced_s / harness_s,
        'tokens_per_s': tokens / harness_s, 'flops_per_s': flops / harness_s,
        'peak_flops_per_s': matmul_peak_flops(framework),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--framework', default='both', choices=('jax', 'pytorch', 'both'))
    parser.add_argument('--block', type=int, default=10, help='steps per interleaved block')
    parser.add_argument('--rounds', type=int, default=7, help='blocks of each kind')
    parser.add_argument('--torch-compile', default='on', choices=('on', 'off', 'auto'),
                        help='TIMETRIAL_TORCH_COMPILE for both PyTorch loops (default on)')
    parser.add_argument('--data-dir')
    args = parser.parse_args()
    os.environ['TIMETRIAL_TORCH_COMPILE'] = args.torch_compile
    data_dir = str(paths.resolve_data_dir(args.data_dir))
    frameworks = ('jax', 'pytorch') if args.framework == 'both' else (args.framework,)
    for fw in frameworks:
        r = measure(fw, args.block, args.rounds, data_dir)
        compiled = f' torch_compile:{args.torch_compile}' if fw == 'pytorch' else ''
        print(f"framework:{r['framework']}{compiled} params:{r['params']} batch:{r['batch_size']} "
              f"bare_step_ms:{r['bare_step_ms']:.2f} harness_step_ms:{r['harness_step_ms']:.2f} "
              f"throughput_ratio:{r['throughput_ratio']:.3f} "
              f"ratio_vs_synced_bare:{r['ratio_vs_synced_bare']:.3f} tokens_per_s:{r['tokens_per_s']:.0f} "
              f"achieved_gflops:{r['flops_per_s'] / 1e9:.1f} "
              f"matmul_peak_gflops:{r['peak_flops_per_s'] / 1e9:.1f} "
              f"mfu:{r['flops_per_s'] / r['peak_flops_per_s']:.3f}")


if __name__ == '__main__':
    main()
