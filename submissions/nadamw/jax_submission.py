"""NAdamW (Nesterov Adam, decoupled weight decay), warmup + cosine to step_hint, on optax."""

import optax

from submissions._lib import jax_common as common


def build_tx(workload, hyperparameters, learning_rate):
    del workload
    return optax.nadamw(learning_rate=learning_rate, b1=1.0 - hyperparameters.one_minus_beta1,
                        b2=hyperparameters.beta2, eps=1e-8,
                        weight_decay=hyperparameters.weight_decay)


init_optimizer_state = common.make_init_optimizer_state(build_tx)
update_params = common.update_params
prepare_for_eval = common.prepare_for_eval
data_selection = common.data_selection
get_batch_size = common.get_batch_size
