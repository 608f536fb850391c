"""Benchmarks of the hot spots: `python -m accelerated.bench attention|sn --help`."""
