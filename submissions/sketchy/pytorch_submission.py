"""Sketchy (Shampoo with rank-k Frequent Directions factors), warmup + cosine; our torch code.

The optimizer lives in submissions/_lib/optim_torch/sketchy.py (the same math
as the JAX one).
"""

from submissions._lib import optim_torch
from submissions._lib import torch_common as common
from submissions._lib.hparam_checks import validate_hparams


def build_optimizer(model, hyperparameters):
    h = hyperparameters
    return optim_torch.Sketchy(
        model.parameters(), lr=h.learning_rate, beta1=1.0 - h.one_minus_beta1, beta2=h.beta2,
        eps=common.hparam(h, 'eps', 1e-7), weight_decay=h.weight_decay,
        rank=common.hparam(h, 'rank', 128),
        block_size=common.hparam(h, 'block_size', 1024),
        start_preconditioning_step=common.hparam(h, 'start_preconditioning_step', 101),
        max_preconditioner_dim=common.hparam(h, 'max_preconditioner_dim', 1_000_000),
        nesterov=common.hparam(h, 'nesterov', True),
        graft_type=common.hparam(h, 'graft_type', 'rmsprop_normalized'))


def validate_hyperparameters(hparams):
    return validate_hparams('sketchy', hparams)


init_optimizer_state = common.make_init_optimizer_state(build_optimizer)
update_params = common.update_params
prepare_for_eval = common.prepare_for_eval
data_selection = common.data_selection
get_batch_size = common.get_batch_size
