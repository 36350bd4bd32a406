"""Nesterov momentum SGD (coupled L2 weight decay); warmup + cosine to step_hint; optax.

See docs/methods.md, section AdamW, NAdamW, Nesterov, momentum.
"""

from submissions._lib import common, jax_common, optim_jax
from submissions._lib.hparam_checks import validate_hparams


def build_tx(workload, hyperparameters, learning_rate):
    del workload
    h = hyperparameters
    return optim_jax.nesterov(learning_rate, beta1=1.0 - h.one_minus_beta1,
                          weight_decay=h.weight_decay)


def validate_hyperparameters(hparams):
    return validate_hparams('nesterov', hparams)


init_optimizer_state = jax_common.make_init_optimizer_state(build_tx)
update_params = jax_common.update_params
data_selection = common.data_selection
get_batch_size = common.get_batch_size
