"""Federated Shakespeare: next-character prediction, one client per speaking role.

Imports no framework: the registry reads ``INFO`` only.
"""

from harness.spec import WorkloadInfo

INFO = WorkloadInfo(
    name='federated_shakespeare',
    sizes=('tiny', 'base'),
    variants=('no_stragglers', 'heavy_stragglers', 'early_target'),
    classes={
        'jax': 'workloads.federated_shakespeare.jax_impl:FederatedShakespeareJaxWorkload',
        'pytorch': 'workloads.federated_shakespeare.torch_impl:FederatedShakespeareTorchWorkload',
    },
    prepare='workloads.federated_shakespeare.data:prepare',
    description='Federated next-character prediction on Shakespeare (one client per '
    '(play, role), LEAF/TFF convention) with straggler clients on a '
    'simulated clock; latency variants no_stragglers and heavy_stragglers; early_target (demo).',
    kind='federated',
)
