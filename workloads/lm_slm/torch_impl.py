"""lm_slm in PyTorch: lm's student plus a frozen teacher (lm's model at the teacher's config).

Choices and the teacher API: see ``workload.py``. Shapes: B batch, T sequence,
V vocabulary, k top-k.
"""

from __future__ import annotations

from typing import Any, Dict, Tuple

import numpy as np
import torch

from workloads._common import torch_compile, torch_utils
from workloads.lm import torch_impl as lm_torch
from workloads.lm import workload as lm
from workloads.lm_slm import teacher as teacher_lib
from workloads.lm_slm.workload import FixedConfig, LmSlmMixin


class TeacherModelTorch(FixedConfig, lm_torch.LmTorchWorkload):
    """lm's PyTorch model and training glue at a config of our choosing (a teacher's)."""


class LmSlmTorchWorkload(LmSlmMixin, lm_torch.LmTorchWorkload):
    framework = 'pytorch'

    # ---- the framework hooks of LmSlmMixin

    def _load_teacher(self, config: lm.LmConfig, weights: Dict[str, np.ndarray]) -> None:
        teacher_lib.check_weights(config, weights)
        model = TeacherModelTorch(self.size, config)
        module = model.params_from_canonical(weights)
        module.requires_grad_(False)  # Frozen: no gradient reaches the teacher.
        module.eval()
        self._teacher_model = model
        self._teacher_module = module

    def _teacher_logits_impl(self, inputs: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return torch_compile.compiler_of(self)(
                _teacher_logits, self._teacher_module, inputs, self._teacher_bf16()
            )  # (B, T, V) float32

    def _teacher_topk_impl(self, inputs: torch.Tensor, k: int) -> Tuple[torch.Tensor, torch.Tensor]:
        with torch.no_grad():
            return torch_compile.compiler_of(self)(
                _teacher_topk, self._teacher_module, inputs, k, self._teacher_bf16()
            )

    def _teacher_inputs(self, inputs: Any) -> torch.Tensor:
        if not torch.is_tensor(inputs):
            inputs = torch.from_numpy(np.ascontiguousarray(inputs))
        return inputs.to(torch_utils.device(), torch.int64)

    def _teacher_bf16(self) -> bool:
        return self._teacher_model.config.compute_dtype == 'bfloat16'


# The teacher's forward passes, compiled (on the submission's clock) when the setting says
# so: model, log-softmax and top-k in one graph, as JAX jits them.


def _teacher_logits(module: torch.nn.Module, inputs: torch.Tensor, bf16: bool) -> torch.Tensor:
    with torch.autocast(inputs.device.type, dtype=torch.bfloat16, enabled=bf16):
        return module(inputs).float()  # (B, T, V)


def _teacher_topk(module, inputs, k: int, bf16: bool) -> Tuple[torch.Tensor, torch.Tensor]:
    log_probs = torch.log_softmax(_teacher_logits(module, inputs, bf16), dim=-1)
    values, indices = torch.topk(log_probs, k, dim=-1)  # (B, T, k), likeliest first
    return values, indices
