"""lm_slm: the lm workload plus a frozen small teacher LM (SALT, arXiv:2410.18779).

Same model, data, sizes and validation target as ``lm``, so times to target
compare directly; a submission may also call the teacher (``teacher_logits``,
``teacher_topk``), on its own clock. This module imports no framework.
"""

from harness import spec

INFO = spec.WorkloadInfo(
    name='lm_slm',
    sizes=('tiny', 'small'),
    variants=('weaker_teacher', 'undertrained_teacher', 'strong_teacher'),
    classes={
        'jax': 'workloads.lm_slm.jax_impl:LmSlmJaxWorkload',
        'pytorch': 'workloads.lm_slm.torch_impl:LmSlmTorchWorkload',
    },
    prepare='workloads.lm_slm.data:prepare',
    description=(
        'The lm workload with a frozen small teacher LM that ends weaker than the '
        "student's target (variants: a weaker teacher, an undertrained one, and a strong "
        'teacher as the control); teacher inference is on the submission clock, teacher '
        'training cost is reported.'
    ),
)
