"""The row-flow section: rows read, kept and rejected by ingest, rows out of each augmentation
method, rows in each teacher cache."""

from __future__ import annotations

from ..collect import ReportData
from ..markup import _clip, _notrun, _num, _table, e


def _row_flow(data: ReportData) -> str:
    parts = []
    ing = data.ingest
    if ing.ran:
        rows, totals = [], [0, 0, 0]
        for s in ing.data["splits"]:
            ok = s["rows_in"] == s["kept"] + s["rejected"]
            reasons = ", ".join(f"{e(k)} {v:,}" for k, v in s.get("rejected_by_reason", {}).items()) or "–"
            fixes = ", ".join(f"{e(k)} {v:,}" for k, v in (s.get("fixes") or {}).items() if v) or "–"
            rows.append(
                [
                    e(s["split"]),
                    e(s.get("path", "")),
                    _num(s["rows_in"]),
                    _num(s["kept"]),
                    _num(s["rejected"]),
                    reasons,
                    fixes,
                    '<span class="ok">in = kept + rejected</span>'
                    if ok
                    else '<span class="bad">counts do not add up</span>',
                ]
            )
            totals = [totals[0] + s["rows_in"], totals[1] + s["kept"], totals[2] + s["rejected"]]
        parts.append(
            "<h3>Ingest</h3>"
            + _table(
                ["split", "input", "rows read", "kept", "rejected", "rejected by reason", "repaired", "check"],
                rows,
                {2, 3, 4},
                total=["all", "", *map(_num, totals), "", "", ""],
            )
        )
        samples = [(s["split"], r) for s in ing.data["splits"] for r in s["reject_samples"]]
        if samples:
            parts.append(
                "<h3>Rejected rows (first few per split)</h3>"
                + _table(
                    ["split", "line", "reason", "detail", "raw"],
                    [
                        [
                            e(sp),
                            _num(r.get("line")),
                            e(str(r.get("reason"))),
                            e(str(r.get("detail") or "")),
                            f'<span class="raw">{e(_clip(str(r.get("raw") or ""), 160))}</span>',
                        ]
                        for sp, r in samples
                    ],
                    {1},
                )
            )
    else:
        parts.append("<h3>Ingest</h3>" + _notrun(ing.note))
    aug = data.augment
    if aug.ran:
        rows = []
        for split, block in aug.data["splits"].items():
            for method, f in block["methods"].items():
                per = f["variants_per_example"]
                rows.append(
                    [
                        e(split),
                        e(method),
                        _num(f["examples"]),
                        _num(f["tries_per_example"]),
                        _num(f["tries"]),
                        _num(f["variants"]),
                        _num(f["duplicates_dropped"]),
                        _num(f["rows"]),
                        f"{per.mean:.2f}" if per.mean is not None else "–",
                    ]
                )
        parts.append(
            "<h3>Augmentation</h3>"
            + _table(
                [
                    "split",
                    "method",
                    "examples in",
                    "tries each",
                    "tries",
                    "variants kept",
                    "duplicates dropped",
                    "rows out",
                    "variants / example",
                ],
                rows,
                {2, 3, 4, 5, 6, 7, 8},
            )
        )
        parts.append(
            '<p class="note">Rows out = examples (each original is kept as variant 0) + variants kept. '
            "Duplicates dropped = tries − variants kept: tries that gave the original again or an earlier "
            "variant (a text without a replaceable word gives only those). TinyBERT tries each text of a "
            "pair on its own.</p>"
        )
    else:
        parts.append("<h3>Augmentation</h3>" + _notrun(aug.note))
    teach = data.teacher
    if teach.ran and data.cache.data.get("caches"):
        rows = [
            [e(c["name"]), _num(c["rows"]), _num(c["tokens"]), _num(c["shards"])] for c in data.cache.data["caches"]
        ]
        parts.append(
            "<h3>Teacher cache</h3>" + _table(["input", "rows cached", "real tokens", "shards"], rows, {1, 2, 3})
        )
    else:
        parts.append("<h3>Teacher cache</h3>" + _notrun(teach.note or "No teacher cache."))
    return "\n".join(parts)
