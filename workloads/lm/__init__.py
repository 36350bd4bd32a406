"""lm: decoder-only transformer language-model pre-training (Shakespeare by default).

This module imports no framework: the registry reads ``INFO`` to find the
framework classes and the data preparation function.
"""

from harness import spec

INFO = spec.WorkloadInfo(
    name='lm',
    sizes=('tiny', 'small'),
    variants=(),
    classes={
        'jax': 'workloads.lm.jax_impl:LmJaxWorkload',
        'pytorch': 'workloads.lm.torch_impl:LmTorchWorkload',
    },
    prepare='workloads.lm.data:prepare',
    description=(
        'Decoder-only transformer LM (RMSNorm, rotary, SwiGLU, tied embeddings); '
        'next-token loss on held-out Shakespeare plays or your own text/token shards.'
    ),
)
