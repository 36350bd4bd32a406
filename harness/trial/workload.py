"""The workload a trial trains: the registry's class with this hardware class's budget."""

from __future__ import annotations

from typing import Any, Dict

from harness import hardware, registry
from harness.calibration import targets
from harness.spec import Budget
from harness.trial.config import TrialConfig


def target_of(workload) -> Dict[str, Any]:
    return {'metric': f'validation/{workload.target_metric_name}',
            'value': float(workload.validation_target_value), 'mode': workload.target_mode}


def build_workload(config: TrialConfig):
    """The workload with this hardware class's calibrated budget, if any."""
    registry.validate_workload_choice(config.workload, config.size, config.variant,
                                      config.framework)
    if config.budget_override:
        budget = Budget(**config.budget_override)
    else:
        hw_class = hardware.hardware_class(hardware.fingerprint())
        # A workload that shares another's target (lm_slm shares lm's) shares its
        # calibration too.
        info = registry.workload_info(config.workload)
        cls = registry.load_object(info.classes[config.framework])
        budget = targets.calibrated_budget(
            hw_class, getattr(cls, 'budget_workload', None) or config.workload, config.size,
            config.variant)
    return registry.make_workload(config.workload, config.framework, config.size,
                                  config.variant, budget=budget)


