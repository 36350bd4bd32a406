"""A tiny next-token model with a fixed teacher, in both frameworks, for fast KD tests.

The student is an embedding table times an output matrix; the teacher's logits
are a fixed table indexed by the input token. The workloads have what the
distillation submissions read (``model_fn``, ``loss_fn``, ``teacher_logits``,
``teacher_topk``, ``step_hint``, ``reference_steps_to_target``, ``metrics_logger``)
and nothing of the data pipeline: ``batches`` makes the stream.
"""

from __future__ import annotations

from collections import namedtuple

import numpy as np

V, D, B, T = 12, 8, 4, 5
STEP_HINT = 20
#: The reference baseline's steps to the target: SALT's horizon.
REFERENCE_STEPS = 30
TEACHER = np.random.default_rng(4).normal(size=(V, V)).astype(np.float32) * 2


class Logger:
    def __init__(self):
        self.records = []

    def append_scalar_metrics(self, metrics, step):
        self.records.append({k: float(np.asarray(v)) for k, v in metrics.items()})


def initial_weights(seed=3):
    rng = np.random.default_rng(seed)
    return {
        'embed': rng.normal(size=(V, D)).astype(np.float32),
        'out': (0.3 * rng.normal(size=(D, V))).astype(np.float32),
    }


def batches(n, seed=5):
    """n batches of (B, T) tokens; the first row's last two targets are masked out."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        tokens = rng.integers(0, V, (B, T + 1)).astype(np.int32)
        weights = np.ones((B, T), np.float32)
        weights[0, -2:] = 0
        out.append({'inputs': tokens[:, :-1], 'targets': tokens[:, 1:], 'weights': weights})
    return out


class JaxLM:
    name = 'fake_lm'
    framework = 'jax'
    submission_attributes = teacher_calls = ('teacher_logits', 'teacher_topk')
    step_hint = STEP_HINT
    reference_steps_to_target = REFERENCE_STEPS

    def __init__(self):
        self.metrics_logger = Logger()

    def model_fn(self, params, batch, model_state, mode, rng, update_batch_norm=True,
                 dropout_rate=0.0):
        return params['embed'][batch['inputs']] @ params['out'], model_state

    def loss_fn(self, label_batch, logits_batch, mask_batch=None, label_smoothing=0.0):
        import jax
        import jax.numpy as jnp

        log_p = jax.nn.log_softmax(logits_batch.astype(jnp.float32), axis=-1)
        per = -jnp.take_along_axis(log_p, label_batch[..., None], -1)[..., 0]
        return {'summed': (per * mask_batch).sum(), 'n_valid_examples': mask_batch.sum()}

    def teacher_logits(self, batch):
        import jax.numpy as jnp

        return jnp.asarray(TEACHER)[batch['inputs']]

    def teacher_topk(self, batch, k):
        import jax

        return jax.lax.top_k(jax.nn.log_softmax(self.teacher_logits(batch), axis=-1), k)

    def convert(self, weights):
        import jax.numpy as jnp

        return {k: jnp.asarray(v) for k, v in weights.items()}

    def weights(self, params):
        return {k: np.asarray(v) for k, v in params.items()}

    def initial_rng(self):
        import jax

        return jax.random.PRNGKey(0)


class TorchLM:
    name = 'fake_lm'
    framework = 'pytorch'
    submission_attributes = teacher_calls = ('teacher_logits', 'teacher_topk')
    step_hint = STEP_HINT
    reference_steps_to_target = REFERENCE_STEPS

    def __init__(self):
        self.metrics_logger = Logger()

    def model_fn(self, params, augmented_and_preprocessed_input_batch, model_state, mode, rng,
                 update_batch_norm=True, dropout_rate=0.0):
        return params(augmented_and_preprocessed_input_batch['inputs']), model_state

    def loss_fn(self, label_batch, logits_batch, mask_batch=None, label_smoothing=0.0):
        import torch

        per = torch.nn.functional.cross_entropy(
            logits_batch.float().transpose(1, 2), label_batch.long(), reduction='none')
        return {'summed': (per * mask_batch).sum(), 'n_valid_examples': mask_batch.sum()}

    def teacher_logits(self, batch):
        import torch

        return torch.as_tensor(TEACHER)[batch['inputs'].long()]

    def teacher_topk(self, batch, k):
        import torch

        return torch.topk(torch.log_softmax(self.teacher_logits(batch), -1), k, dim=-1)

    def convert(self, weights):
        import torch

        model = torch.nn.Module()
        model.embed = torch.nn.Embedding(V, D)
        model.out = torch.nn.Linear(D, V, bias=False)
        with torch.no_grad():
            model.embed.weight.copy_(torch.tensor(weights['embed']))
            model.out.weight.copy_(torch.tensor(weights['out'].T))
        model.forward = lambda x: model.out(model.embed(x.long()))
        return model

    def weights(self, model):
        return {'embed': model.embed.weight.detach().numpy().copy(),
                'out': model.out.weight.detach().numpy().T.copy()}

    def initial_rng(self):
        return np.array([0, 0], np.uint32)


WORKLOADS = {'jax': JaxLM, 'pytorch': TorchLM}


def train(module, framework, hparams, num_steps):
    """Run ``num_steps`` of a submission module as the harness calls it.

    Returns (final weights as numpy, the logged metrics per step, the batches' sizes). The
    submission sees the workload through the harness's view, as in a trial."""
    from harness.submission.view import SubmissionWorkload

    raw = WORKLOADS[framework]()
    workload = SubmissionWorkload(raw)
    queue = iter([_to_framework(framework, b) for b in batches(4 * num_steps)])
    hp = namedtuple('Hyperparameters', sorted(hparams))(**hparams)
    params, rng = raw.convert(initial_weights()), raw.initial_rng()
    state = module.init_optimizer_state(workload=workload, model_params=params, model_state=None,
                                        hyperparameters=hp, rng=rng)
    sizes = []
    for step in range(num_steps):
        batch = module.data_selection(workload=workload, input_queue=queue, optimizer_state=state,
                                      current_param_container=params, model_state=None,
                                      hyperparameters=hp, global_step=step, rng=rng)
        sizes.append(int(batch['inputs'].shape[0]))
        state, params, _ = module.update_params(
            workload=workload, current_param_container=params, current_params_types=None,
            model_state=None, hyperparameters=hp, batch=batch, loss_type=None,
            optimizer_state=state, eval_results=[], global_step=step, rng=rng)
    return raw.weights(params), raw.metrics_logger.records, sizes


def _to_framework(framework, batch):
    if framework == 'jax':
        import jax.numpy as jnp

        return {k: jnp.asarray(v) for k, v in batch.items()}
    import torch

    return {k: torch.as_tensor(v) for k, v in batch.items()}
