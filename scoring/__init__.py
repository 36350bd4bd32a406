"""Scoring: reads results files only and turns trials into time-to-target tables,
performance profiles, benchmark scores, plots and one HTML report.

Entry points: ``scoring.api.score`` (Python) and ``scoring.cli`` (``timetrial score``).
See scoring/README.md for definitions, the data frames' schema and the outputs.
"""
