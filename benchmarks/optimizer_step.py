"""Step time and optimizer-state memory of the optimizer zoo, relative to AdamW.

For `lm` at `tiny` size, per framework, in one process, every optimizer gets
its own copy of the same model and is built by its submission's own builder
(``build_tx`` / ``build_optimizer``) from the first point of its search space,
with ``start_preconditioning_step`` set to 1 so that Shampoo and Sketchy
precondition from the first timed step. Two timings, interleaved over the
optimizers round by round so machine noise hits all alike (medians over
rounds):

- ``opt``:  the optimizer update alone, on fixed gradients;
- ``step``: a whole training step: forward, backward, global-norm clipping,
            optimizer update (what the submission's update_params does, minus
            the harness).

Blocks are ``precondition_every`` (20) steps long by default, so every block
holds exactly one recomputation of Shampoo's inverse roots: its cost is
amortized as in training. ``state_MB`` counts every array of the optimizer
state (JAX: the state pytree; PyTorch: ``optimizer.state``).

OPENBLAS_NUM_THREADS defaults to 1 here: jaxlib's CPU eigh/svd go through
scipy's OpenBLAS, whose spinning worker threads made the same JAX eigh take
2 ms or 800 ms on a loaded 2-core machine; XLA already spreads a batch of
matrices over its own threads. ``--threads N`` also caps XLA's and torch's
intra-op threads (on a machine shared with other jobs, spinning OpenMP
threads made a torch Sketchy step take 20 s with 2 threads and 0.3 s with 1).

    python benchmarks/optimizer_step.py [--framework jax|pytorch|both]
        [--block 20] [--step-block 20] [--rounds 3] [--only adamw,shampoo] [--threads N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, NamedTuple


def _early_thread_limit(argv: List[str]) -> None:
    """Thread caps must be in the environment before numpy, scipy or jax load."""
    threads = '1'
    if '--threads' in argv[:-1]:
        threads = argv[argv.index('--threads') + 1]
        # XLA reads a value not starting with '--' as a file name: the eigen flag first.
        eigen = 'false' if threads == '1' else 'true'
        flags = [
            f'--xla_cpu_multi_thread_eigen={eigen}',
            f'intra_op_parallelism_threads={threads}',
            os.environ.get('XLA_FLAGS', ''),
        ]
        os.environ['XLA_FLAGS'] = ' '.join(f for f in flags if f)
    os.environ.setdefault('OPENBLAS_NUM_THREADS', threads)


_early_thread_limit(sys.argv)
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness import paths, registry  # noqa: E402
from harness.trial.backends import get_backend  # noqa: E402
from harness.prepare import ensure_prepared  # noqa: E402
from harness.submission.search_space import as_hyperparameters, load, sample  # noqa: E402
from harness.submission.loader import load_submission, search_space_path  # noqa: E402
from harness.trial.run import build_workload  # noqa: E402
from harness.trial.config import TrialConfig  # noqa: E402

OPTIMIZERS = ('adamw', 'nesterov', 'momentum', 'lamb', 'lars', 'shampoo', 'sketchy', 'sonew')
SEED = 0


def hyperparameters(name: str) -> Dict:
    """Point 0 of the submission's search space, preconditioning from step 1."""
    values = sample(load(search_space_path(registry.resolve_submission(name))), SEED, 0)
    if 'start_preconditioning_step' in values:
        values['start_preconditioning_step'] = 1
    return values


class Bench(NamedTuple):
    """One optimizer on its own model: ``opt(n)`` and ``step(n)`` run n steps and sync."""

    opt: Callable[[int], None]
    step: Callable[[int], None]
    state_bytes: Callable[[], int]


def jax_bench(workload, name: str, batches) -> Bench:
    import jax
    import jax.numpy as jnp
    import optax

    from harness import spec
    from submissions._lib import jax_common

    hp = as_hyperparameters(hyperparameters(name))
    module = load_submission(name, 'jax').module
    tx = module.build_tx(workload, hp, jax_common.lr_schedule(workload, hp))
    params, model_state = workload.init_model_fn(get_backend('jax').initial_rng(SEED))
    rng = jax.random.PRNGKey(SEED)

    def loss_fn(p, batch):
        logits, _ = workload.model_fn(
            p, batch, model_state, spec.ForwardPassMode.TRAIN, rng, True, 0.0
        )
        out = workload.loss_fn(batch['targets'], logits, batch.get('weights'))
        return out['summed'] / out['n_valid_examples']

    @jax.jit
    def train_step(params, opt_state, batch):
        loss, grads = jax.value_and_grad(loss_fn)(params, batch)
        scale = jnp.minimum(1.0, 1.0 / (optax.tree.norm(grads) + 1e-6))
        grads = jax.tree.map(lambda g: g * scale, grads)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    @jax.jit
    def opt_step(params, opt_state, grads):
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    grads = jax.grad(loss_fn)(params, next(batches))
    state = {'params': params, 'opt': tx.init(params)}

    def opt(n):
        for _ in range(n):
            state['params'], state['opt'] = opt_step(state['params'], state['opt'], grads)
        jax.block_until_ready(state['params'])

    def step(n):
        for _ in range(n):
            state['params'], state['opt'], _ = train_step(
                state['params'], state['opt'], next(batches)
            )
        jax.block_until_ready(state['params'])

    def state_bytes():
        return sum(x.nbytes for x in jax.tree.leaves(state['opt']) if hasattr(x, 'nbytes'))

    return Bench(opt, step, state_bytes)


