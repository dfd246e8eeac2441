"""vqc benchmarks: ``python -m bench.run`` (``make bench``) writes ``docs/BENCHMARKS.md``."""
