"""DCN-V2, framework-free: configuration, numpy initialization, parameter types.

The network (Wang et al., DCN V2, arXiv:2008.13535):

    x0 = [dense ‖ E_1[s_1] ‖ ... ‖ E_F[s_F]]          (B, D), D = n_dense + F d
    cross layer l:  x_{l+1} = x0 ⊙ (W_l x_l + b_l) + x_l      'full'
                    W_l ≈ U_l V_lᵀ (rank r)                   'lowrank'
                    x_{l+1} = Σ_i G_i(x_l) E_i(x_l) + x_l      'moe'
                    E_i(x) = x0 ⊙ (U_i g(C_i g(V_iᵀ x)) + b_l)
                    G(x) = softmax(x G_l) over K experts
    stacked:   logit = out(MLP(cross(x0)))
    parallel:  logit = out([cross(x0) ‖ MLP(x0)])

Weights are stored in the ``[in, out]`` layout both frameworks share, so a
kernel ``K`` is ``Wᵀ`` and a layer computes ``x @ K`` (``W x`` for a column
vector). Low-rank factors: ``W x = U (Vᵀ x)`` is ``(x @ V) @ Uᵀ``; the MoE's
r x r map ``C_i`` is stored as ``C_iᵀ`` (``h @ c``).

The mixture is the paper's: each expert projects to r dimensions, applies g,
the r x r map C_i, g again, and projects back. The paper writes g as any
nonlinearity; we use ReLU, TorchRec's default in its LowRankMixtureCrossNet
(the widely used implementation of this layer). The experts share the bias
b_l as the paper writes it, and the gate G_l is a linear map without bias.

Initialization is written once here in numpy and loaded by both frameworks:
embeddings uniform(-0.05, 0.05), every matrix Glorot-uniform (TF Recommenders'
DCN defaults), biases zero.
"""

from __future__ import annotations

import dataclasses
from typing import Dict, Tuple

import numpy as np

from harness import spec

CROSS_KINDS = ('full', 'lowrank', 'moe')
# Keras' Embedding default, which TF Recommenders' DCN uses. Small on purpose:
# with unit-norm rows the products in x0 ⊙ (W x) start large and a DCN learned
# the planted crosses of the synthetic data no better than a plain MLP; with
# this scale it wins clearly (tests/workloads/test_ctr_learnable.py).
EMBEDDING_INIT = 0.05
STRUCTURES = ('stacked', 'parallel')


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    num_dense: int
    #: Rows of each categorical feature's embedding table.
    table_sizes: Tuple[int, ...]
    embed_dim: int
    num_cross_layers: int
    cross: str = 'full'
    #: Rank r of the low-rank and MoE cross layers.
    rank: int = 0
    num_experts: int = 0
    deep_widths: Tuple[int, ...] = ()
    structure: str = 'stacked'

    @property
    def input_dim(self) -> int:
        """D: width of x0, the cross network's input and output."""
        return self.num_dense + len(self.table_sizes) * self.embed_dim

    def __post_init__(self):
        if self.cross not in CROSS_KINDS or self.structure not in STRUCTURES:
            raise ValueError(
                f'cross in {CROSS_KINDS}, structure in {STRUCTURES}; got '
                f'{self.cross!r}, {self.structure!r}.'
            )
        if self.cross != 'full' and self.rank < 1:
            raise ValueError(f'A {self.cross} cross network needs rank >= 1.')
        if self.cross == 'moe' and self.num_experts < 1:
            raise ValueError('A moe cross network needs num_experts >= 1.')
        # Ids travel as float32 in batch['inputs'] (AlgoPerf's Criteo convention).
        if max(self.table_sizes, default=0) > 2**24:
            raise ValueError('Embedding tables above 2**24 rows do not fit float32 ids.')


def _glorot(rng: np.random.Generator, fan_in: int, fan_out: int, shape) -> np.ndarray:
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, shape).astype(np.float32)


