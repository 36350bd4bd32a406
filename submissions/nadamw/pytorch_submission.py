"""NAdamW (Nesterov Adam, decoupled weight decay), linear warmup + cosine decay to step_hint.

See docs/methods.md, section AdamW, NAdamW, Nesterov, momentum.
torch.optim.NAdam is Dozat's momentum-decay variant, a different method; the
optimizer is ``torch_common.adam_optimizer(..., 'nadamw')``, which uses
submissions/_lib/torch_nadamw.py (it matches optax.nadamw) and is the base
optimizer SALT can also stand on.
"""

from submissions._lib import common, torch_common
from submissions._lib.hparam_checks import validate_hparams


def build_optimizer(model, hyperparameters):
    return torch_common.adam_optimizer(model, hyperparameters, 'nadamw')


def validate_hyperparameters(hparams):
    return validate_hparams('nadamw', hparams)


init_optimizer_state = torch_common.make_init_optimizer_state(build_optimizer)
update_params = torch_common.update_params
data_selection = common.data_selection
get_batch_size = common.get_batch_size