def _tensor_bytes(value) -> int:
    import torch

    if isinstance(value, torch.Tensor):
        return value.numel() * value.element_size()
    if isinstance(value, dict):
        return sum(_tensor_bytes(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return sum(_tensor_bytes(v) for v in value)
    return 0


def torch_bench(workload, name: str, batches) -> Bench:
    import torch

    from harness import spec

    backend = get_backend('pytorch')
    hp = as_hyperparameters(hyperparameters(name))
    module = load_submission(name, 'pytorch').module
    model, model_state = workload.init_model_fn(backend.initial_rng(SEED))
    optimizer = module.build_optimizer(model, hp)

    def loss_of(batch):
        logits, _ = workload.model_fn(
            model, batch, model_state, spec.ForwardPassMode.TRAIN, None, True, 0.0
        )
        out = workload.loss_fn(batch['targets'], logits, batch.get('weights'))
        return out['summed'] / out['n_valid_examples']

    loss_of(next(batches)).backward()
    fixed = [p.grad.detach().clone() for p in model.parameters()]

    def opt(n):
        for p, g in zip(model.parameters(), fixed):
            p.grad = g.clone()  # some optimizers (LARS) modify .grad in place
        for _ in range(n):
            optimizer.step()
        backend.sync()

    def step(n):
        for _ in range(n):
            optimizer.zero_grad(set_to_none=True)
            loss_of(next(batches)).backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
        backend.sync()

    return Bench(opt, step, lambda: _tensor_bytes(list(optimizer.state.values())))


def measure(
    framework: str, names: List[str], block: int, step_block: int, rounds: int, data_dir: str
) -> Dict[str, Dict[str, float]]:
    config = TrialConfig(
        workload='lm',
        framework=framework,
        submission='adamw',
        size='tiny',
        hparams={},
        data_dir=data_dir,
        results_dir=str(Path(data_dir) / 'unused'),
    )
    workload = build_workload(config)
    ensure_prepared(workload, 'lm', None, data_dir)
    backend = get_backend(framework)
    batches = workload._build_input_queue(
        backend.initial_rng(SEED + 1), 'train', data_dir, workload.default_batch_size
    )
    make = jax_bench if framework == 'jax' else torch_bench
    benches = {name: make(workload, name, batches) for name in names}
    for bench in benches.values():  # compile and warm up outside the measurement
        bench.step(2)
        bench.opt(2)
    times = {name: {'opt': [], 'step': []} for name in names}
    for round_index in range(rounds):
        for name, bench in benches.items():
            for kind, fn, n in (('opt', bench.opt, block), ('step', bench.step, step_block)):
                t0 = time.perf_counter()
                fn(n)
                times[name][kind].append((time.perf_counter() - t0) / n)
        print(f'framework:{framework} round:{round_index + 1}/{rounds} done', flush=True)
    return {
        name: {
            'opt_ms': 1e3 * statistics.median(times[name]['opt']),
            'step_ms': 1e3 * statistics.median(times[name]['step']),
            'state_mb': benches[name].state_bytes() / 2**20,
        }
        for name in names
    }


def print_table(framework: str, results: Dict[str, Dict[str, float]]) -> None:
    base = results.get('adamw')
    print(f'\nframework:{framework} (lm tiny; medians; ratios against adamw)')
    print(
        f'{"optimizer":<10} {"opt_ms":>9} {"x":>6} {"step_ms":>9} {"x":>6} {"state_MB":>9} {"x":>6}'
    )
    for name, r in results.items():
        ratio = {
            k: (r[k] / base[k] if base and base[k] else float('nan'))
            for k in ('opt_ms', 'step_ms', 'state_mb')
        }
        print(
            f'{name:<10} {r["opt_ms"]:>9.2f} {ratio["opt_ms"]:>6.2f} {r["step_ms"]:>9.1f} '
            f'{ratio["step_ms"]:>6.2f} {r["state_mb"]:>9.2f} {ratio["state_mb"]:>6.2f}'
        )
    for name, r in results.items():  # greppable key:value lines too
        print(
            f'optimizer:{name} framework:{framework} opt_ms:{r["opt_ms"]:.3f} '
            f'step_ms:{r["step_ms"]:.2f} state_mb:{r["state_mb"]:.3f}'
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--framework', default='both', choices=('jax', 'pytorch', 'both'))
    parser.add_argument('--block', type=int, default=20, help='optimizer-only steps per block')
    parser.add_argument('--step-block', type=int, default=20, help='training steps per block')
    parser.add_argument('--rounds', type=int, default=3, help='interleaved rounds (>= 3)')
    parser.add_argument(
        '--only',
        default=','.join(OPTIMIZERS),
        help='comma-separated optimizers (adamw is the reference)',
    )
    parser.add_argument('--threads', type=int, help='cap XLA, torch and OpenBLAS threads')
    parser.add_argument('--data-dir')
    args = parser.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    names = [n for n in args.only.split(',') if n]
    data_dir = str(paths.resolve_data_dir(args.data_dir))
    frameworks = ('jax', 'pytorch') if args.framework == 'both' else (args.framework,)
    for framework in frameworks:
        print_table(
            framework, measure(framework, names, args.block, args.step_block, args.rounds, data_dir)
        )


if __name__ == '__main__':
    main()
