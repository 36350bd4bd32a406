"""NAdamW (Nesterov Adam, decoupled weight decay), warmup + cosine to step_hint.

torch.optim.NAdam is Dozat's momentum-decay variant, a different method; this
uses submissions/_lib/torch_nadamw.py, which matches optax.nadamw.
"""

from submissions._lib import torch_common as common
from submissions._lib.torch_nadamw import NAdamW


def build_optimizer(model, hyperparameters):
    return NAdamW(model.parameters(), lr=hyperparameters.learning_rate,
                  betas=(1.0 - hyperparameters.one_minus_beta1, hyperparameters.beta2),
                  eps=1e-8, weight_decay=hyperparameters.weight_decay)


init_optimizer_state = common.make_init_optimizer_state(build_optimizer)
update_params = common.update_params
prepare_for_eval = common.prepare_for_eval
data_selection = common.data_selection
get_batch_size = common.get_batch_size
