"""Fixed hyperparameters of the salt suites' controlled ablation (package data)."""
