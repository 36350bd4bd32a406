"""Federated Shakespeare in PyTorch: the model and the framework glue.

Same functions in the same order as ``jax_impl.py``. Params are functional:
a dict ``named_parameters`` name -> tensor, applied with
``torch.func.functional_call``, so submissions can ``torch.func.vmap`` local
training over clients. (An ``nn.Module`` is accepted too, as in AlgoPerf.)
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from harness import spec
from workloads._common import torch_compile
from workloads._common.rng import rng_to_seed
from workloads._common.torch_utils import device, to_device
from workloads.federated_shakespeare import data
from workloads.federated_shakespeare.workload import (
    FederatedShakespeareWorkload,
    init_weights,
    param_type,
)

LN_EPS = 1e-5
NEG_INF = -1e9  # causal mask fill; finite so a fully masked row cannot produce NaN


class Block(nn.Module):
    def __init__(self, d_model: int, num_heads: int, d_ff: int):
        super().__init__()
        self.num_heads = num_heads
        self.ln1 = nn.LayerNorm(d_model, eps=LN_EPS)
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)
        self.ln2 = nn.LayerNorm(d_model, eps=LN_EPS)
        self.fc = nn.Linear(d_model, d_ff)
        self.proj = nn.Linear(d_ff, d_model)

    def forward(self, x):
        batch, length, d_model = x.shape
        head_dim = d_model // self.num_heads
        q, k, v = self.qkv(self.ln1(x)).split(d_model, dim=-1)
        q, k, v = (t.reshape(batch, length, self.num_heads, head_dim) for t in (q, k, v))
        scores = torch.einsum('bqhd,bkhd->bhqk', q, k) / math.sqrt(head_dim)  # (B, H, T, T)
        causal = torch.tril(torch.ones(length, length, dtype=torch.bool, device=x.device))
        att = torch.softmax(torch.where(causal, scores, NEG_INF), dim=-1)
        y = torch.einsum('bhqk,bkhd->bqhd', att, v).reshape(batch, length, d_model)
        x = x + self.out(y)
        h = F.gelu(self.fc(self.ln2(x)), approximate='tanh')
        return x + self.proj(h)


class CharTransformer(nn.Module):
    def __init__(
        self,
        d_model: int,
        num_layers: int,
        num_heads: int,
        d_ff: int,
        vocab_size: int = data.VOCAB_SIZE,
        seq_len: int = data.SEQ_LEN,
    ):
        super().__init__()
        self.pos_embedding = nn.Parameter(torch.zeros(seq_len, d_model))
        self.embed = nn.Embedding(vocab_size, d_model)
        self.blocks = nn.ModuleList(Block(d_model, num_heads, d_ff) for _ in range(num_layers))
        self.ln_f = nn.LayerNorm(d_model, eps=LN_EPS)
        self.head = nn.Linear(d_model, vocab_size)

    def forward(self, inputs):  # (B, T) int -> (B, T, V) logits
        x = self.embed(inputs) + self.pos_embedding[: inputs.shape[-1]]
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln_f(x))


def torch_layout(weights):
    """Flax-layout numpy weights -> [(named_parameters name, array, flax path)]."""
    leaf_name = {'scale': 'weight', 'bias': 'bias', 'kernel': 'weight'}
    out = [
        ('embed.weight', weights['embed']['embedding'], ['embed', 'embedding']),
        ('pos_embedding', weights['pos_embedding'], ['pos_embedding']),
    ]
    for key, sub in weights.items():
        if key in ('embed', 'pos_embedding'):
            continue
        is_block = key.startswith('block_')
        prefix = f'blocks.{key.split("_")[1]}.' if is_block else ''
        for layer, leaves in sub.items() if is_block else [(key, sub)]:
            for leaf, value in leaves.items():
                # Linear weights are (out, in); flax kernels are (in, out).
                path = ([key] if is_block else []) + [layer, leaf]
                out.append(
                    (
                        f'{prefix}{layer}.{leaf_name[leaf]}',
                        value.T if leaf == 'kernel' else value,
                        path,
                    )
                )
    return out


class FederatedShakespeareTorchWorkload(FederatedShakespeareWorkload):
    framework = 'pytorch'

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        c = self.config
        self._module = CharTransformer(c['d_model'], c['num_layers'], c['num_heads'], c['d_ff']).to(
            device()
        )

    def init_model_fn(self, rng):
        c = self.config
        weights = init_weights(
            self._rng_to_seed(rng), c['d_model'], c['num_layers'], c['num_heads'], c['d_ff']
        )
        layout = torch_layout(weights)
        params = {
            name: torch.from_numpy(np.ascontiguousarray(value)).to(device())
            for name, value, _ in layout
        }
        missing = set(dict(self._module.named_parameters())) ^ set(params)
        if missing:
            raise RuntimeError(f'torch/flax parameter names disagree: {sorted(missing)}')
        self._param_shapes = {k: spec.ShapeTuple(v.shape) for k, v in params.items()}
        self._param_types = {name: param_type(path) for name, _, path in layout}
        torch_compile.compiler_of(self)  # Reads the setting now: a bad value fails before training.
        return params, None

    def model_fn(
        self,
        params,
        augmented_and_preprocessed_input_batch,
        model_state,
        mode,
        rng,
        update_batch_norm,
        dropout_rate=None,
    ):
        del rng, update_batch_norm, dropout_rate  # no dropout, no batch norm
        inputs = augmented_and_preprocessed_input_batch['inputs']
        train = mode == spec.ForwardPassMode.TRAIN
        module = params if isinstance(params, nn.Module) else self._module
        module.train(train)
        # Training runs compiled when the setting says so (workloads/_common/torch_compile.py);
        # inside the submissions' torch.func.vmap it runs eager.
        run = torch_compile.compiler_of(self) if train else (lambda fn, *args: fn(*args))
        with torch.set_grad_enabled(train):
            if isinstance(params, nn.Module):
                return run(params, inputs), model_state
            return run(_functional_forward, self._module, params, inputs), model_state

    def loss_fn(self, label_batch, logits_batch, mask_batch=None, label_smoothing=0.0):
        log_probs = torch.log_softmax(logits_batch, dim=-1)
        # -sum_k q_k log p_k with q = (1 - s) onehot(y) + s / V, without one_hot
        # (which torch.func.vmap cannot batch).
        true_class = log_probs.gather(-1, label_batch.long().unsqueeze(-1)).squeeze(-1)
        per_example = -(1.0 - label_smoothing) * true_class
        if label_smoothing:
            per_example = per_example - label_smoothing * log_probs.mean(dim=-1)
        if mask_batch is None:
            mask_batch = torch.ones_like(per_example)
        per_example = per_example * mask_batch
        return {
            'summed': per_example.sum(),
            'n_valid_examples': mask_batch.sum(),
            'per_example': per_example,
        }

    def _to_device(self, batch):
        return to_device(batch)

    def _eval_stats(self, params, batch):
        logits, _ = self.model_fn(params, batch, None, spec.ForwardPassMode.EVAL, None, False)
        weights = batch['weights']
        loss = self.loss_fn(batch['targets'], logits, weights)['per_example']
        correct = (logits.argmax(dim=-1) == batch['targets']) * weights
        return correct.sum(-1), loss.sum(-1), weights.sum(-1)

    def _eval_batch(self, params, batch):
        with torch.no_grad():
            stats = self._eval_stats(params, self._to_device(batch))
        return tuple(s.double().cpu().numpy() for s in stats)

    def _rng_to_seed(self, rng):
        return rng_to_seed(rng)

    # ---- glue for the federated runner ---------------------------------------------

    def tree_stack(self, trees):
        return {k: torch.stack([t[k] for t in trees]) for k in trees[0]}

    def tree_unstack(self, tree, count):
        return [{k: v[i] for k, v in tree.items()} for i in range(count)]

    def tree_to_numpy(self, tree):
        return _map_tensors(tree, lambda t: t.detach().cpu().numpy())

    def tree_from_numpy(self, tree):
        return _map_tensors(
            tree, lambda a: torch.from_numpy(np.array(a)).to(device()), leaf_type=np.ndarray
        )

    def make_rng(self, seed):
        return np.array([int(seed) >> 32, int(seed) & 0xFFFFFFFF], dtype=np.uint32)

    def synchronize(self, tree):
        if torch.cuda.is_available():
            torch.cuda.synchronize()


def _functional_forward(module: nn.Module, params, inputs):
    return torch.func.functional_call(module, params, (inputs,))


def _map_tensors(tree, fn, leaf_type=torch.Tensor):
    """Map ``fn`` over the leaves of nested dicts/lists/tuples (None kept)."""
    if isinstance(tree, leaf_type):
        return fn(tree)
    if isinstance(tree, dict):
        return {k: _map_tensors(v, fn, leaf_type) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return type(tree)(_map_tensors(v, fn, leaf_type) for v in tree)
    return tree
