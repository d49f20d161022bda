"""Benchmarks run by ``scratchgen bench NAME``: each prints ratios and GFLOP/s."""
