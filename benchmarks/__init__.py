"""Side-by-side benchmarks with the peers and in-run ceilings (docs/benchmarks.md).

Run each as a module from the repository root, e.g. ``python -m benchmarks.read_throughput``.
They share :mod:`benchmarks.harness` (the workload, the machine line, isolated child runs,
best-of timing, tables). The package is not installed with rlds_hub.
"""
