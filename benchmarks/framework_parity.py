"""Framework parity: one training step of each workload in JAX and in PyTorch, side by side.

For each case (``workload:size``) one worker process per framework builds the
workload's model, an AdamW step (clip 1, β 0.9/0.95, weight decay 0.1; the step
of ``workloads/_common/measure_steps.py``: ``jax.jit`` / the workload's
``model_fn`` compiled per ``TIMETRIAL_TORCH_COMPILE``, fused ``torch.optim.AdamW``)
and a few batches of its training data, takes its first step (compilation), warms
up, and then waits. The parent interleaves the two: a block of steps in JAX, one in
PyTorch, then PyTorch first, ... so that machine drift hits both. lm_slm's step
also runs the teacher's forward pass (``teacher_logits``, what the salt baseline
calls). federated_shakespeare's step is one centralized minibatch step of the
federated model (its submissions' vmapped client updates are their own code).

Printed per case and framework: step time (median and min-max over rounds),
tokens or examples per second, achieved FLOP/s (the workload's
``flops_per_example`` x batch, plus the teacher's forward) against the device's
peak, the first step (compilation included), and the ratio PyTorch / JAX of each
round (median, min-max). The peak on GPUs is dense bf16 from the spec sheet
(H100 SXM and H200: 989 TFLOP/s); on CPUs it is the best square matmul measured
here in the dtype the models compute in, in either framework.

    python benchmarks/framework_parity.py [--cases lm:tiny ctr:tiny ...] [--gpu]
        [--rounds 7] [--steps 10] [--torch-compile on|off|auto] [--data-dir DIR]

``--gpu`` picks the GPU sizes (lm:small lm_slm:small ctr:base federated_shakespeare:base).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CPU_CASES = ('lm:tiny', 'lm_slm:tiny', 'ctr:tiny', 'federated_shakespeare:tiny')
GPU_CASES = ('lm:small', 'lm_slm:small', 'ctr:base', 'federated_shakespeare:base')
FRAMEWORKS = ('jax', 'pytorch')
# Dense bf16 TFLOP/s from NVIDIA's spec sheets (without sparsity); first match wins.
GPU_PEAK_BF16 = (('H100 PCIe', 756e12), ('H100', 989e12), ('H200', 989e12), ('A100', 312e12))
LEARNING_RATE = 1e-3
MARK = '@@ '  # Prefix of the worker's protocol lines (anything else on stdout is ignored).
# Environment that changes the numbers; printed with the command when set.
ENV_SHOWN = ('OMP_WAIT_POLICY', 'OMP_NUM_THREADS', 'XLA_FLAGS', 'TORCHINDUCTOR_CACHE_DIR',
             'CUDA_VISIBLE_DEVICES')


# ---- the worker: one framework, one case ---------------------------------------------------


def _jax_setup(workload, params):
    """(step(batch) -> loss, the params it trains)."""
    import optax

    from workloads._common import jax_utils, measure_steps

    tx = optax.chain(optax.clip_by_global_norm(1.0),
                     optax.adamw(LEARNING_RATE, b1=0.9, b2=0.95, weight_decay=0.1))
    step = measure_steps.jax_step(workload, tx, params, jax_utils.replicate(tx.init(params)))[0]
    return step, params


def _torch_setup(workload, params):
    import torch

    from workloads._common import measure_steps

    if isinstance(params, dict):  # federated: functional params; train the module instead
        module = workload._module
        module.load_state_dict(params, strict=True)
        params = module
    opt = torch.optim.AdamW(params.parameters(), lr=LEARNING_RATE, betas=(0.9, 0.95),
                            weight_decay=0.1, fused=True)
    return measure_steps.torch_step(workload, params, opt, lambda step: LEARNING_RATE)[0], params


def _batches(workload, name: str, backend, data_dir: str, count: int):
    """``count`` training batches of the workload's default size, on the device."""
    if name == 'federated_shakespeare':
        size = workload.config['batch_size']
        out = []
        for i in range(count):  # one sequence from each of `size` clients: (B, T)
            cohort = workload.client_batches(list(range(size)), [i] * size, 0, 1, 1)
            out.append({k: v.reshape(size, -1) for k, v in cohort.items()})
        return out, size
    size = workload.default_batch_size
    queue = workload._build_input_queue(backend.initial_rng(1), 'train', data_dir, size)
    return [next(queue) for _ in range(count)], size


