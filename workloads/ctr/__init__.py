"""Click-through-rate prediction: DCN-V2 on MovieLens-100k, synthetic or Criteo data.

Data (``<data_dir>/ctr/<source>/``):

    timetrial prepare ctr                                   # MovieLens-100k (tiny, the demo)
    timetrial prepare ctr --variant synthetic [--size base] # generated, Criteo schema
    timetrial prepare ctr --variant criteo --source DIR     # your Criteo TSV files
    python -m workloads.ctr.criteo_prepare --source DIR --data-dir DATA --validation-days day_23

See README.md (metrics, the published mixture, Criteo day order).

Imports no framework (the registry reads ``INFO`` without torch or jax).
"""

from harness.spec import WorkloadInfo

INFO = WorkloadInfo(
    name='ctr',
    sizes=('tiny', 'base'),
    variants=('lowrank', 'moe', 'parallel', 'synthetic', 'criteo'),
    classes={
        'jax': 'workloads.ctr.jax_impl:CtrJaxWorkload',
        'pytorch': 'workloads.ctr.torch_impl:CtrTorchWorkload',
    },
    prepare='workloads.ctr.data:prepare',
    description='DCN-V2 click-through-rate prediction (sigmoid cross-entropy; '
    'validation log loss, normalized entropy, AUC, calibration).',
)
