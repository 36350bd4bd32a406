"""Plain SGD on the toy workload; charges its costs to the toy FakeClock.

Behaviour switches (module globals, set by tests): RAISE_AT_STEP raises a
RuntimeError at that step; NAN_AT_STEP reports a NaN loss; COMPLETE_AT_STEP
raises TrainingCompleteError; INTERRUPT_AT_STEP raises KeyboardInterrupt (a
stand-in for the process being killed).
"""

import torch

from harness import spec
from tests.harness import toy

RAISE_AT_STEP = None
NAN_AT_STEP = None
COMPLETE_AT_STEP = None
INTERRUPT_AT_STEP = None
SEEN = {'rngs': [], 'train_state': [], 'batch_sizes': []}


def get_batch_size(workload_name):
    raise ValueError(f'unknown workload {workload_name}')


def init_optimizer_state(workload, model_params, model_state, hyperparameters, rng):
    toy.CLOCK.advance(toy.COSTS['init'])
    return {'optimizer': torch.optim.SGD(model_params.parameters(), lr=hyperparameters.learning_rate)}


def update_params(workload, current_param_container, current_params_types, model_state,
                  hyperparameters, batch, loss_type, optimizer_state, eval_results, global_step,
                  rng, train_state=None):
    if INTERRUPT_AT_STEP is not None and global_step == INTERRUPT_AT_STEP:
        raise KeyboardInterrupt
    if RAISE_AT_STEP is not None and global_step == RAISE_AT_STEP:
        raise RuntimeError('boom in submission code')
    if COMPLETE_AT_STEP is not None and global_step == COMPLETE_AT_STEP:
        raise spec.TrainingCompleteError()
    toy.CLOCK.advance(toy.COSTS['step'] + (toy.COSTS['compile'] if global_step == 0 else 0.0))
    SEEN['rngs'].append(tuple(int(x) for x in rng))
    SEEN['train_state'].append(train_state)
    SEEN['batch_sizes'].append(batch['inputs'].shape[0])
    opt = optimizer_state['optimizer']
    opt.zero_grad()
    logits, _ = workload.model_fn(current_param_container, batch, model_state,
                                  spec.ForwardPassMode.TRAIN, rng, True)
    out = workload.loss_fn(batch['targets'], logits)
    loss = out['summed'] / out['n_valid_examples']
    loss.backward()
    opt.step()
    reported = float('nan') if NAN_AT_STEP is not None and global_step == NAN_AT_STEP else loss
    workload.metrics_logger.append_scalar_metrics({'loss': reported}, global_step)
    return optimizer_state, current_param_container, model_state


def prepare_for_eval(workload, current_param_container, current_params_types, model_state,
                     hyperparameters, loss_type, optimizer_state, eval_results, global_step, rng):
    toy.CLOCK.advance(toy.COSTS['prepare'])
    return optimizer_state, current_param_container, model_state


def data_selection(workload, input_queue, optimizer_state, current_param_container, model_state,
                   hyperparameters, global_step, rng):
    toy.CLOCK.advance(toy.COSTS['data'])
    return next(input_queue)
