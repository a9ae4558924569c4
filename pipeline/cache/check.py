"""``python -m pipeline.cache.check DIR``: validate a teacher cache against its manifest (rows,
checksums, schema) and its dataset card (README.md), print what it holds; exit 1 naming every
problem when it is not valid."""

from __future__ import annotations

import argparse
import json
import sys

from .. import storage
from .card import CARD_NAME, card_problems
from .reader import CacheError, open_cache
from .shards import cache_footprint


def card_check(directory: str, manifest: dict) -> list[str]:
    """What is wrong with the dataset card of a valid cache (empty: nothing)."""
    path = storage.join(directory, CARD_NAME)
    if not storage.exists(path):
        return ["missing (the dataset card; a re-run of the teacher stage writes it)"]
    filesystem, p = storage.resolve(path)
    with filesystem.open_input_stream(p) as fh:
        raw = fh.read()
    try:
        text = raw.decode()
    except UnicodeDecodeError as exc:
        return [f"not UTF-8 text (byte {exc.start})"]
    schema, data_bytes, _ = cache_footprint(directory, manifest)
    return card_problems(text, manifest, schema, data_bytes)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m pipeline.cache.check", description=__doc__)
    p.add_argument("cache", help="cache directory (local path or URI)")
    p.add_argument("--footer", action="store_true", help="skip the SHA-256 pass (page checksums still hold)")
    args = p.parse_args(argv)
    try:
        cache = open_cache(args.cache, verify="footer" if args.footer else "checksum")
    except CacheError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    m = cache.manifest
    problems = card_check(args.cache, m)
    for problem in problems:
        print(f"error: {storage.join(args.cache, CARD_NAME)}: {problem}", file=sys.stderr)
    if problems:
        return 1
    print(
        json.dumps(
            {
                "ok": True,
                "rows": m["rows"],
                "tokens": m.get("tokens"),
                "bytes": m.get("bytes"),
                "shards": len(m["shards"]),
                "input": m["input"]["name"],
                "teacher": m["teacher"].get("model"),
                "weights_sha256": m["teacher"].get("weights_sha256"),
                "labels": m["labels"],
                "layers": m["layers"],
                "attentions": m["attentions"],
                "columns": m.get("columns"),
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
