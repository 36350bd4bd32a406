"""Heavy-ball momentum SGD (coupled L2 weight decay); warmup + cosine to step_hint; torch SGD."""

from submissions._lib import optim_torch
from submissions._lib import torch_common as common
from submissions._lib.hparam_checks import validate_hparams


def build_optimizer(model, hyperparameters):
    return optim_torch.momentum(model.parameters(), lr=hyperparameters.learning_rate,
                             beta1=1.0 - hyperparameters.one_minus_beta1,
                             weight_decay=hyperparameters.weight_decay)


def validate_hyperparameters(hparams):
    return validate_hparams('momentum', hparams)


init_optimizer_state = common.make_init_optimizer_state(build_optimizer)
update_params = common.update_params
prepare_for_eval = common.prepare_for_eval
data_selection = common.data_selection
get_batch_size = common.get_batch_size
