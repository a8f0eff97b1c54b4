"""Benchmarks: ``bench/run`` (see bench/beat.py)."""
