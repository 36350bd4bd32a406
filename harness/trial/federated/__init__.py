"""Federated trials on a simulated clock.

``latency`` (client latency models), ``simulator`` (the event-driven clock and
round bookkeeping), ``backend`` (calls the submission's client and server
updates), ``submission`` (loading and checking federated submissions) and
``runner`` (``run_federated_trial``: results files, evaluations, checkpoints).
The contract itself is in ``harness/spec.py`` (Federated submission contract).
"""
