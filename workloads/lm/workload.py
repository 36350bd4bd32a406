r"""The lm workload, framework-free: decoder-only transformer LM pre-training.

Model (both frameworks; ``jax_impl`` and ``torch_impl`` hold only its code)::

    x = embed[tokens]                                     # (B, T, D)
    for each of n_layers blocks:                          # pre-norm residual blocks
        x = x + attn(rmsnorm(x))                          # causal, rotary q/k
        x = x + mlp(rmsnorm(x))                           # SwiGLU
    logits = rmsnorm(x) @ embed^T                         # (B, T, V), tied head

- RMSNorm ``x / sqrt(mean(x^2) + 1e-6) * scale``, learned scale, no bias.
- Attention: separate q/k/v/out projections without biases, ``n_heads`` heads,
  rotary embeddings (rotate-half convention, base 10,000) on q and k, causal
  fused attention (``jax.nn.dot_product_attention`` /
  ``torch.nn.functional.scaled_dot_product_attention``, ``is_causal=True``).
- MLP: SwiGLU, ``down(silu(gate(x)) * up(x))``, hidden width 8/3·D rounded up
  to a multiple of 64 -- chosen over GELU because it is what current small LMs
  use (LLaMA, Qwen), with the parameter count of a 4·D GELU MLP.
- Tied input/output embeddings (GPT-2, AlgoPerf's LM): at a 4,096-token
  vocabulary and width 128 the embedding is half of the tiny model, so an
  untied head would double its largest matrix for little gain.
- Optional residual dropout (``dropout_rate`` in ``model_fn``; default 0, as in
  LM pre-training).

Initialization is written once here in numpy (``init_params``) from the seed of
``rng_to_seed``: embedding and projections N(0, 0.02²), the two projections
that write into the residual stream (attention out, MLP down) N(0, (0.02/√(2L))²)
as in GPT-2, RMSNorm scales 1. Canonical names and layouts (kernels ``(in, out)``,
``y = x @ W``)::

    embed                      (V, D)      EMBEDDING
    blocks.{i}.attn_norm       (D,)        LAYER_NORM_SCALE
    blocks.{i}.attn.{q,k,v}    (D, D)      ATTENTION_Q / _K / _V
    blocks.{i}.attn.o          (D, D)      ATTENTION_OUT
    blocks.{i}.mlp_norm        (D,)        LAYER_NORM_SCALE
    blocks.{i}.mlp.{gate,up}   (D, H)      WEIGHT
    blocks.{i}.mlp.down        (H, D)      WEIGHT
    final_norm                 (D,)        LAYER_NORM_SCALE

Loss (``loss_fn``, per token; z = logits of one position, y its target id,
V the vocabulary, ε = label_smoothing, m ∈ {0, 1} the mask, 1 if none)::

    q_v      = (1 - ε)·[v = y] + ε / V                    # smoothed target
    ℓ        = -Σ_v q_v · log softmax(z)_v
             = logsumexp(z) - (1 - ε)·z_y - (ε / V)·Σ_v z_v
    per_example       = m · ℓ                             # (B, T), one entry per token
    summed            = Σ m · ℓ
    n_valid_examples  = Σ m                               # number of valid tokens

So an "example" of the loss is a token; ``summed / n_valid_examples`` is the
mean nats per token (``validation/loss``, the target, lower is better) and
``validation/ppl = exp(validation/loss)``. ``train/loss`` is the same on a fixed
subset of the training split. Computed in float32 whatever the compute dtype.

Data-dependent numbers (vocabulary, token counts) come from the prepared
``meta.json``: ``check_data(data_dir)`` reads it, so the harness calls it before
``init_model_fn`` (and ``_build_input_queue``/``eval_model`` read it too).
Before that, the numbers of the default Shakespeare corpus are used.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable, Dict, Optional, Tuple

import numpy as np

from harness import spec
from harness.errors import UserInputError
from workloads.lm import data

NAME = 'lm'
SIZES_ORDER = ('tiny', 'small')


@dataclasses.dataclass(frozen=True)
class LmConfig:
    """One size of the lm workload: the model, the sequence and the default batch."""

    n_layers: int
    d_model: int
    n_heads: int
    seq_len: int
    default_batch_size: int
    # Evaluation: at most this many windows of seq_len per split (fewer if the split is short).
    eval_sequences: int
    eval_batch_size: int
    # The tokenizer's target; the model uses the prepared data's vocabulary, rounded up to 64.
    vocab_size: int = 4096
    rope_base: float = 10_000.0
    norm_eps: float = 1e-6
    init_std: float = 0.02
    # 'bfloat16' runs matmuls and attention in bf16 (params, norms and loss stay float32).
    compute_dtype: str = 'float32'

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    @property
    def mlp_hidden(self) -> int:
        return _round_up(8 * self.d_model // 3, 64)


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


SIZES: Dict[str, LmConfig] = {
    # A 2-core CPU: ~0.95M parameters (half of them the tied embedding).
    'tiny': LmConfig(
        n_layers=2,
        d_model=128,
        n_heads=4,
        seq_len=128,
        default_batch_size=16,
        eval_sequences=64,
        eval_batch_size=64,
    ),
    # One GPU: GPT-2 small's shape (12 x 768, 12 heads, 1024 context). ~88M parameters with
    # the 4,096-token Shakespeare BPE, ~124M with GPT-2's vocabulary (pre-tokenized shards).
    'small': LmConfig(
        n_layers=12,
        d_model=768,
        n_heads=12,
        seq_len=1024,
        default_batch_size=32,
        eval_sequences=64,
        eval_batch_size=32,
        compute_dtype='bfloat16',
    ),
}

# Default corpus (Shakespeare, 4,096-token BPE), used before check_data has read meta.json.
SHAKESPEARE_TRAIN_TOKENS = 1_561_803
SHAKESPEARE_VAL_TOKENS = 91_507

# Shipped targets and budgets (``timetrial calibrate`` replaces them for the machine at hand).
#
# tiny -- measured 2026-11-23 with ``python -m workloads.lm.measure`` (a bare AdamW loop:
# β = 0.9/0.95, weight decay 0.1 on matrices, clip 1, 5% warmup + cosine), batch 16 x 128:
# - Loss against steps (machine-independent): lr 2e-3 with a 1,500-step cosine (what a
#   step_hint-long baseline does) reaches validation loss 5.08 at step 200, 4.86 at 300,
#   4.73 at 400, 4.62 at 500, 4.30 at 1,000 and 4.22 at 1,500. JAX and PyTorch agree to
#   0.002 (500-step runs: 4.852 vs 4.851). At equal tokens (1M) and step-matched schedules,
#   batch 16 (4.85) beat 32 (5.09) at the same tokens/s; batch 8 did better still (4.69) --
#   left for submissions to find. lr 1e-3 and 3e-3/4e-3 were worse than 2e-3 at batch 16.
# - Step time on the reference CPU (2-core AMD EPYC Zen 4, jax 0.10.2, torch 2.13): batch 32
#   took 250 ms in JAX and 282 ms in PyTorch (16.4k / 14.5k tokens/s); batch 16 takes 0.44x
#   as long (ratio measured on 2 pinned cores of a Xeon), i.e. ~110 ms and ~127 ms. The
#   slower framework (PyTorch) thus needs ~390 steps, ~50 s, for loss 4.75.
# target 4.75, budget 150 s (3x), eval every 10 s, step_hint 1,200 (150 s of PyTorch steps).
#
# small -- UNCALIBRATED: rough numbers from one H100 (bf16, batch 32 x 1024, lr 1e-3,
# 1,200-step cosine). On the ~1.6M Shakespeare tokens the model overfits after ~300 steps
# (best validation loss ~3.86); 4.0 is reached near step 220: ~23 s of PyTorch steps
# (104 ms/step, 315k tokens/s) and ~30-57 s in JAX (66 ms/step, 493k tokens/s, plus 13-43 s
# of first-step compilation). Run-to-run spread on the GPU (non-deterministic kernels) is
# ~0.1 nats at step 100 and ~0.02 at step 300, the same in both frameworks. With your own,
# larger data, recalibrate.
BUDGETS: Dict[str, spec.Budget] = {
    'tiny': spec.Budget(
        validation_target_value=4.75,
        max_allowed_runtime_sec=150.0,
        eval_period_time_sec=10.0,
        step_hint=1200,
    ),
    'small': spec.Budget(
        validation_target_value=4.0,
        max_allowed_runtime_sec=180.0,
        eval_period_time_sec=15.0,
        step_hint=1700,
    ),
}


def model_vocab_size(data_vocab_size: int) -> int:
    """Rows of the embedding: the data's vocabulary rounded up to 64 (matmul-friendly)."""
    return _round_up(int(data_vocab_size), 64)


