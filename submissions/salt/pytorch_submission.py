"""SALT: distill from the small teacher for the first n_KD steps, then plain next-token training.

Loss, schedule and selection: submissions/_lib/kd.py. AdamW or NAdamW (`optimizer`)
with the baselines' warmup + cosine schedule underneath; runs on the lm_slm workload.
"""

from submissions._lib import kd, kd_torch

#: Workload attributes this submission needs beyond AlgoPerf's API: it runs only
#: on workloads with a teacher (lm_slm).
REQUIRES_WORKLOAD_API = ('teacher_logits', 'teacher_topk')
MODE = 'salt'

init_optimizer_state = kd_torch.make_init_optimizer_state(MODE)
update_params = kd_torch.update_params
prepare_for_eval = kd_torch.prepare_for_eval
data_selection = kd_torch.data_selection
get_batch_size = kd_torch.get_batch_size


def validate_hyperparameters(hparams: dict) -> list:
    return kd.validate_hyperparameters(hparams, MODE)
