"""AdamW (decoupled weight decay) with linear warmup + cosine decay to step_hint, on torch.optim."""

import torch

from submissions._lib import torch_common as common


def build_optimizer(model, hyperparameters):
    # fused: one kernel for the whole update (CPU and CUDA), as optax's jitted update is.
    return torch.optim.AdamW(model.parameters(), lr=hyperparameters.learning_rate,
                             betas=(1.0 - hyperparameters.one_minus_beta1, hyperparameters.beta2),
                             eps=1e-8, weight_decay=hyperparameters.weight_decay, fused=True)


init_optimizer_state = common.make_init_optimizer_state(build_optimizer)
update_params = common.update_params
prepare_for_eval = common.prepare_for_eval
data_selection = common.data_selection
get_batch_size = common.get_batch_size