# ---- initialization and parameter names (shared by both frameworks) ----------


def param_specs(config: LmConfig) -> Dict[str, Tuple[Tuple[int, ...], float]]:
    """Canonical name -> (shape, init std; 0 means ones), in a fixed order."""
    d, h, v = config.d_model, config.mlp_hidden, config.vocab_size
    std = config.init_std
    out_std = std / math.sqrt(2 * config.n_layers)  # Residual-stream writers, GPT-2 style.
    specs: Dict[str, Tuple[Tuple[int, ...], float]] = {'embed': ((v, d), std)}
    for i in range(config.n_layers):
        p = f'blocks.{i}.'
        specs[p + 'attn_norm'] = ((d,), 0.0)
        for name in ('q', 'k', 'v'):
            specs[p + f'attn.{name}'] = ((d, d), std)
        specs[p + 'attn.o'] = ((d, d), out_std)
        specs[p + 'mlp_norm'] = ((d,), 0.0)
        specs[p + 'mlp.gate'] = ((d, h), std)
        specs[p + 'mlp.up'] = ((d, h), std)
        specs[p + 'mlp.down'] = ((h, d), out_std)
    specs['final_norm'] = ((d,), 0.0)
    return specs


def init_params(config: LmConfig, seed: int) -> Dict[str, np.ndarray]:
    """Canonical float32 weights drawn from ``seed``: identical in both frameworks."""
    rng = np.random.default_rng(seed)
    params = {}
    for name, (shape, std) in param_specs(config).items():
        if std == 0.0:
            params[name] = np.ones(shape, np.float32)
        else:
            params[name] = rng.standard_normal(shape, dtype=np.float32) * np.float32(std)
    return params


