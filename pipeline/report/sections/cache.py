"""The cache section: the size of each teacher cache on disk and its bytes per column."""

from __future__ import annotations

from .. import stats
from ..collect import ReportData
from ..markup import _bytes, _notrun, _num, _share, _table, e

SMALL_COLUMN_SHARE = 0.01  # per-column tables sum the columns below this share of a cache's bytes


def _cache(data: ReportData) -> str:
    c = data.cache
    if not c.ran:
        return _notrun(c.note)
    parts = [f'<p class="error">Cache not readable: {e(err)}</p>' for err in c.data.get("errors", [])]
    if c.data.get("unfinished"):
        parts.append(_notrun("Unfinished caches (shards without manifest.json): " + ", ".join(c.data["unfinished"])))
    caches = c.data["caches"]
    rows = [
        [
            e(x["name"]),
            _num(x["rows"]),
            _num(x["tokens"]),
            _bytes(x["bytes"]),
            f"{x['bytes_per_token']:,.0f}" if x["bytes_per_token"] else "–",
            _bytes(x["bytes_per_row"]),
            f"{x['bytes_per_hidden_value']:.3f}" if x["bytes_per_hidden_value"] else "–",
            f"{x['compression_ratio']:.2f}×" if x["compression_ratio"] else "–",
            e(", ".join(map(str, x["layers"]))) or "none",
        ]
        for x in caches
    ]
    parts.append(
        _table(
            [
                "cache",
                "rows",
                "real tokens",
                "on disk",
                "bytes / token",
                "bytes / row",
                "bytes / hidden value",
                "compression",
                "hidden layers",
            ],
            rows,
            {1, 2, 3, 4, 5, 6, 7},
        )
    )
    parts.append(
        '<p class="note">On disk: the shard files. Compression: decoded (uncompressed) over stored bytes of '
        "every column chunk, from the Parquet footers; a float16 value decodes to 2 bytes.</p>"
    )
    tables = []
    for x in caches:
        total = sum(col.compressed for col in x["columns"]) or 1
        big = [col for col in x["columns"] if col.compressed / total >= SMALL_COLUMN_SHARE]
        small = [col for col in x["columns"] if col.compressed / total < SMALL_COLUMN_SHARE]
        if len(small) > 1:
            rest = stats.ColumnBytes(
                f"{len(small)} other columns", sum(c.compressed for c in small), sum(c.uncompressed for c in small)
            )
            big.append(rest)
        else:
            big += small
        rows = [
            [
                f"<code>{e(col.column)}</code>" if col in x["columns"] else e(col.column),
                _bytes(col.compressed),
                _bytes(col.uncompressed),
                f"{col.ratio:.2f}×" if col.ratio else "–",
                _share(col.compressed / total),
                f'<span class="bar" style="width:{max(1, round(160 * col.compressed / total))}px"></span>',
            ]
            for col in big
        ]
        tables.append(
            f"<div><h3>{e(x['name'])}: bytes per column</h3>"
            + _table(["column", "stored", "decoded", "ratio", "share", ""], rows, {1, 2, 3, 4})
            + "</div>"
        )
    parts.append(f'<div class="figs">{"".join(tables)}</div>')
    if any(len(x["columns"]) > 1 for x in caches):
        parts.append(
            f'<p class="note">Columns under {SMALL_COLUMN_SHARE:.0%} of a cache\'s bytes are summed in one row.</p>'
        )
    return "\n".join(parts)
