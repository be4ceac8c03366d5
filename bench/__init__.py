"""Benchmarks of the kit (bench/README.md); `bench.harness` is their load harness."""