_ATTENTION_TYPES = {
    'q': spec.ParameterType.ATTENTION_Q,
    'k': spec.ParameterType.ATTENTION_K,
    'v': spec.ParameterType.ATTENTION_V,
    'o': spec.ParameterType.ATTENTION_OUT,
}


def param_type(name: str) -> spec.ParameterType:
    """The AlgoPerf parameter type of a canonical parameter name."""
    if name == 'embed':
        return spec.ParameterType.EMBEDDING
    if name.endswith('norm'):
        return spec.ParameterType.LAYER_NORM_SCALE
    parts = name.split('.')
    if len(parts) == 4 and parts[2] == 'attn':
        return _ATTENTION_TYPES[parts[3]]
    return spec.ParameterType.WEIGHT


def count_params(config: LmConfig) -> int:
    return sum(math.prod(shape) for shape, _ in param_specs(config).values())


def flops_per_sequence(config: LmConfig) -> float:
    """Training FLOPs of one sequence: T·(6·N + 12·L·T·D) (PaLM's count, appendix B).

    N counts every parameter (the tied embedding once, as the output head's
    matmul); 12·L·T·D is attention's QKᵀ and AV, forward and backward, counted
    over the full T×T square as is usual even though the mask is causal.
    """
    t = config.seq_len
    per_token = 6 * count_params(config) + 12 * config.n_layers * t * config.d_model
    return float(t * per_token)


