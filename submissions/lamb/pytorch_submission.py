"""LAMB, warmup + cosine to step_hint; pytorch_optimizer.Lamb set to optax's semantics.

See docs/methods.md, section LAMB and LARS, and submissions/_lib/optim_torch/zoo.py
for what still differs from optax.lamb.
"""

from submissions._lib import common, optim_torch, torch_common
from submissions._lib.hparam_checks import validate_hparams


def build_optimizer(model, hyperparameters):
    h = hyperparameters
    return optim_torch.lamb(model.parameters(), lr=h.learning_rate,
                            beta1=1.0 - h.one_minus_beta1, beta2=h.beta2, eps=1e-6,
                            weight_decay=h.weight_decay)


def validate_hyperparameters(hparams):
    return validate_hparams('lamb', hparams)


init_optimizer_state = torch_common.make_init_optimizer_state(build_optimizer)
update_params = torch_common.update_params
data_selection = common.data_selection
get_batch_size = common.get_batch_size