def _compute_dtype(workload) -> str:
    config = getattr(workload, 'config', None)
    return getattr(config, 'compute_dtype', 'float32')


def _matmul_peak(framework: str, dtype: str, on_gpu: bool, reps: int = 5) -> float:
    """Best FLOP/s of a square matmul in ``dtype`` (sizes 512 to 2048; 8192 on a GPU)."""
    best = 0.0
    for n in (8192,) if on_gpu else (512, 1024, 2048):
        if framework == 'jax':
            import jax
            import jax.numpy as jnp

            a = jnp.ones((n, n), getattr(jnp, dtype))
            f = jax.jit(lambda x: x @ x)
            f(a).block_until_ready()

            def run(f=f, a=a):
                return f(a).block_until_ready()
        else:
            import torch

            dev = 'cuda' if on_gpu else 'cpu'
            a = torch.ones((n, n), dtype=getattr(torch, dtype), device=dev)

            def run(a=a):
                out = a @ a
                if on_gpu:
                    torch.cuda.synchronize()
                return out
            run()
        for _ in range(reps):
            t0 = time.perf_counter()
            run()
            best = max(best, 2 * n**3 / (time.perf_counter() - t0))
    return best


def _device(framework: str) -> str:
    if framework == 'jax':
        import jax

        d = jax.devices()[0]
        return f'{d.platform}:{d.device_kind}'
    import torch

    return f'cuda:{torch.cuda.get_device_name(0)}' if torch.cuda.is_available() else 'cpu'


def _version(framework: str) -> str:
    module = __import__('jax' if framework == 'jax' else 'torch')
    return module.__version__


def _cpu_model() -> str:
    try:
        for line in Path('/proc/cpuinfo').read_text().splitlines():
            if line.startswith('model name'):
                return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _say(kind: str, **fields) -> None:
    print(MARK + json.dumps({'kind': kind, **fields}), flush=True)


def worker(framework: str, case: str, data_dir: str, n_batches: int) -> None:
    from harness import registry
    from harness.trial.backends import get_backend
    from harness.prepare import ensure_prepared

    name, size = case.split(':')
    workload = registry.make_workload(name, framework, size)
    backend = get_backend(framework)
    ensure_prepared(workload, name, None, data_dir, log=lambda m: print(m, file=sys.stderr))
    if name == 'federated_shakespeare':
        workload.load_clients(data_dir)
    params, _ = workload.init_model_fn(backend.initial_rng(0))
    batches, batch_size = _batches(workload, name, backend, data_dir, n_batches)
    step, params = (_jax_setup if framework == 'jax' else _torch_setup)(workload, params)
    flops = workload.flops_per_example() * batch_size
    if name == 'lm_slm':
        from workloads.lm_slm import teacher as teacher_lib

        student_step = step
        flops += batch_size * teacher_lib.teacher_forward_flops(workload.teacher_config)

        def step(batch):
            workload.teacher_logits(batch)  # timed by the workload too (teacher_time_s)
            return student_step(batch)

    t0 = time.perf_counter()
    loss = step(batches[0])  # compiles
    first_step_s = time.perf_counter() - t0
    for batch in batches[1:] * 2:
        step(batch)
    device = _device(framework)
    _say('ready', batch_size=batch_size, items_per_step=batch_size * workload.tokens_per_example,
         item='tokens' if workload.tokens_per_example > 1 else 'examples', flops_per_step=flops,
         first_step_s=first_step_s, first_loss=float(loss), device=device,
         dtype=_compute_dtype(workload), params=backend.param_count(params),
         version=_version(framework))
    for line in sys.stdin:
        command = line.split()
        if command[0] == 'run':
            steps = int(command[1])
            teacher_before = getattr(workload, 'teacher_time_s', 0.0)
            t0 = time.perf_counter()
            for i in range(steps):
                step(batches[i % len(batches)])
            _say('time', seconds=time.perf_counter() - t0,
                 teacher_seconds=getattr(workload, 'teacher_time_s', 0.0) - teacher_before)
        elif command[0] == 'peak':
            _say('peak', flops_per_s=_matmul_peak(framework, _compute_dtype(workload),
                                                  device.startswith(('cuda', 'gpu'))))
        else:
            return


