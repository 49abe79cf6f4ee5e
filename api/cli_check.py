"""`kb check`: verify the index without changing it; exit 1 if anything is damaged."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict

from kb.core import load_settings
from kb.store import check_data_dir

HELP = (
    "Verify the index without changing it: every file parses and agrees with the "
    "manifest, every chunk has its vector. Exit 1 if damaged (`kb ingest` repairs it)."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace) -> int:
    settings = load_settings(data_dir=args.data_dir)
    report = check_data_dir(settings)
    if args.json:
        found = asdict(report) | {"ok": report.ok, "data_dir": str(report.data_dir)}
        found["missing_vectors"] = len(report.missing_vectors)
        print(json.dumps(found, indent=2))
        return 0 if report.ok else 1
    if report.version is None and report.ok:
        print(f"no corpus has been ingested into {settings.data_dir}: nothing to check")
        return 0
    if report.interrupted:
        print("an ingest was interrupted: the next `kb ingest` finishes it")
    if report.ok:
        print(
            f"ok: version {report.version}, {report.documents} documents, {report.chunks} "
            f"chunks, every chunk has its vector ({settings.data_dir})"
        )
        return 0
    print(f"damaged: {len(report.damage)} problem(s) in {settings.data_dir}")
    for damage in report.damage:
        print(f"  {damage}")
    print("run `kb ingest PATH` to repair")
    return 1
