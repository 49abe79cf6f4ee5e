"""Benchmarks: scripts that measure kb and print figures (not tests; each exits 0).

Each runs as a file from the repository root, `.venv/bin/python bench/NAME.py --help`
(or `-m bench.NAME`); it puts the checkout first on `sys.path`, then imports the
project and its sibling benches as `bench.NAME`. A bench may import `kb`, its
packages and `ingest` by their public names (a package's `__init__` and its `__all__`),
and `api`; nothing imports `bench` (tests/test_architecture.py checks both).
"""
