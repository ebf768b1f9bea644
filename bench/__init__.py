"""Benchmarks of rfm-stream: ``python -m bench.run`` (see bench/README.md)."""
