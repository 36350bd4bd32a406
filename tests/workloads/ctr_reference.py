"""DCN-V2 written out in numpy, one example at a time, from the formulas of workloads/ctr/model.py.

The reference the JAX and PyTorch models are checked against: column vectors
and explicit sums over experts, so it reads like the paper rather than like
either implementation.
"""

from __future__ import annotations

import numpy as np

from workloads.ctr.model import ModelConfig


def relu(z):
    return np.maximum(z, 0.0)


def cross_layer(cfg: ModelConfig, w, x0: np.ndarray, x: np.ndarray) -> np.ndarray:
    """x_{l+1} for one example (x0, x_l of shape (D,)); ``w`` holds the layer's [in, out] arrays."""
    b = w['bias']
    if cfg.cross == 'full':
        return x0 * (w['kernel'].T @ x + b) + x
    if cfg.cross == 'lowrank':
        return x0 * (w['u'] @ (w['v'].T @ x) + b) + x
    scores = w['gate'].T @ x  # (K,)
    gates = np.exp(scores - scores.max()) / np.exp(scores - scores.max()).sum()
    out = x.astype(np.float64)
    for i in range(cfg.num_experts):
        u, v, c_t = w['u'][i], w['v'][i], w['c'][i]  # (D, r), (D, r), C_iᵀ (r, r)
        expert = x0 * (u @ relu(c_t.T @ relu(v.T @ x)) + b)  # E_i(x) = x0 ⊙ (U g(C g(Vᵀ x)) + b)
        out = out + gates[i] * expert
    return out


def logits(cfg: ModelConfig, weights, inputs: np.ndarray) -> np.ndarray:
    """(B,) logits of DCN-V2 with ``weights`` (model.init_weights' layout) on ``inputs``."""
    weights = {
        layer: {k: np.asarray(v, np.float64) for k, v in arrays.items()}
        for layer, arrays in weights.items()
    }
    out = []
    for row in np.asarray(inputs, np.float64):
        dense, ids = row[: cfg.num_dense], row[cfg.num_dense :].astype(np.int64)
        embedded = [weights[f'embedding_{f}']['embedding'][i] for f, i in enumerate(ids)]
        x0 = np.concatenate([dense, *embedded])
        x = x0
        for layer in range(cfg.num_cross_layers):
            x = cross_layer(cfg, weights[f'cross_{layer}'], x0, x)
        h = x0 if cfg.structure == 'parallel' else x
        for layer in range(len(cfg.deep_widths)):
            dense_w = weights[f'dense_{layer}']
            h = relu(dense_w['kernel'].T @ h + dense_w['bias'])
        top = np.concatenate([x, h]) if cfg.structure == 'parallel' else h
        out.append((weights['output']['kernel'].T @ top + weights['output']['bias'])[0])
    return np.asarray(out)
