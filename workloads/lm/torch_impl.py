"""The lm workload in PyTorch. Model math and choices: see ``workload.py``.

Shapes: B batch, T sequence, D width, N heads, H head width, V vocabulary.
Parameter names are the canonical ones plus '.weight' (``blocks.0.attn.q.weight``);
``nn.Linear`` stores kernels as (out, in), the transpose of the canonical layout.
"""

from __future__ import annotations

import contextlib
import functools
from typing import Dict, Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from harness import spec
from workloads._common import param_trees, torch_compile, torch_utils
from workloads._common.batches import MappedBatches
from workloads._common.rng import rng_to_seed
from workloads.lm import workload as lm
from workloads.lm.workload import LmConfig


def _rotary_tables(t: int, h: int, base: float, device) -> Tuple[torch.Tensor, torch.Tensor]:
    """cos, sin of the rotary angles: (T, H/2) each, float32."""
    inv_freq = 1.0 / (base ** (torch.arange(0, h, 2, dtype=torch.float32, device=device) / h))
    angles = torch.arange(t, dtype=torch.float32, device=device)[:, None] * inv_freq[None, :]
    return torch.cos(angles), torch.sin(angles)


def _rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotary position embedding, rotate-half convention, of x: (B, N, T, H)."""
    x1, x2 = x.float().chunk(2, dim=-1)
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1).to(x.dtype)


class Attention(nn.Module):
    def __init__(self, cfg: LmConfig):
        super().__init__()
        self.n_heads, self.head_dim = cfg.n_heads, cfg.head_dim
        d = cfg.d_model
        self.q = nn.Linear(d, d, bias=False)
        self.k = nn.Linear(d, d, bias=False)
        self.v = nn.Linear(d, d, bias=False)
        self.o = nn.Linear(d, d, bias=False)

    def forward(self, x, cos, sin):
        b, t, d = x.shape

        def heads(y):  # (B, T, D) -> (B, N, T, H)
            return y.view(b, t, self.n_heads, self.head_dim).transpose(1, 2)

        q = _rotary(heads(self.q(x)), cos, sin)
        k = _rotary(heads(self.k(x)), cos, sin)
        y = F.scaled_dot_product_attention(q, k, heads(self.v(x)), is_causal=True)
        return self.o(y.transpose(1, 2).reshape(b, t, d))


class SwiGLU(nn.Module):
    def __init__(self, cfg: LmConfig):
        super().__init__()
        self.gate = nn.Linear(cfg.d_model, cfg.mlp_hidden, bias=False)
        self.up = nn.Linear(cfg.d_model, cfg.mlp_hidden, bias=False)
        self.down = nn.Linear(cfg.mlp_hidden, cfg.d_model, bias=False)

    def forward(self, x):
        return self.down(F.silu(self.gate(x)) * self.up(x))


class Block(nn.Module):
    def __init__(self, cfg: LmConfig):
        super().__init__()
        self.attn_norm = nn.RMSNorm(cfg.d_model, eps=cfg.norm_eps)
        self.attn = Attention(cfg)
        self.mlp_norm = nn.RMSNorm(cfg.d_model, eps=cfg.norm_eps)
        self.mlp = SwiGLU(cfg)

    def forward(self, x, cos, sin, dropout_rate: float):
        h = self.attn(self.attn_norm(x), cos, sin)
        x = x + _dropout(h, dropout_rate, self.training)
        h = self.mlp(self.mlp_norm(x))
        return x + _dropout(h, dropout_rate, self.training)


def _dropout(x: torch.Tensor, rate: float, training: bool) -> torch.Tensor:
    # A Python branch, so that a compiled graph at rate 0 holds no random-mask kernels
    # (torch.compile passes the float rate in as a symbolic input).
    return F.dropout(x, rate, True) if training and rate > 0 else x


class Transformer(nn.Module):
    def __init__(self, cfg: LmConfig):
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.final_norm = nn.RMSNorm(cfg.d_model, eps=cfg.norm_eps)

    def forward(self, tokens, dropout_rate: float = 0.0):
        cfg = self.cfg
        cos, sin = _rotary_tables(tokens.shape[1], cfg.head_dim, cfg.rope_base, tokens.device)
        x = self.embed(tokens)  # (B, T, D)
        for block in self.blocks:
            x = block(x, cos, sin, dropout_rate)
        x = self.final_norm(x)
        return F.linear(x, self.embed.weight)  # (B, T, V), tied head


def _torch_name(name: str) -> str:
    return name + '.weight'


def _is_linear(name: str) -> bool:
    return name != 'embed' and not name.endswith('norm')


class LmTorchWorkload(lm.BaseLmWorkload):
    framework = 'pytorch'

    def init_model_fn(self, rng: spec.RandomState) -> spec.ModelInitState:
        cfg = self.config
        self._model_vocab = cfg.vocab_size
        flat = lm.init_params(cfg, rng_to_seed(rng))
        model = self.params_from_canonical(flat)
        named = dict(model.named_parameters())
        self._param_shapes = param_trees.shape_tree(named)
        self._param_types = {_torch_name(name): lm.param_type(name) for name in flat}
        torch_compile.compiler_of(self)  # Reads the setting now: a bad value fails before training.
        return model, None

    def model_fn(
        self,
        params: spec.ParameterContainer,
        augmented_and_preprocessed_input_batch: Dict[str, spec.Tensor],
        model_state: spec.ModelAuxiliaryState,
        mode: spec.ForwardPassMode,
        rng: spec.RandomState,
        update_batch_norm: bool,
        dropout_rate: Optional[float] = None,
    ) -> Tuple[spec.Tensor, spec.ModelAuxiliaryState]:
        del rng, update_batch_norm  # Dropout draws from torch's generator; no batch norm.
        model = params
        train = mode == spec.ForwardPassMode.TRAIN
        model.train(train)
        tokens = augmented_and_preprocessed_input_batch['inputs']
        # Training runs compiled when the setting says so (workloads/_common/torch_compile.py).
        forward = functools.partial(torch_compile.compiler_of(self), model) if train else model
        grad = contextlib.nullcontext() if train else torch.no_grad()
        with grad, self._autocast(tokens.device):
            logits = forward(tokens, dropout_rate=float(dropout_rate or 0.0))
        return logits.float(), model_state

    def loss_fn(
        self,
        label_batch: spec.Tensor,
        logits_batch: spec.Tensor,
        mask_batch: Optional[spec.Tensor] = None,
        label_smoothing: float = 0.0,
    ) -> Dict[str, spec.Tensor]:
        # Compiled with the model when training: fused, the cross-entropy over the vocabulary
        # reads the logits once (eager: 25% of the tiny step on a CPU, mostly memory traffic).
        run = torch_compile.compiler_of(self) if logits_batch.requires_grad else _call
        summed, n_valid, per_token = run(
            _token_losses, logits_batch, label_batch, mask_batch, float(label_smoothing)
        )
        return {'summed': summed, 'n_valid_examples': n_valid, 'per_example': per_token}

    def _build_input_queue(
        self,
        data_rng: spec.RandomState,
        split: str,
        data_dir: str,
        global_batch_size: int,
        cache: Optional[bool] = None,
        repeat_final_dataset: Optional[bool] = None,
        num_batches: Optional[int] = None,
    ) -> spec.BatchIterator:
        del cache, repeat_final_dataset, num_batches  # The stream is infinite and in memory.
        if split != 'train':
            raise ValueError(
                f"lm builds an input queue for split 'train' only, not {split!r}; "
                'evaluation uses fixed windows (eval_model).'
            )
        return MappedBatches(
            self._train_batches(data_rng, data_dir, global_batch_size),
            lambda batch: _to_device(torch_utils.local_rows(batch)),
        )

    def eval_model(
        self,
        global_batch_size: int,
        params: spec.ParameterContainer,
        model_state: spec.ModelAuxiliaryState,
        rng: spec.RandomState,
        data_dir: str,
        imagenet_v2_data_dir: Optional[str],
        global_step: int,
    ) -> Dict[str, float]:
        del model_state, rng, imagenet_v2_data_dir, global_step

        def sums(batch):
            batch = _to_device(batch)
            logits, _ = self.model_fn(params, batch, None, spec.ForwardPassMode.EVAL, None, False)
            out = self.loss_fn(batch['targets'], logits, batch['weights'])
            return out['summed'].item(), out['n_valid_examples'].item()

        return self._evaluate(data_dir, global_batch_size, sums)

    # ---- helpers (not part of the AlgoPerf API)

    def _autocast(self, device: torch.device):
        """bfloat16 matmuls and attention when the size computes in bfloat16."""
        return torch.autocast(
            device.type, dtype=torch.bfloat16, enabled=self.config.compute_dtype == 'bfloat16'
        )

    def params_from_canonical(self, flat: Dict[str, np.ndarray]) -> Transformer:
        """Canonical numpy weights (``workload.init_params`` layout) -> a module on the device."""
        with torch.device('meta'):  # No throwaway default init: the weights come from numpy.
            model = Transformer(self.config)
        model = model.to_empty(device=torch_utils.device())
        torch_utils.load_numpy_params(
            model,
            {
                _torch_name(name): (value.T if _is_linear(name) else value)
                for name, value in flat.items()
            },
        )
        return model

    def params_to_canonical(self, model: Transformer) -> Dict[str, np.ndarray]:
        """Module -> canonical numpy weights (the inverse of ``params_from_canonical``)."""
        named = torch_utils.module_to_numpy(model)
        return {
            name: (
                named[_torch_name(name)].T.copy() if _is_linear(name) else named[_torch_name(name)]
            )
            for name in lm.param_specs(self.config)
        }


def _token_losses(
    logits: torch.Tensor, labels: torch.Tensor, mask: Optional[torch.Tensor], smoothing: float
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(summed, n_valid, per_token (B, T)) of ``loss_fn``, in float32."""
    logits = logits.float()  # (B, T, V)
    # torch's smoothing is (1 - ε)·NLL + ε·mean_v(-log p_v): the workload.py formula.
    per_token = F.cross_entropy(
        logits.reshape(-1, logits.shape[-1]),
        labels.reshape(-1).long(),
        reduction='none',
        label_smoothing=smoothing,
    ).view(labels.shape)
    mask = torch.ones_like(per_token) if mask is None else mask.to(per_token.dtype)
    per_token = per_token * mask
    return per_token.sum(), mask.sum(), per_token


def _call(fn, *args):
    return fn(*args)


def _to_device(batch: Dict[str, np.ndarray]) -> Dict[str, torch.Tensor]:
    # Token ids as int64, torch's index dtype (embedding lookup, cross-entropy targets).
    return torch_utils.to_device(batch, {'inputs': torch.int64, 'targets': torch.int64})
