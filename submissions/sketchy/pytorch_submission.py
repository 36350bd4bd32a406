"""Sketchy (Shampoo with rank-k Frequent Directions factors), warmup + cosine; our torch code.

See docs/methods.md, section Sketchy. The optimizer lives in
submissions/_lib/optim_torch/sketchy.py (the same math as the JAX one).
Structural options as in the JAX twin.
"""

from submissions._lib import common, optim_torch, torch_common
from submissions._lib.hparam_checks import validate_hparams


def build_optimizer(model, hyperparameters):
    h = hyperparameters
    return optim_torch.Sketchy(model.parameters(), lr=h.learning_rate,
                               beta1=1.0 - h.one_minus_beta1, beta2=h.beta2,
                               weight_decay=h.weight_decay,
                               **common.optimizer_options(h, 'sketchy'))


def validate_hyperparameters(hparams):
    return validate_hparams('sketchy', hparams)


init_optimizer_state = torch_common.make_init_optimizer_state(build_optimizer)
update_params = torch_common.update_params
data_selection = common.data_selection
get_batch_size = common.get_batch_size
