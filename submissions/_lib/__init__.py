"""Code shared by the shipped submissions; not a submission.

Framework-free (importing neither jax nor torch): ``common`` (reading
hyperparameters, the training settings and AlgoPerf functions every baseline
shares), ``schedules`` (the learning-rate schedule's math), ``hparam_checks``
(one validator and its rule tables), ``kd`` (distillation: loss math,
settings, teacher checks, selection), ``federated`` (the federated baselines'
defaults, rules, round configurations and server weights) and
``optim_blocks`` (how Kronecker optimizers cut parameters into blocks).

Per framework, side by side: ``jax_common`` / ``torch_common`` (the train
step around an optimizer), ``kd_jax`` / ``kd_torch``, ``federated_jax`` /
``federated_torch``, and the optimizer zoo ``optim_jax`` / ``optim_torch``.
"""
