"""Benchmarks: each module has ``main()`` printing figures beside a same-run baseline."""
