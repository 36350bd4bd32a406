"""lm_slm in JAX: lm's student plus a frozen teacher (lm's model at the teacher's config).

Choices and the teacher API: see ``workload.py``. Shapes: B batch, T sequence,
V vocabulary, k top-k.
"""

from __future__ import annotations

from typing import Any, Dict, Tuple

import jax
import jax.numpy as jnp
import numpy as np

from harness import spec
from workloads.lm import jax_impl as lm_jax
from workloads.lm import workload as lm
from workloads.lm_slm import teacher as teacher_lib
from workloads.lm_slm.workload import FixedConfig, LmSlmMixin


class TeacherModelJax(FixedConfig, lm_jax.LmJaxWorkload):
    """lm's JAX model and training glue at a config of our choosing (a teacher's)."""


class LmSlmJaxWorkload(LmSlmMixin, lm_jax.LmJaxWorkload):
    framework = 'jax'

    # ---- the framework hooks of LmSlmMixin

    def _load_teacher(self, config: lm.LmConfig, weights: Dict[str, np.ndarray]) -> None:
        teacher_lib.check_weights(config, weights)
        model = TeacherModelJax(self.size, config)
        model.init_model_fn(jax.random.PRNGKey(0))  # Builds the flax module; weights replaced.
        self._teacher_model = model
        self._teacher_params = model.params_from_canonical(weights)

        def logits(params, inputs):
            out, _ = model.model_fn(
                params, {'inputs': inputs}, None, spec.ForwardPassMode.EVAL, None, False
            )
            return out  # (B, T, V) float32

        def topk(params, inputs, k):
            log_probs = jax.nn.log_softmax(logits(params, inputs), axis=-1)
            return jax.lax.top_k(log_probs, k)  # (B, T, k) each, likeliest first

        # Params are an argument, not a closed-over constant (that would embed them in the program).
        self._teacher_logits_jit = jax.jit(logits)
        self._teacher_topk_jit = jax.jit(topk, static_argnums=2)

    def _teacher_logits_impl(self, inputs: jax.Array) -> jax.Array:
        return self._teacher_logits_jit(self._teacher_params, inputs)

    def _teacher_topk_impl(self, inputs: jax.Array, k: int) -> Tuple[jax.Array, jax.Array]:
        return self._teacher_topk_jit(self._teacher_params, inputs, k)

    def _teacher_inputs(self, inputs: Any) -> jax.Array:
        if isinstance(inputs, jax.core.Tracer):
            raise TypeError(
                'lm_slm: call teacher_logits/teacher_topk outside jax.jit (pass their result '
                'into your jitted step): each call is timed on its own, which a trace cannot do.'
            )
        return inputs if isinstance(inputs, jax.Array) else jnp.asarray(inputs)
