"""Throughput of the ctr input path against the training step it feeds.

Prints examples/s of (1) the Criteo TSV reader on a generated file, (2) the
prepared-batch pipeline (memory-mapped gather + the background prefetch, as
the trainer sees it), and (3) the AdamW training step at each size and
framework, then the ratio pipeline / step: it must stay well above 1 (the
input pipeline is never the bottleneck). Data are generated; nothing is
downloaded.

    python benchmarks/ctr_input.py                      # tiny + base, both frameworks
    python benchmarks/ctr_input.py --sizes tiny --frameworks jax --steps 50

Base on a CPU is slow: a few steps give its rate (use --base-steps).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import types
from pathlib import Path

import numpy as np

from harness import registry
from workloads.ctr import criteo_reader, data, measure
from workloads.ctr.fakes import write_criteo_file, write_prepared


def bench_reader(folder: Path, num_lines: int) -> float:
    path = write_criteo_file(folder / 'day_0', num_lines, seed=0)
    size_mb = path.stat().st_size / 1e6
    start = time.perf_counter()
    reader = criteo_reader.CriteoTsvReader([path], criteo_reader.CRITEO_VOCAB_SIZES)
    rows = sum(len(block.labels) for block in reader)
    elapsed = time.perf_counter() - start
    print(
        f'reader lines:{rows} file_mb:{size_mb:.1f} seconds:{elapsed:.2f} '
        f'examples_per_s:{rows / elapsed:.0f} mb_per_s:{size_mb / elapsed:.1f}'
    )
    return rows / elapsed


def bench_pipeline(ctr: data.CtrData, batch_size: int, table_sizes, batches: int) -> float:
    iterator = data.TrainBatches(ctr, seed=0, global_batch_size=batch_size, table_sizes=table_sizes)
    next(iterator)  # first permutation
    start = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    rate = batches * batch_size / (time.perf_counter() - start)
    print(f'pipeline batch:{batch_size} examples_per_s:{rate:.0f}')
    return rate


def bench_step(workload, data_dir: str, batch_size: int, steps: int) -> float:
    args = types.SimpleNamespace(lr=1e-3, wd=0.03, steps=max(steps, 20))
    if workload.framework == 'jax':
        import jax

        params, _ = workload.init_model_fn(jax.random.PRNGKey(0))
        step, _ = measure._jax_trainer(workload, params, args)
        data_rng = jax.random.PRNGKey(1)
    else:
        params, _ = workload.init_model_fn(np.array([0, 0], np.uint32))
        step, _ = measure._torch_trainer(workload, params, args)
        data_rng = np.array([0, 1], np.uint32)
    queue = workload._build_input_queue(data_rng, 'train', data_dir, batch_size)
    start = time.perf_counter()
    step(next(queue))
    compile_s = time.perf_counter() - start
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step(next(queue))
        times.append(time.perf_counter() - start)
    rate = batch_size / statistics.median(times)
    print(
        f'train_step framework:{workload.framework} size:{workload.size} batch:{batch_size} '
        f'first_step_s:{compile_s:.2f} median_step_ms:{1000 * statistics.median(times):.2f} '
        f'examples_per_s:{rate:.0f}'
    )
    return rate


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--sizes', default='tiny,base')
    parser.add_argument('--frameworks', default='jax,pytorch')
    parser.add_argument('--reader-lines', type=int, default=200_000)
    parser.add_argument('--steps', type=int, default=30, help='timed steps at tiny')
    parser.add_argument('--base-steps', type=int, default=5, help='timed steps at base')
    parser.add_argument(
        '--data-dir',
        default=None,
        help='use prepared data from here (default: generated random rows)',
    )
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix='ctr-bench-') as tmp:
        tmp = Path(tmp)
        bench_reader(tmp, args.reader_lines)
        for size in args.sizes.split(','):
            probe = registry.make_workload('ctr', args.frameworks.split(',')[0], size)
            cfg, batch_size = probe.config, probe.default_batch_size
            data_dir = args.data_dir or str(tmp / size)
            if args.data_dir is None:
                num_train = max(50 * batch_size, 100_000)
                write_prepared(
                    data_dir, probe.source, cfg.num_dense, cfg.table_sizes, num_train, 1000
                )
            ctr = data.CtrData(data.check_prepared(data_dir, probe.source))
            pipe = bench_pipeline(ctr, batch_size, cfg.table_sizes, batches=200)
            for framework in args.frameworks.split(','):
                workload = registry.make_workload('ctr', framework, size)
                steps = args.steps if size == 'tiny' else args.base_steps
                rate = bench_step(workload, data_dir, batch_size, steps)
                print(
                    f'ratio size:{size} framework:{framework} pipeline_over_step:{pipe / rate:.1f}'
                )


if __name__ == '__main__':
    main()
