"""AdamW (decoupled weight decay), linear warmup + cosine decay to step_hint; torch.optim.

See docs/methods.md, section AdamW, NAdamW, Nesterov, momentum. The optimizer
is ``torch_common.adam_optimizer(..., 'adamw')``, the base optimizer SALT can
also stand on.
"""

from submissions._lib import common, torch_common
from submissions._lib.hparam_checks import validate_hparams


def build_optimizer(model, hyperparameters):
    return torch_common.adam_optimizer(model, hyperparameters, 'adamw')


def validate_hyperparameters(hparams):
    return validate_hparams('adamw', hparams)


init_optimizer_state = torch_common.make_init_optimizer_state(build_optimizer)
update_params = torch_common.update_params
data_selection = common.data_selection
get_batch_size = common.get_batch_size
