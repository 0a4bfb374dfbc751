"""Benchmarks against peers, run as ``python -m bench.run NAME [--quick] --out bench/results/``."""
