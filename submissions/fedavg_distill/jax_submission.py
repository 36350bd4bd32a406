"""FedAvg whose late reports teach the on-time clients through distillation, in JAX.

The rules (round configuration, checks, the teacher the server builds from late
reports) are ``submissions/_lib/fed_distill.py``; the JAX client and server
updates ``submissions/_lib/fed_distill_jax.py``, shared with ``fedavg_distill_control``
(the same policy with the distillation weight at 0). See docs/methods.md,
section Federated baselines.
"""

from submissions._lib import fed_distill_jax as distill

validate_hyperparameters = distill.validate_hyperparameters
get_round_config = distill.get_round_config
init_server_state = distill.init_server_state
client_update = distill.client_update
server_update = distill.server_update
