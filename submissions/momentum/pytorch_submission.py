"""Heavy-ball momentum SGD (coupled L2 weight decay); warmup + cosine to step_hint; torch SGD.

See docs/methods.md, section AdamW, NAdamW, Nesterov, momentum.
"""

from submissions._lib import common, optim_torch, torch_common
from submissions._lib.hparam_checks import validate_hparams


def build_optimizer(model, hyperparameters):
    h = hyperparameters
    return optim_torch.momentum(model.parameters(), lr=h.learning_rate,
                            beta1=1.0 - h.one_minus_beta1, weight_decay=h.weight_decay)


def validate_hyperparameters(hparams):
    return validate_hparams('momentum', hparams)


init_optimizer_state = torch_common.make_init_optimizer_state(build_optimizer)
update_params = torch_common.update_params
data_selection = common.data_selection
get_batch_size = common.get_batch_size
