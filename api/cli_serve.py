"""`kb serve`: run the HTTP service."""

from __future__ import annotations

import argparse

HELP = "Serve the HTTP API and web page (host, port and workers from KB_* settings)."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    pass


def run(args: argparse.Namespace) -> int:
    raise NotImplementedError("kb serve is being built")
