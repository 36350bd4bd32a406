"""Fixed hyperparameters of the demo suite's federated entrants (package data)."""
