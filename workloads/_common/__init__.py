"""Framework glue shared by workloads.

Each module imports at most one framework, and only when it is imported itself:
``rng`` and ``param_trees`` need neither, ``jax_utils`` imports only JAX and
``torch_utils`` only torch, so a JAX user never imports torch and vice versa.
"""
