"""Benchmarks: ratios against named baselines, run on demand (`make bench`)."""
