"""The adamw baseline, but it halves its batch from step 3 on: a new input shape after
warm-up, so a compiled model compiles again (tests/workloads/test_torch_compile_trials.py)."""

from submissions.adamw import pytorch_submission as adamw

get_batch_size = adamw.get_batch_size
init_optimizer_state = adamw.init_optimizer_state
data_selection = adamw.data_selection


def update_params(workload, current_param_container, current_params_types, model_state,
                  hyperparameters, batch, loss_type, optimizer_state, eval_results, global_step,
                  rng):
    if global_step >= 3:
        batch = {key: value[: value.shape[0] // 2] for key, value in batch.items()}
    return adamw.update_params(workload, current_param_container, current_params_types,
                               model_state, hyperparameters, batch, loss_type, optimizer_state,
                               eval_results, global_step, rng)
