"""Federated trials on a simulated clock.

``work`` (what a dispatched client is asked to do: FLOPs, bytes down and up),
``latency_base`` and ``latency`` (client latency models, work-dependent),
``simulator`` (the event-driven clock and round bookkeeping), ``training``
(calls the submission's client and server updates), ``evaluation`` (when to
evaluate beyond the period; straggler shares) and ``runner``
(``run_federated_trial``: results files, evaluations, checkpoints). The contract
itself is in ``harness/spec_federated.py``; loading submissions in
``harness/submission/federated.py``.
"""