def _cross_layer(rng: np.random.Generator, cfg: ModelConfig) -> Dict[str, np.ndarray]:
    d, r, k = cfg.input_dim, cfg.rank, cfg.num_experts
    bias = np.zeros(d, np.float32)
    if cfg.cross == 'full':
        return {'kernel': _glorot(rng, d, d, (d, d)), 'bias': bias}
    if cfg.cross == 'lowrank':
        return {'u': _glorot(rng, r, d, (d, r)), 'v': _glorot(rng, d, r, (d, r)), 'bias': bias}
    return {
        'u': _glorot(rng, r, d, (k, d, r)),
        'v': _glorot(rng, d, r, (k, d, r)),
        'c': _glorot(rng, r, r, (k, r, r)),
        'gate': _glorot(rng, d, k, (d, k)),
        'bias': bias,
    }


def init_weights(cfg: ModelConfig, seed: int) -> Dict[str, Dict[str, np.ndarray]]:
    """The initial weights as {layer: {name: float32 array}}, a pure function of seed.

    Layer names (the flax module names; torch parameter names join them with '.'):
    ``embedding_<f>``, ``cross_<l>``, ``dense_<l>``, ``output``.
    """
    rng = np.random.default_rng([seed, 7])
    weights: Dict[str, Dict[str, np.ndarray]] = {}
    for f, rows in enumerate(cfg.table_sizes):
        table = rng.uniform(-EMBEDDING_INIT, EMBEDDING_INIT, (rows, cfg.embed_dim))
        weights[f'embedding_{f}'] = {'embedding': table.astype(np.float32)}
    for layer in range(cfg.num_cross_layers):
        weights[f'cross_{layer}'] = _cross_layer(rng, cfg)
    width = cfg.input_dim
    for layer, out in enumerate(cfg.deep_widths):
        weights[f'dense_{layer}'] = {
            'kernel': _glorot(rng, width, out, (width, out)),
            'bias': np.zeros(out, np.float32),
        }
        width = out
    if cfg.structure == 'parallel':
        width = cfg.input_dim + (cfg.deep_widths[-1] if cfg.deep_widths else cfg.input_dim)
    weights['output'] = {
        'kernel': _glorot(rng, width, 1, (width, 1)),
        'bias': np.zeros(1, np.float32),
    }
    return weights


def param_type(path: str) -> spec.ParameterType:
    """ParameterType of a weight from its path ('cross_0/kernel' or 'cross_0.kernel')."""
    layer, name = path.replace('.', '/').split('/')[-2:]
    if layer.startswith('embedding_'):
        return spec.ParameterType.EMBEDDING
    if name == 'bias':
        return spec.ParameterType.BIAS
    return spec.ParameterType.WEIGHT


def count_params(weights: Dict[str, Dict[str, np.ndarray]]) -> int:
    return int(sum(a.size for layer in weights.values() for a in layer.values()))


def cross_layer_params(cfg: ModelConfig) -> int:
    """Parameters of one cross layer, from the formulas of the module docstring."""
    d, r, k = cfg.input_dim, cfg.rank, cfg.num_experts
    per_layer = {'full': d * d, 'lowrank': 2 * d * r, 'moe': k * (2 * d * r + r * r) + d * k}
    return per_layer[cfg.cross] + d  # + the bias b_l


def flops_per_example(cfg: ModelConfig) -> float:
    """Training FLOPs per example: 3 x (2 x multiply-adds of the forward pass).

    Embedding lookups and elementwise ops are not counted (memory-bound).
    """
    d, r, k = cfg.input_dim, cfg.rank, cfg.num_experts
    cross = {'full': d * d, 'lowrank': 2 * d * r, 'moe': k * (2 * d * r + r * r) + d * k}[cfg.cross]
    macs = cfg.num_cross_layers * cross
    width = d
    for out in cfg.deep_widths:
        macs += width * out
        width = out
    macs += width if cfg.structure == 'stacked' else width + d
    return 3.0 * 2.0 * macs
