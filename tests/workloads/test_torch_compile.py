"""torch.compile in the PyTorch workloads: the setting, compiled = eager, checkpoints both
ways, recompile counting and the logged fallback (workloads/_common/torch_compile.py).

The tests use dynamo's fast ``aot_eager`` backend, which goes through the same wrapper,
graph capture and AOTAutograd without generating C++; the loss/gradient comparison runs
with inductor (the real compiler) too, as an integration test (a cold compile).
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from harness import spec
from harness.errors import UserInputError
from harness.trial.backends import get_backend
from harness.submission.view import MetricsLogger
from workloads._common import torch_compile, torch_utils
from workloads.lm import torch_impl as lm_torch
from workloads.lm import workload as lm
from workloads.lm_slm.workload import FixedConfig

# One layer, width 32, 64 tokens of vocabulary, 16 positions: compiles in seconds.
SMALL = lm.LmConfig(n_layers=1, d_model=32, n_heads=2, seq_len=16, default_batch_size=4,
                    eval_sequences=4, eval_batch_size=4, vocab_size=64)


class SmallLm(FixedConfig, lm_torch.LmTorchWorkload):
    """lm's PyTorch model at SMALL."""


@pytest.fixture(autouse=True)
def fresh_dynamo():
    """Each test starts without compiled graphs (dynamo caches them per code object)."""
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def _workload(monkeypatch, setting: str, backend='aot_eager') -> SmallLm:
    monkeypatch.setenv(torch_compile.ENV_VAR, setting)
    monkeypatch.setattr(torch_compile, 'BACKEND', backend)
    workload = SmallLm('tiny', SMALL)
    workload.attach_metrics_logger(MetricsLogger())
    return workload


def _batch(seed: int = 0, batch_size: int = 4):
    rng = np.random.default_rng(seed)
    tokens = rng.integers(0, SMALL.vocab_size, size=(batch_size, SMALL.seq_len + 1))
    return torch_utils.to_device({'inputs': tokens[:, :-1], 'targets': tokens[:, 1:]},
                                 {'inputs': torch.int64, 'targets': torch.int64})


def _loss_and_grads(workload, model, batch):
    model.zero_grad(set_to_none=True)
    logits, _ = workload.model_fn(model, batch, None, spec.ForwardPassMode.TRAIN, None, True)
    out = workload.loss_fn(batch['targets'], logits)
    loss = out['summed'] / out['n_valid_examples']
    loss.backward()
    return loss.detach().item(), {n: p.grad.detach().clone() for n, p in model.named_parameters()}


def _logged(workload):
    return [r for r in workload.metrics_logger.drain() if 'torch_compile' in r]


# ---- the setting ------------------------------------------------------------------


def test_setting_defaults_to_auto_which_compiles_on_gpus_only(monkeypatch):
    monkeypatch.delenv(torch_compile.ENV_VAR, raising=False)
    assert torch_compile.setting() == 'auto'
    assert torch_compile.decide(torch.device('cuda'))[0] is True
    enabled, reason = torch_compile.decide(torch.device('cpu'))
    assert enabled is False and 'auto' in reason
    monkeypatch.setenv(torch_compile.ENV_VAR, ' On ')
    assert torch_compile.decide(torch.device('cpu')) == (True, f'{torch_compile.ENV_VAR}=on')
    monkeypatch.setenv(torch_compile.ENV_VAR, 'off')
    assert torch_compile.decide(torch.device('cuda'))[0] is False


def test_a_bad_setting_fails_at_init_with_the_valid_values(monkeypatch):
    monkeypatch.setenv(torch_compile.ENV_VAR, 'yes')
    with pytest.raises(UserInputError, match=r"TIMETRIAL_TORCH_COMPILE='yes'.*auto, on, off"):
        SmallLm('tiny', SMALL).init_model_fn(np.array([0, 1], np.uint32))


