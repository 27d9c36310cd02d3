"""Benchmarks: one command each, results as JSON under benchmarks/results/."""
