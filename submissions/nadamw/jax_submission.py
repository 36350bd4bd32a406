"""NAdamW (Nesterov Adam, decoupled weight decay), linear warmup + cosine decay to step_hint; optax.

See docs/methods.md, section AdamW, NAdamW, Nesterov, momentum. The optimizer
is ``jax_common.adam_tx(..., 'nadamw')``, the base optimizer SALT can also stand on.
"""

from submissions._lib import common, jax_common
from submissions._lib.hparam_checks import validate_hparams


def build_tx(workload, hyperparameters, learning_rate):
    del workload
    return jax_common.adam_tx(hyperparameters, learning_rate, 'nadamw')


def validate_hyperparameters(hparams):
    return validate_hparams('nadamw', hparams)


init_optimizer_state = jax_common.make_init_optimizer_state(build_tx)
update_params = jax_common.update_params
data_selection = common.data_selection
get_batch_size = common.get_batch_size