def test_each_process_compiles_cold_unless_the_user_chose_a_cache(monkeypatch, tmp_path):
    from torch._inductor.runtime.cache_dir_utils import default_cache_dir

    monkeypatch.setattr('atexit.register', lambda *args: None)  # tmp_path cleans up
    monkeypatch.setattr('tempfile.tempdir', str(tmp_path))
    for before in (None, default_cache_dir()):  # unset, or torch's own default
        if before is None:
            monkeypatch.delenv('TORCHINDUCTOR_CACHE_DIR', raising=False)
        else:
            monkeypatch.setenv('TORCHINDUCTOR_CACHE_DIR', before)
        torch_compile._use_private_inductor_cache()
        folder = os.environ['TORCHINDUCTOR_CACHE_DIR']
        assert folder.startswith(str(tmp_path / 'timetrial-inductor-'))
        torch_compile._use_private_inductor_cache()  # once per process
        assert os.environ['TORCHINDUCTOR_CACHE_DIR'] == folder
    monkeypatch.setenv('TORCHINDUCTOR_CACHE_DIR', str(tmp_path / 'warm'))
    torch_compile._use_private_inductor_cache()
    assert os.environ['TORCHINDUCTOR_CACHE_DIR'] == str(tmp_path / 'warm')


# ---- compiled = eager ------------------------------------------------------------------


@pytest.mark.parametrize('backend', [
    'aot_eager',
    # A cold inductor compile (C++ built with the system compiler) takes 20-100 s on 2 cores.
    pytest.param('inductor', marks=pytest.mark.integration),
])
def test_compiled_training_gives_the_eager_loss_and_gradients(monkeypatch, backend):
    """Compiled against eager from the same weights: the float32 loss within 1e-5 relative,
    gradients within 1e-4 relative (inductor's fused kernels sum in another order)."""
    weights = lm.init_params(SMALL, seed=3)
    eager = _workload(monkeypatch, 'off')
    eager_loss, eager_grads = _loss_and_grads(eager, eager.params_from_canonical(weights),
                                              _batch())
    compiled = _workload(monkeypatch, 'on', backend=backend)
    model = compiled.params_from_canonical(weights)
    for seed in (0, 1):  # the second call reuses the compiled graph
        loss, grads = _loss_and_grads(compiled, model, _batch(seed))
        if seed == 0:
            assert loss == pytest.approx(eager_loss, rel=1e-5)
            for name, grad in grads.items():
                torch.testing.assert_close(grad, eager_grads[name], rtol=1e-4, atol=1e-6)
    assert [r['torch_compile'] for r in _logged(compiled)] == ['on']
    assert _logged(eager) == []  # eager says nothing


def test_evaluation_runs_eager_and_params_stay_the_eager_module(monkeypatch):
    workload = _workload(monkeypatch, 'on')
    model = workload.params_from_canonical(lm.init_params(SMALL, seed=0))
    _loss_and_grads(workload, model, _batch())
    assert not hasattr(model, '_orig_mod')
    before = get_backend('pytorch').compile_count()
    logits, _ = workload.model_fn(model, _batch(), None, spec.ForwardPassMode.EVAL, None, False)
    assert logits.shape == (4, SMALL.seq_len, SMALL.vocab_size)
    assert get_backend('pytorch').compile_count() == before


# ---- checkpoints -----------------------------------------------------------------------


@pytest.mark.parametrize('saved_by, restored_by', [('on', 'off'), ('off', 'on')])
def test_checkpoints_restore_across_compile_settings(monkeypatch, saved_by, restored_by):
    """A checkpoint is the eager module's state dict either way (no ``_orig_mod.`` prefix):
    trained with one setting, restored with the other, the next step is the same."""
    backend = get_backend('pytorch')
    first = _workload(monkeypatch, saved_by)
    model, _ = first.init_model_fn(np.array([0, 5], np.uint32))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, fused=True)
    for seed in range(2):
        _loss_and_grads(first, model, _batch(seed))
        opt.step()
    saved = backend.params_to_host(model)
    assert list(saved) == [name for name, _ in model.named_parameters()]
    assert not any('_orig_mod' in name for name in saved)

    second = _workload(monkeypatch, restored_by)
    fresh, _ = second.init_model_fn(np.array([0, 6], np.uint32))  # other weights, replaced
    restored = backend.params_from_host(saved, fresh)
    for name, tensor in restored.state_dict().items():
        torch.testing.assert_close(tensor, saved[name], rtol=0, atol=0)
    loss_restored, _ = _loss_and_grads(second, restored, _batch(2))
    loss_original, _ = _loss_and_grads(first, model, _batch(2))
    assert loss_restored == pytest.approx(loss_original, rel=1e-5)


