"""``python -m pipeline.teacher.check DIR``: validate a teacher cache and print what it holds."""

from __future__ import annotations

import argparse
import json
import sys

from .cache import CacheError, open_cache


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m pipeline.teacher.check", description=__doc__)
    p.add_argument("cache", help="cache directory (local path or URI)")
    p.add_argument("--footer", action="store_true", help="skip the SHA-256 pass (page checksums still hold)")
    args = p.parse_args(argv)
    try:
        cache = open_cache(args.cache, verify="footer" if args.footer else "checksum")
    except CacheError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    m = cache.manifest
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
