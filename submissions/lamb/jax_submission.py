"""LAMB (Adam direction times a per-layer trust ratio), warmup + cosine to step_hint; optax.

See docs/methods.md, section LAMB and LARS.
"""

from submissions._lib import common, jax_common, optim_jax
from submissions._lib.hparam_checks import validate_hparams


def build_tx(workload, hyperparameters, learning_rate):
    del workload
    h = hyperparameters
    return optim_jax.lamb(learning_rate, beta1=1.0 - h.one_minus_beta1, beta2=h.beta2, eps=1e-6,
                          weight_decay=h.weight_decay)


def validate_hyperparameters(hparams):
    return validate_hparams('lamb', hparams)


init_optimizer_state = jax_common.make_init_optimizer_state(build_tx)
update_params = jax_common.update_params
data_selection = common.data_selection
get_batch_size = common.get_batch_size
