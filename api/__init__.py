"""The HTTP service and the `kb` command line: the edge over `kb` and `ingest`."""
