"""Shampoo (blocked, grafted, Nesterov, decoupled weight decay), warmup + cosine; our optax code.

The optimizer lives in submissions/_lib/optim_jax/shampoo.py (its docstrings
give the math and every choice). Structural options come from the search
space and default to AlgoPerf's Shampoo baseline.
"""

from submissions._lib import jax_common as common
from submissions._lib import optim_jax
from submissions._lib.hparam_checks import validate_hparams


def build_tx(workload, hyperparameters, learning_rate):
    del workload
    h = hyperparameters
    return optim_jax.shampoo(
        learning_rate, beta1=1.0 - h.one_minus_beta1, beta2=h.beta2,
        eps=common.hparam(h, 'eps', 1e-6), weight_decay=h.weight_decay,
        block_size=common.hparam(h, 'block_size', 1024),
        precondition_every=common.hparam(h, 'precondition_every', 20),
        start_preconditioning_step=common.hparam(h, 'start_preconditioning_step', 101),
        max_preconditioner_dim=common.hparam(h, 'max_preconditioner_dim', 1_000_000),
        nesterov=common.hparam(h, 'nesterov', True),
        graft_type=common.hparam(h, 'graft_type', 'rmsprop_normalized'))


def validate_hyperparameters(hparams):
    return validate_hparams('shampoo', hparams)


init_optimizer_state = common.make_init_optimizer_state(build_tx)
update_params = common.update_params
prepare_for_eval = common.prepare_for_eval
data_selection = common.data_selection
get_batch_size = common.get_batch_size
