"""TimeTrial harness: the contract, the timed runner, tuning, suites, launching, results."""

__version__ = '0.1.0'
