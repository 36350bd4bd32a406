"""``ctr`` in PyTorch: DCN-V2 and its glue. Reads side by side with jax_impl.py.

Parameters keep the flax names and the ``[in, out]`` layout (``x @ kernel``),
so ``named_parameters()`` are the flax paths joined with '.', and one numpy
initialization loads into both frameworks unchanged.
"""

from __future__ import annotations

import contextlib
import functools
from typing import Dict, Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from harness import spec
from workloads._common import torch_compile, torch_utils
from workloads._common.batches import MappedBatches
from workloads._common.rng import rng_to_seed
from workloads.ctr.model import ModelConfig, init_weights, param_type
from workloads.ctr.workload import CtrWorkload


class CrossLayer(nn.Module):
    """x0 ⊙ (W x + b) + x, W full or low-rank (U Vᵀ); or the gated mixture of low-rank experts."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg, d = cfg, cfg.input_dim
        self.bias = nn.Parameter(torch.zeros(d))  # real values come from model.init_weights
        if cfg.cross == 'full':
            self.kernel = nn.Parameter(torch.zeros(d, d))
        elif cfg.cross == 'lowrank':
            self.u = nn.Parameter(torch.zeros(d, cfg.rank))
            self.v = nn.Parameter(torch.zeros(d, cfg.rank))
        else:
            k, r = cfg.num_experts, cfg.rank
            self.u = nn.Parameter(torch.zeros(k, d, r))
            self.v = nn.Parameter(torch.zeros(k, d, r))
            self.c = nn.Parameter(torch.zeros(k, r, r))
            self.gate = nn.Parameter(torch.zeros(d, k))

    def forward(self, x0, x):  # (B, D), (B, D) -> (B, D)
        if self.cfg.cross == 'full':
            return x0 * (x @ self.kernel + self.bias) + x
        if self.cfg.cross == 'lowrank':
            return x0 * ((x @ self.v) @ self.u.T + self.bias) + x
        gates = torch.softmax(x @ self.gate, dim=-1)  # (B, K)
        low = F.relu(torch.einsum('bd,kdr->bkr', x, self.v))  # g(Vᵀ x): (B, K, r)
        low = F.relu(torch.einsum('bkr,krs->bks', low, self.c))  # g(C g(Vᵀ x)): (B, K, r)
        experts = x0[:, None, :] * (torch.einsum('bkr,kdr->bkd', low, self.u) + self.bias)
        return torch.einsum('bk,bkd->bd', gates, experts) + x


class Embed(nn.Module):
    def __init__(self, rows: int, dim: int):
        super().__init__()
        self.embedding = nn.Parameter(torch.zeros(rows, dim))

    def forward(self, ids):
        return F.embedding(ids, self.embedding)


class Dense(nn.Module):
    def __init__(self, fan_in: int, fan_out: int):
        super().__init__()
        self.kernel = nn.Parameter(torch.zeros(fan_in, fan_out))
        self.bias = nn.Parameter(torch.zeros(fan_out))

    def forward(self, x):
        return torch.addmm(self.bias, x, self.kernel)


class DCNv2(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        for f, rows in enumerate(cfg.table_sizes):
            self.add_module(f'embedding_{f}', Embed(rows, cfg.embed_dim))
        for layer in range(cfg.num_cross_layers):
            self.add_module(f'cross_{layer}', CrossLayer(cfg))
        width = cfg.input_dim
        for layer, out in enumerate(cfg.deep_widths):
            self.add_module(f'dense_{layer}', Dense(width, out))
            width = out
        if cfg.structure == 'parallel':
            width += cfg.input_dim
        self.output = Dense(width, 1)

    def forward(self, inputs, dropout_rate: float = 0.0):
        cfg = self.cfg
        dense = inputs[:, : cfg.num_dense]  # (B, n_dense)
        ids = inputs[:, cfg.num_dense :].long()  # (B, F)
        embedded = [getattr(self, f'embedding_{f}')(ids[:, f]) for f in range(len(cfg.table_sizes))]
        x0 = torch.cat([dense, *embedded], dim=-1)  # (B, D)
        x = x0
        for layer in range(cfg.num_cross_layers):
            x = getattr(self, f'cross_{layer}')(x0, x)
        h = x0 if cfg.structure == 'parallel' else x
        for layer in range(len(cfg.deep_widths)):
            h = F.relu(getattr(self, f'dense_{layer}')(h))
            if self.training and dropout_rate:
                h = F.dropout(h, dropout_rate, training=True)
        top = torch.cat([x, h], dim=-1) if cfg.structure == 'parallel' else h
        return self.output(top)[:, 0]  # (B,) logits


class CtrTorchWorkload(CtrWorkload):
    framework = 'pytorch'

    def init_model_fn(
        self,
        rng: spec.RandomState,
        dropout_rate: Optional[float] = None,
        aux_dropout_rate: Optional[float] = None,
    ) -> spec.ModelInitState:
        del dropout_rate, aux_dropout_rate
        weights = init_weights(self.config, rng_to_seed(rng))
        model = DCNv2(self.config)
        torch_utils.load_numpy_params(
            model,
            {
                f'{layer}.{name}': array
                for layer, arrays in weights.items()
                for name, array in arrays.items()
            },
        )
        model.to(torch_utils.device())
        named = dict(model.named_parameters())
        self._param_shapes = {k: spec.ShapeTuple(p.shape) for k, p in named.items()}
        self._param_types = {k: param_type(k) for k in named}
        torch_compile.compiler_of(self)  # Reads the setting now: a bad value fails before training.
        return model, None

    def model_fn(
        self,
        params,
        augmented_and_preprocessed_input_batch: Dict[str, spec.Tensor],
        model_state,
        mode: spec.ForwardPassMode,
        rng: spec.RandomState,
        update_batch_norm: bool,
        dropout_rate: Optional[float] = None,
    ):
        del rng, update_batch_norm
        train = mode == spec.ForwardPassMode.TRAIN
        params.train(train)
        # Training runs compiled when the setting says so (workloads/_common/torch_compile.py).
        forward = functools.partial(torch_compile.compiler_of(self), params) if train else params
        context = contextlib.nullcontext() if train else torch.no_grad()
        with context:
            logits = forward(
                augmented_and_preprocessed_input_batch['inputs'],
                dropout_rate=float(dropout_rate or 0.0),
            )
        return logits, model_state

    def loss_fn(self, label_batch, logits_batch, mask_batch=None, label_smoothing: float = 0.0):
        y = label_batch * (1.0 - label_smoothing) + 0.5 * label_smoothing
        z = logits_batch
        per_example = torch.clamp(z, min=0.0) - z * y + torch.log1p(torch.exp(-torch.abs(z)))
        mask = torch.ones_like(per_example) if mask_batch is None else mask_batch
        per_example = per_example * mask
        return {
            'summed': per_example.sum(),
            'n_valid_examples': mask.sum(),
            'per_example': per_example,
        }

    def _build_input_queue(
        self,
        data_rng,
        split: str,
        data_dir: str,
        global_batch_size: int,
        cache=None,
        repeat_final_dataset=None,
        num_batches=None,
    ):
        self._check_split(split)
        batches = self._numpy_train_batches(rng_to_seed(data_rng), data_dir, global_batch_size)
        return MappedBatches(batches, lambda batch: torch_utils.to_device(torch_utils.local_rows(batch)))

    def eval_model(
        self,
        global_batch_size,
        params,
        model_state,
        rng,
        data_dir,
        imagenet_v2_data_dir,
        global_step,
    ) -> Dict[str, float]:
        del global_batch_size, rng, imagenet_v2_data_dir, global_step
        return self._evaluate(params, model_state, data_dir)

    def _eval_logits(self, params, model_state, inputs: np.ndarray) -> np.ndarray:
        inputs = torch_utils.to_device({'inputs': inputs})['inputs']
        logits, _ = self.model_fn(
            params, {'inputs': inputs}, model_state, spec.ForwardPassMode.EVAL, None, False
        )
        return logits.float().cpu().numpy()
