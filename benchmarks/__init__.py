"""Benchmarks of the workbench (`python -m benchmarks`, or `make bench`): ratios measured side by side."""
