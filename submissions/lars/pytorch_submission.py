"""LARS, warmup + cosine to step_hint; pytorch_optimizer.LARS.

See docs/methods.md, section LAMB and LARS, and submissions/_lib/optim_torch/zoo.py
for what differs from optax.lars.
"""

from submissions._lib import common, optim_torch, torch_common
from submissions._lib.hparam_checks import validate_hparams


def build_optimizer(model, hyperparameters):
    h = hyperparameters
    return optim_torch.lars(model.parameters(), lr=h.learning_rate,
                            beta1=1.0 - h.one_minus_beta1, weight_decay=h.weight_decay,
                            trust_coefficient=h.trust_coefficient,
                            **common.optimizer_options(h, 'lars'))


def validate_hyperparameters(hparams):
    return validate_hparams('lars', hparams)


init_optimizer_state = torch_common.make_init_optimizer_state(build_optimizer)
update_params = torch_common.update_params
data_selection = common.data_selection
get_batch_size = common.get_batch_size
