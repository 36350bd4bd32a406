"""benchmarks/framework_parity.py runs as documented and prints its table, ratios and command."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / 'benchmarks' / 'framework_parity.py'


def test_parity_table_for_lm_tiny(data_dir):
    args = ['--cases', 'lm:tiny', '--rounds', '2', '--steps', '1', '--batches', '2',
            '--torch-compile', 'off', '--data-dir', data_dir]
    shown = ('OMP_WAIT_POLICY', 'OMP_NUM_THREADS', 'XLA_FLAGS', 'TORCHINDUCTOR_CACHE_DIR',
             'CUDA_VISIBLE_DEVICES')  # printed with the command when set
    env = {k: v for k, v in os.environ.items() if k not in shown}
    env['OMP_WAIT_POLICY'] = 'PASSIVE'
    out = subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True,
                         timeout=900, cwd=ROOT, env=env)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == ('command: OMP_WAIT_POLICY=PASSIVE python benchmarks/framework_parity.py '
                        + ' '.join(args))
    rows = [line for line in lines if line.startswith('| lm:tiny |')]
    assert [row.split('|')[2].strip() for row in rows] == ['jax', 'pytorch']
    for row in rows:
        cells = [c.strip() for c in row.split('|')[1:-1]]
        assert cells[2] == '16' and cells[5].endswith('tokens') and cells[7].endswith('%')
    [ratio] = [line for line in lines if line.startswith('ratio pytorch/jax lm:tiny:')]
    assert 'measured matmul' in ratio and 'dtype float32' in ratio


def test_gpu_peaks_come_from_the_spec_table():
    sys.path.insert(0, str(ROOT / 'benchmarks'))
    import framework_parity

    assert framework_parity._peak_for('cuda:NVIDIA H100 80GB HBM3', 1.0) == (
        989e12, 'spec bf16 dense (H100)')
    assert framework_parity._peak_for('cuda:NVIDIA H100 PCIe', 1.0)[0] == 756e12
    assert framework_parity._peak_for('cuda:NVIDIA H200', 1.0)[0] == 989e12
    assert framework_parity._peak_for('cuda:Some Future GPU', 5.0)[0] == 5.0
    assert framework_parity._peak_for('cpu', 7.0) == (7.0, 'measured matmul')
