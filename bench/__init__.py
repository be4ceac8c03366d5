"""Load benchmarks of the kit (see bench/README.md); `bench.harness` is the shared library."""
