"""LARS, warmup + cosine to step_hint; pytorch_optimizer.LARS.

See submissions/_lib/optim_torch/zoo.py for what differs from optax.lars.
"""

from submissions._lib import optim_torch
from submissions._lib import torch_common as common
from submissions._lib.hparam_checks import validate_hparams


def build_optimizer(model, hyperparameters):
    return optim_torch.lars(model.parameters(), lr=hyperparameters.learning_rate,
                            beta1=1.0 - hyperparameters.one_minus_beta1,
                            weight_decay=hyperparameters.weight_decay,
                            trust_coefficient=hyperparameters.trust_coefficient,
                            nesterov=common.hparam(hyperparameters, 'nesterov', False))


def validate_hyperparameters(hparams):
    return validate_hparams('lars', hparams)


init_optimizer_state = common.make_init_optimizer_state(build_optimizer)
update_params = common.update_params
prepare_for_eval = common.prepare_for_eval
data_selection = common.data_selection
get_batch_size = common.get_batch_size
