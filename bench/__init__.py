"""Caracal benchmarks: `python -m bench` (see bench/README.md).

Speed targets are measured here rather than in unit tests: the figures are medians over many
samples, on whatever machine runs them, so they are read by people, not asserted in CI.
"""
