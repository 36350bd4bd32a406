"""lm on a CUDA GPU: the small size (bfloat16 compute) agrees across frameworks. Marked gpu."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip('torch')
jax = pytest.importorskip('jax')

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(
        not torch.cuda.is_available() or jax.default_backend() != 'gpu',
        reason='needs a CUDA GPU visible to both JAX and PyTorch',
    ),
]


def test_small_bf16_forward_and_loss_agree_across_frameworks(lm_data_dir):
    from harness import registry, spec
    from workloads.lm import data

    wj = registry.make_workload('lm', 'jax', 'small')
    wt = registry.make_workload('lm', 'pytorch', 'small')
    wj.check_data(lm_data_dir)
    wt.check_data(lm_data_dir)
    pj, _ = wj.init_model_fn(jax.random.PRNGKey(0))
    pt = wt.params_from_canonical(wj.params_to_canonical(pj))
    assert next(pt.parameters()).device.type == 'cuda'
    # The generated corpus is short: windows of the small size's 1024 tokens may repeat.
    tokens = np.resize(np.asarray(data.open_split(lm_data_dir, 'train')), 4 * 1025)
    windows = tokens.reshape(4, 1025).astype(np.int32)
    batch = {'inputs': windows[:, :-1], 'targets': windows[:, 1:]}
    logits_j, _ = wj.model_fn(
        pj,
        {'inputs': jax.numpy.asarray(batch['inputs'])},
        None,
        spec.ForwardPassMode.EVAL,
        None,
        False,
    )
    inputs_t = torch.from_numpy(batch['inputs']).long().cuda()
    logits_t, _ = wt.model_fn(
        pt, {'inputs': inputs_t}, None, spec.ForwardPassMode.EVAL, None, False
    )
    logits_j, logits_t = np.asarray(logits_j), logits_t.cpu().numpy()
    # bfloat16 matmuls: compare the distributions' loss, and the logits loosely.
    assert np.abs(logits_j - logits_t).mean() < 0.05
    loss_j = float(wj.loss_fn(jax.numpy.asarray(batch['targets']), logits_j)['summed'])
    loss_t = wt.loss_fn(
        torch.from_numpy(batch['targets']).cuda(), torch.from_numpy(logits_t).cuda()
    )['summed'].item()
    np.testing.assert_allclose(loss_j, loss_t, rtol=2e-3)