# ---- the parent: interleave, summarize, print ------------------------------------------------


class Worker:
    def __init__(self, framework: str, case: str, args):
        env = dict(os.environ, TIMETRIAL_TORCH_COMPILE=args.torch_compile,
                   PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT),
                                                           os.environ.get('PYTHONPATH')])))
        self.log = tempfile.NamedTemporaryFile('w+', prefix=f'parity-{framework}-', suffix='.log')
        cmd = [sys.executable, __file__, '--worker', framework, '--case', case,
               '--batches', str(args.batches)]
        cmd += ['--data-dir', args.data_dir] if args.data_dir else []
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.log, text=True, env=env)

    def read(self, kind: str) -> dict:
        for line in self.proc.stdout:
            if line.startswith(MARK):
                message = json.loads(line[len(MARK):])
                if message['kind'] == kind:
                    return message
        self.log.seek(0)
        tail = self.log.read().strip().splitlines()[-3:]
        raise RuntimeError(f'the worker ended without {kind!r}: ' + ' | '.join(tail))

    def ask(self, command: str, kind: str) -> dict:
        self.proc.stdin.write(command + '\n')
        self.proc.stdin.flush()
        return self.read(kind)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.write('quit\n')
            self.proc.stdin.flush()
            self.proc.wait(timeout=60)
        self.log.close()


def _peak_for(device: str, measured: float) -> tuple:
    """(peak FLOP/s, where it comes from)."""
    if device.startswith(('cuda', 'gpu')):
        for key, peak in GPU_PEAK_BF16:
            if key in device:
                return peak, f'spec bf16 dense ({key})'
        return measured, 'measured bf16 matmul (GPU not in the spec table)'
    return measured, 'measured matmul'


def run_case(case: str, args) -> dict:
    workers, ready, times, teacher = {}, {}, {fw: [] for fw in FRAMEWORKS}, {}
    try:
        for fw in FRAMEWORKS:  # one at a time: compilations do not compete for the cores
            workers[fw] = Worker(fw, case, args)
            ready[fw] = workers[fw].read('ready')
        for r in range(args.rounds):
            for fw in FRAMEWORKS if r % 2 == 0 else FRAMEWORKS[::-1]:
                reply = workers[fw].ask(f'run {args.steps}', 'time')
                times[fw].append(reply['seconds'] / args.steps)
                teacher.setdefault(fw, []).append(reply['teacher_seconds'] / args.steps)
        peaks = {fw: workers[fw].ask('peak', 'peak')['flops_per_s'] for fw in FRAMEWORKS}
    except (RuntimeError, OSError, ValueError) as error:
        return {'case': case, 'error': str(error)}
    finally:
        for w in workers.values():
            w.close()
    peak, peak_source = _peak_for(ready['pytorch']['device'], max(peaks.values()))
    rows = {}
    for fw in FRAMEWORKS:
        info, step_s = ready[fw], statistics.median(times[fw])
        rows[fw] = {**info, 'step_ms': [t * 1e3 for t in times[fw]],
                    'teacher_ms': statistics.median(teacher[fw]) * 1e3,
                    'items_per_s': info['items_per_step'] / step_s,
                    'flops_per_s': info['flops_per_step'] / step_s}
        rows[fw]['mfu'] = rows[fw]['flops_per_s'] / peak
    ratios = [t / j for t, j in zip(times['pytorch'], times['jax'])]
    return {'case': case, 'rows': rows, 'ratios': ratios, 'peak': peak,
            'peak_source': peak_source, 'peaks': peaks}


