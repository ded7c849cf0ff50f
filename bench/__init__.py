"""Benchmarks (`make bench`): python -m bench.rnn_bench."""
