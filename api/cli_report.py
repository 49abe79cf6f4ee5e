"""`kb report`: compare long context against retrieval on an evaluation set."""

from __future__ import annotations

import argparse

HELP = "Run an evaluation set through each mode and write a comparison report."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    pass


def run(args: argparse.Namespace) -> int:
    raise NotImplementedError("kb report is being built")
