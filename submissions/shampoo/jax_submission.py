"""Shampoo (blocked, grafted, Nesterov, decoupled weight decay), warmup + cosine; our optax code.

See docs/methods.md, section Shampoo. The optimizer lives in
submissions/_lib/optim_jax/shampoo.py (its docstrings give the math and every
choice). Structural options come from the search space
(``common.OPTIMIZER_OPTIONS``) and default to AlgoPerf's Shampoo baseline.
"""

from submissions._lib import common, jax_common, optim_jax
from submissions._lib.hparam_checks import validate_hparams


def build_tx(workload, hyperparameters, learning_rate):
    del workload
    h = hyperparameters
    return optim_jax.shampoo(learning_rate, beta1=1.0 - h.one_minus_beta1, beta2=h.beta2,
                             weight_decay=h.weight_decay,
                             **common.optimizer_options(h, 'shampoo'))


def validate_hyperparameters(hparams):
    return validate_hparams('shampoo', hparams)


init_optimizer_state = jax_common.make_init_optimizer_state(build_tx)
update_params = jax_common.update_params
data_selection = common.data_selection
get_batch_size = common.get_batch_size
