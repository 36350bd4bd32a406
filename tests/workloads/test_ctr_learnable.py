"""The synthetic generator's planted crosses are learnable: DCN beats a plain MLP."""

import numpy as np
import torch

from workloads._common.torch_utils import load_numpy_params
from workloads.ctr import metrics, model, synthetic
from workloads.ctr.torch_impl import DCNv2


def train_and_evaluate(cfg, inputs, labels, num_train, steps=600, batch_size=256, lr=3e-3):
    """Plain Adam from the numpy init; validation metrics on the rows after num_train."""
    torch.manual_seed(0)
    net = DCNv2(cfg)
    weights = model.init_weights(cfg, seed=0)
    load_numpy_params(
        net,
        {
            f'{layer}.{name}': array
            for layer, arrays in weights.items()
            for name, array in arrays.items()
        },
    )
    optimizer = torch.optim.Adam(net.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(0)
    for _ in range(steps):
        rows = torch.randint(0, num_train, (batch_size,), generator=generator)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(net(inputs[rows]), labels[rows])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        logits = net(inputs[num_train:]).numpy()
    base_rate = float(labels[:num_train].mean())
    return metrics.ctr_metrics(labels[num_train:].numpy(), logits, base_rate)


def test_dcn_beats_an_mlp_on_the_planted_crosses():
    spec = synthetic.SyntheticSpec(
        num_train=100_000, num_validation=20_000, max_cardinality=300, chunk_rows=1 << 14
    )
    dense, sparse, labels = map(np.concatenate, zip(*synthetic.generate(spec, seed=0)))
    inputs = torch.from_numpy(np.concatenate([dense, sparse.astype(np.float32)], axis=1))
    labels = torch.from_numpy(labels)
    tables = tuple(int(c) for c in synthetic.cardinalities(spec))
    common = dict(num_dense=13, table_sizes=tables, embed_dim=8)
    dcn = model.ModelConfig(num_cross_layers=2, deep_widths=(64, 32), **common)
    # The MLP gets a wider deep network (its parameter count is close to the DCN's).
    mlp = model.ModelConfig(num_cross_layers=0, deep_widths=(256, 128, 32), **common)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small ops: one thread is faster and steadier on a shared CPU
    try:
        dcn_metrics = train_and_evaluate(dcn, inputs, labels, spec.num_train)
        mlp_metrics = train_and_evaluate(mlp, inputs, labels, spec.num_train)
    finally:
        torch.set_num_threads(threads)
    assert dcn_metrics['loss'] < mlp_metrics['loss'] - 0.03, (dcn_metrics, mlp_metrics)
    assert dcn_metrics['auc'] > mlp_metrics['auc'] + 0.02, (dcn_metrics, mlp_metrics)
