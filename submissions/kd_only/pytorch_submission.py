"""KD-only (the ablation of SALT): distill from the small teacher at every step.

See docs/methods.md, section SALT; loss and schedule: submissions/_lib/kd.py.
Runs on the lm_slm workload.

Base optimizer: the hyperparameter ``optimizer``, ``adamw`` (the default) or
``nadamw``, built exactly as the adamw / nadamw baselines build theirs, with
their warmup + cosine schedule; the search space offers both. The ω and τ
ranges are salt's, so the stage switch is the only difference.
"""

from submissions._lib import common, kd, kd_torch

#: Workload attributes this submission needs beyond AlgoPerf's API: it runs only
#: on workloads with a teacher (lm_slm).
REQUIRES_WORKLOAD_API = ('teacher_logits', 'teacher_topk')
MODE = 'kd_only'

init_optimizer_state = kd_torch.make_init_optimizer_state(MODE)
update_params = kd_torch.update_params
data_selection = kd_torch.data_selection
get_batch_size = common.get_batch_size


def validate_hyperparameters(hparams: dict) -> list:
    return kd.validate_hyperparameters(hparams, MODE)
