"""`kb kbs` lists the knowledge bases of a data directory; `kb keys` creates, lists
and revokes scoped API keys (stored as salted hashes in KB_KEYS_FILE)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from kb import KeyStore, KnowledgeBase, KnowledgeBases, root_settings
from kb.core import load_settings

KBS_HELP = (
    "List the knowledge bases of the data dir: documents, tokens, and the path `auto` "
    "takes for each and why (`kb ingest PATH --kb NAME` makes one)."
)
KEYS_HELP = (
    "Create, list or revoke API keys scoped to knowledge bases (read; --ingest; --admin). "
    "The key is printed once; the keys file keeps only its salted scrypt hash."
)


def add_kbs_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object per base")


def run_kbs(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    settings = root_settings(load_settings(data_dir=args.data_dir))
    with KnowledgeBase(settings) as default:
        bases = KnowledgeBases(settings, default, embedder=default.embedder)
        for name in bases.names():
            info = bases.describe(name)
            if args.json:
                print(json.dumps(asdict(info)))
                continue
            route = info.auto_route
            why = f"auto: {route.path} ({route.reason})" if route else "not ingested yet"
            print(f"{name}: {info.documents} documents, {info.corpus_tokens:,} tokens; {why}")
    return 0


def add_keys_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    create = actions.add_parser("create", help="create a key and print it once")
    create.add_argument(
        "--kb",
        dest="kbs",
        action="append",
        required=True,
        metavar="NAME",
        help="a knowledge base it may read (repeat; '*' for all; 'default' for KB_DATA_DIR)",
    )
    create.add_argument("--ingest", action="store_true", help="may also ingest into them")
    create.add_argument("--admin", action="store_true", help="may create/delete bases and keys")
    create.add_argument("--name", default="", help="a note for whom the key is")
    listing = actions.add_parser("list", help="list key ids and scopes (never the keys)")
    delete = actions.add_parser("delete", help="revoke a key by its id")
    delete.add_argument("key_id")
    for action in (create, listing, delete):  # `kb keys create ... --data-dir DIR` too
        action.add_argument(
            "--data-dir", type=Path, default=argparse.SUPPRESS, help="index folder (KB_DATA_DIR)"
        )


def run_keys(args: argparse.Namespace) -> int:
    settings = load_settings(data_dir=args.data_dir)
    store = KeyStore(settings.keys_path())
    if args.action == "create":
        key, record = store.create(args.kbs, ingest=args.ingest, admin=args.admin, name=args.name)
        print(key)
        print(f"key {record.id} reads {', '.join(record.kbs)}"
              f"{'; ingest' if record.ingest else ''}{'; admin' if record.admin else ''} "
              f"(stored as a hash in {store.path}; this is the only time it is shown)",
              file=sys.stderr)  # fmt: skip
        return 0
    if args.action == "list":
        for record in store.records():
            print(json.dumps(record.public()))
        return 0
    if not store.delete(args.key_id):
        print(f"kb: no key with id {args.key_id!r} in {store.path}", file=sys.stderr)
        return 2
    print(f"revoked key {args.key_id}")
    return 0