# ---- recompiles and the fallback -------------------------------------------------------------


def test_recompiles_after_warm_up_are_counted(monkeypatch):
    backend = get_backend('pytorch')
    workload = _workload(monkeypatch, 'on')
    model = workload.params_from_canonical(lm.init_params(SMALL, seed=0))
    start = backend.compile_count()
    _loss_and_grads(workload, model, _batch(0))
    warm = backend.compile_count()
    assert warm > start  # the first call compiled
    _loss_and_grads(workload, model, _batch(1))
    assert backend.compile_count() == warm  # same shapes: the compiled graph is reused
    _loss_and_grads(workload, model, _batch(2, batch_size=2))  # a new shape recompiles
    assert backend.compile_count() > warm
    torch._dynamo.utils.counters.clear()  # the count never goes back
    assert backend.compile_count() >= warm + 1


def test_compile_count_is_zero_and_imports_nothing_when_eager():
    import subprocess
    import sys

    code = ('import sys; from harness.trial.backends import get_backend; '
            'n = get_backend("pytorch").compile_count(); '
            'print(n, "torch._dynamo" in sys.modules)')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.split() == ['0', 'False']


def _failing_backend(graph_module, example_inputs):
    raise RuntimeError('simulated compiler failure')


def test_a_compile_failure_falls_back_to_eager_and_logs_why(monkeypatch):
    weights = lm.init_params(SMALL, seed=4)
    eager = _workload(monkeypatch, 'off')
    expected, _ = _loss_and_grads(eager, eager.params_from_canonical(weights), _batch())
    workload = _workload(monkeypatch, 'on', backend=_failing_backend)
    model = workload.params_from_canonical(weights)
    with pytest.warns(RuntimeWarning, match='torch_compile:fallback'):
        loss, _ = _loss_and_grads(workload, model, _batch())
    assert loss == pytest.approx(expected, rel=1e-6)
    records = _logged(workload)
    assert [r['torch_compile'] for r in records] == ['on', 'fallback']
    assert 'simulated compiler failure' in records[1]['reason']
    assert records[1]['step'] == 0
    _loss_and_grads(workload, model, _batch(1))  # stays eager, logs nothing more
    assert _logged(workload) == []
    assert torch_compile.compiler_of(workload).enabled is False


def test_an_error_of_the_model_itself_is_raised_not_swallowed(monkeypatch):
    workload = _workload(monkeypatch, 'on')
    model = workload.params_from_canonical(lm.init_params(SMALL, seed=0))
    batch = _batch()
    batch['inputs'] = batch['inputs'] + SMALL.vocab_size  # ids outside the vocabulary
    with pytest.raises(IndexError):
        workload.model_fn(model, batch, None, spec.ForwardPassMode.TRAIN, None, True)
    assert not any(r['torch_compile'] == 'fallback' for r in _logged(workload))


def test_inside_a_torch_func_transform_the_model_runs_eager_once_logged(monkeypatch):
    workload = _workload(monkeypatch, 'on')
    model = workload.params_from_canonical(lm.init_params(SMALL, seed=0))
    params = {k: v.detach() for k, v in model.named_parameters()}
    batch = _batch()

    def loss(p):
        logits, _ = workload.model_fn(
            _Functional(model, p), batch, None, spec.ForwardPassMode.TRAIN, None, True)
        return workload.loss_fn(batch['targets'], logits)['summed']

    before = get_backend('pytorch').compile_count()
    for _ in range(2):
        torch.func.grad(loss)(params)
    assert get_backend('pytorch').compile_count() == before
    assert [r['torch_compile'] for r in _logged(workload)] == ['on', 'eager_in_transform']


class _Functional(torch.nn.Module):
    """``model`` called with the parameters ``params`` (for torch.func)."""

    def __init__(self, model, params):
        super().__init__()
        self.model, self.params = model, params

    def forward(self, tokens, dropout_rate=0.0):
        return torch.func.functional_call(self.model, self.params, (tokens,),
                                          {'dropout_rate': dropout_rate})
