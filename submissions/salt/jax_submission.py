"""SALT: distill from the small teacher for the first n_KD steps, then plain next-token training.

See docs/methods.md, section SALT; loss, schedule and selection:
submissions/_lib/kd.py. Runs on the lm_slm workload.

Base optimizer: the hyperparameter ``optimizer``, ``adamw`` (the default) or
``nadamw``, built exactly as the adamw / nadamw baselines build theirs, with
their warmup + cosine schedule; the search space offers both. kd_only shares
this search space's ω and τ ranges: the stage switch (``kd_fraction``,
``kd_transition``) is the only difference.
"""

from submissions._lib import common, kd, kd_jax

#: Workload attributes this submission needs beyond AlgoPerf's API: it runs only
#: on workloads with a teacher (lm_slm).
REQUIRES_WORKLOAD_API = ('teacher_logits', 'teacher_topk')
MODE = 'salt'

init_optimizer_state = kd_jax.make_init_optimizer_state(MODE)
update_params = kd_jax.update_params
data_selection = kd_jax.data_selection
get_batch_size = common.get_batch_size


def validate_hyperparameters(hparams: dict) -> list:
    return kd.validate_hyperparameters(hparams, MODE)