def _spread(values, fmt='{:.1f}') -> str:
    return (f'{fmt.format(statistics.median(values))} '
            f'({fmt.format(min(values))}-{fmt.format(max(values))})')


def print_report(results, args, load_before, load_after) -> None:
    print('| case | framework | batch | step ms median (min-max) | teacher ms | items/s '
          '| GFLOP/s | % of peak | first step s |')
    print('|---|---|---|---|---|---|---|---|---|')
    for res in results:
        if 'error' in res:
            print(f"| {res['case']} | failed: {res['error']} |")
            continue
        for fw, row in res['rows'].items():
            teacher = f"{row['teacher_ms']:.1f}" if row['teacher_ms'] else '-'
            print(f"| {res['case']} | {fw} | {row['batch_size']} | {_spread(row['step_ms'])} | "
                  f"{teacher} | {row['items_per_s']:,.0f} {row['item']} | "
                  f"{row['flops_per_s'] / 1e9:,.1f} | {100 * row['mfu']:.1f} % | "
                  f"{row['first_step_s']:.1f} |")
    print()
    for res in results:
        if 'error' in res:
            continue
        ok = 1 / 1.15 <= statistics.median(res['ratios']) <= 1.15
        peaks = ', '.join(f'{fw} {p / 1e9:,.0f}' for fw, p in res['peaks'].items())
        print(f"ratio pytorch/jax {res['case']}: {_spread(res['ratios'], '{:.3f}')} "
              f"(goal within 1.15: {'met' if ok else 'NOT met'}); peak "
              f"{res['peak'] / 1e9:,.0f} GFLOP/s ({res['peak_source']}; matmul measured: "
              f"{peaks} GFLOP/s, dtype {res['rows']['jax']['dtype']})")
    versions = {fw: row['version'] for res in results if 'rows' in res
                for fw, row in res['rows'].items()}
    print(f'versions: {versions}; load average (1 min) before: {load_before:.2f}, '
          f'after: {load_after:.2f} on {os.cpu_count()} cores')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--cases', nargs='+', default=None,
                        help=f'workload:size pairs (default: {" ".join(CPU_CASES)})')
    parser.add_argument('--gpu', action='store_true', help=f'the GPU sizes: {" ".join(GPU_CASES)}')
    parser.add_argument('--rounds', type=int, default=7, help='interleaved blocks per framework')
    parser.add_argument('--steps', type=int, default=10, help='steps per block')
    parser.add_argument('--batches', type=int, default=4, help='distinct batches cycled through')
    parser.add_argument('--torch-compile', default='on', choices=('on', 'off', 'auto'),
                        help='TIMETRIAL_TORCH_COMPILE for the PyTorch worker (default on)')
    parser.add_argument('--data-dir')
    parser.add_argument('--worker', choices=FRAMEWORKS, help=argparse.SUPPRESS)
    parser.add_argument('--case', help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        from harness import paths

        return worker(args.worker, args.case, str(paths.resolve_data_dir(args.data_dir)),
                      args.batches)
    cases = args.cases or (GPU_CASES if args.gpu else CPU_CASES)
    env = ''.join(f'{k}={shlex.quote(os.environ[k])} ' for k in ENV_SHOWN if os.environ.get(k))
    print(f'command: {env}python benchmarks/framework_parity.py {shlex.join(sys.argv[1:])}')
    print(f'machine: {_cpu_model()}, {os.cpu_count()} cores, python {platform.python_version()}')
    load_before = os.getloadavg()[0]
    results = [run_case(case, args) for case in cases]
    print_report(results, args, load_before, os.getloadavg()[0])


if __name__ == '__main__':
    main()