# ---- the loss, as numbers (reference for tests; the frameworks write it natively) -------


def reference_loss(
    logits: np.ndarray,
    targets: np.ndarray,
    mask: Optional[np.ndarray] = None,
    label_smoothing: float = 0.0,
) -> Dict[str, np.ndarray]:
    """The docstring's loss in float64 numpy."""
    z = np.asarray(logits, np.float64)
    m = np.ones(targets.shape) if mask is None else np.asarray(mask, np.float64)
    top = z.max(-1, keepdims=True)
    lse = (top + np.log(np.exp(z - top).sum(-1, keepdims=True)))[..., 0]
    z_y = np.take_along_axis(z, np.asarray(targets)[..., None], -1)[..., 0]
    eps, v = label_smoothing, z.shape[-1]
    per_token = (lse - (1 - eps) * z_y - (eps / v) * z.sum(-1)) * m
    return {'summed': per_token.sum(), 'n_valid_examples': m.sum(), 'per_example': per_token}


# ---- the workload, framework-free part ---------------------------------------


class BaseLmWorkload(spec.Workload):
    """Everything of the lm workload but the model: sizes, budgets, data, evaluation loop."""

    name = NAME
    sizes = SIZES_ORDER
    variants = ()

    def __init__(
        self,
        size: Optional[str] = None,
        variant: Optional[str] = None,
        budget: Optional[spec.Budget] = None,
        *args,
        **kwargs,
    ) -> None:
        _check_size_variant(size or SIZES_ORDER[0], variant)
        super().__init__(size, variant, budget, *args, **kwargs)
        self._meta: Optional[dict] = None
        self._model_vocab: Optional[int] = None  # Set by init_model_fn.
        self._eval_cache: Dict[Tuple[str, str], np.ndarray] = {}

    # ---- sizes, budgets, counts

    def default_budget(self, size: Optional[str], variant: Optional[str]) -> spec.Budget:
        _check_size_variant(size, variant)
        return BUDGETS[size]

    @property
    def config(self) -> LmConfig:
        """This size's config with the vocabulary of the data (once check_data has read it)."""
        base = SIZES[self.size]
        vocab = self._model_vocab or model_vocab_size(
            self._meta['vocab_size'] if self._meta else base.vocab_size
        )
        return dataclasses.replace(base, vocab_size=vocab)

    @property
    def target_metric_name(self) -> str:
        return 'loss'

    @property
    def loss_type(self) -> spec.LossType:
        return spec.LossType.SOFTMAX_CROSS_ENTROPY

    @property
    def default_batch_size(self) -> int:
        return SIZES[self.size].default_batch_size

    @property
    def eval_batch_size(self) -> int:
        return SIZES[self.size].eval_batch_size

    @property
    def tokens_per_example(self) -> int:
        return SIZES[self.size].seq_len

    def flops_per_example(self) -> float:
        return flops_per_sequence(self.config)

    def _token_count(self, split: str) -> int:
        if self._meta is not None:
            return int(self._meta[data.SPLIT_COUNT_KEYS[split]])
        return SHAKESPEARE_TRAIN_TOKENS if split == 'train' else SHAKESPEARE_VAL_TOKENS

    @property
    def num_train_examples(self) -> int:
        """Non-overlapping training windows (batches sample windows at random offsets)."""
        return self._token_count('train') // SIZES[self.size].seq_len

    @property
    def num_validation_examples(self) -> int:
        cfg = SIZES[self.size]
        return data.num_eval_windows(
            self._token_count('validation'), cfg.seq_len, cfg.eval_sequences
        )

    @property
    def num_eval_train_examples(self) -> int:
        cfg = SIZES[self.size]
        return data.num_eval_windows(self._token_count('train'), cfg.seq_len, cfg.eval_sequences)

    def eval_metric_keys(self):
        return ['validation/loss', 'validation/ppl', 'train/loss', 'train/ppl']

    # ---- data

    def check_data(self, data_dir: str) -> None:
        """DataNotPreparedError unless prepared; remembers the data's vocabulary and sizes."""
        meta = data.load_meta(data_dir)
        if (
            self._model_vocab is not None
            and model_vocab_size(meta['vocab_size']) > self._model_vocab
        ):
            raise UserInputError(
                f'The lm model was initialized for a vocabulary of {self._model_vocab} tokens '
                f'but the data in {data.lm_dir(data_dir)} has {meta["vocab_size"]}: call '
                'check_data(data_dir) before init_model_fn so the model fits the data.'
            )
        self._meta = meta

    def _train_batches(
        self, data_rng: spec.RandomState, data_dir: str, global_batch_size: int
    ) -> data.TrainBatches:
        from workloads._common.rng import rng_to_seed

        self.check_data(data_dir)
        return data.TrainBatches(
            data.open_split(data_dir, 'train'),
            SIZES[self.size].seq_len,
            global_batch_size,
            rng_to_seed(data_rng),
        )

    def _eval_windows(self, data_dir: str, split: str) -> np.ndarray:
        key = (str(data_dir), split)
        if key not in self._eval_cache:
            self.check_data(data_dir)
            cfg = SIZES[self.size]
            self._eval_cache[key] = data.eval_windows(
                data.open_split(data_dir, split), cfg.seq_len, cfg.eval_sequences
            )
        return self._eval_cache[key]

    def _evaluate(
        self,
        data_dir: str,
        global_batch_size: int,
        sums_fn: Callable[[Dict[str, np.ndarray]], Tuple[float, float]],
        batch_multiple: int = 1,
    ) -> Dict[str, float]:
        """Mean loss and perplexity on the fixed eval windows of both splits.

        ``sums_fn(batch)`` returns (summed loss, valid tokens) of a numpy batch of
        exactly ``global_batch_size`` rows (rounded up to ``batch_multiple``); the
        last batch is padded with masked rows, so each framework compiles one shape.
        """
        batch_size = _round_up(max(1, int(global_batch_size)), batch_multiple)
        metrics = {}
        for split, prefix in (('validation', 'validation'), ('train', 'train')):
            windows = self._eval_windows(data_dir, split)
            total, count = 0.0, 0.0
            for start in range(0, len(windows), batch_size):
                rows = windows[start : start + batch_size]
                weights = np.ones(rows.shape[0], np.float32)
                pad = batch_size - rows.shape[0]
                if pad:
                    rows = np.concatenate([rows, np.zeros((pad, rows.shape[1]), rows.dtype)])
                    weights = np.concatenate([weights, np.zeros(pad, np.float32)])
                batch = {
                    'inputs': rows[:, :-1],
                    'targets': rows[:, 1:],
                    'weights': np.repeat(weights[:, None], rows.shape[1] - 1, axis=1),
                }
                summed, n_valid = sums_fn(batch)
                total += float(summed)
                count += float(n_valid)
            loss = total / count
            metrics[f'{prefix}/loss'] = loss
            metrics[f'{prefix}/ppl'] = float(math.exp(min(loss, 700.0)))
        return metrics


def _check_size_variant(size: Optional[str], variant: Optional[str]) -> None:
    if size not in SIZES:
        raise UserInputError(
            f"Unknown size {size!r} of workload 'lm'. Known sizes: {', '.join(SIZES)}."
        )
    if variant is not None:
        raise UserInputError(
            f"The lm workload has no variants; got variant {variant!r}. Leave it unset."
        )
