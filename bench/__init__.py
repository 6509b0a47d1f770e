"""Offline replay, evaluation and benchmarks; runs the same weighting/ and sinks/ code as the live pipeline."""
