"""The report as one self-contained HTML page: inline CSS, inline PNG figures, no script, no network."""

from __future__ import annotations

import html
import time
from collections.abc import Set as AbstractSet
from string import Template

import numpy as np

from ..metrics import METRIC_NAMES, REGRESSION_METRICS
from . import plots, stats
from .collect import ReportData

SECTIONS = [
    ("row-flow", "Row flow"),
    ("samples", "Samples"),
    ("augmentation", "Augmentation"),
    ("teacher", "Teacher"),
    ("cache", "Cache"),
    ("student", "Student"),
]

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;color:#1f2328;
  margin:0;background:#f6f7f9}
header{background:#24313f;color:#fff;padding:18px 32px}
header h1{margin:0 0 4px;font-size:22px;font-weight:600}
header .meta{color:#c8d1dc;font-size:13px}
nav{background:#fff;border-bottom:1px solid #dde1e6;padding:8px 32px;position:sticky;top:0}
nav a{margin-right:18px;color:#2c5d9e;text-decoration:none;font-weight:500}
main{max-width:1180px;margin:0 auto;padding:8px 32px 48px}
section{background:#fff;border:1px solid #dde1e6;border-radius:6px;padding:4px 22px 18px;margin:18px 0}
h2{font-size:18px;margin:16px 0 8px;border-bottom:1px solid #eceef1;padding-bottom:6px}
h3{font-size:15px;margin:18px 0 6px}
p.note{color:#555;margin:6px 0}
p.notrun{background:#f3f4f6;border-left:4px solid #9aa4b1;padding:8px 12px;color:#444}
p.error{background:#fdecec;border-left:4px solid #c0392b;padding:8px 12px}
table{border-collapse:collapse;margin:6px 0 10px;font-size:13px}
th,td{border-bottom:1px solid #e6e8eb;padding:4px 10px;text-align:left;vertical-align:top}
th{background:#f3f5f8;font-weight:600}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
tr.total td{font-weight:600;border-top:2px solid #cfd4da}
.ok{color:#1e7b34;font-weight:600}.bad{color:#c0392b;font-weight:600}
.figs{display:flex;flex-wrap:wrap;gap:14px;align-items:flex-start}
.figs img{max-width:100%;border:1px solid #eceef1;border-radius:4px}
table.samples{width:100%;table-layout:fixed}
table.samples td{font-size:13px}
table.samples ol{margin:0;padding-left:20px}
table.samples li{margin:2px 0}
.more{color:#777;font-size:12px}
.w-replaced{background:#fff1b8;border-radius:2px}
.w-masked{background:#cfe3ff;border-radius:2px;font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12px}
.w-inserted{background:#d8f3dc;border-radius:2px}
.w-dropped{color:#b03a2e;text-decoration:line-through;opacity:.65}
.legend span{margin-right:14px;padding:1px 5px}
.bar{display:inline-block;height:10px;background:#3b6fb6;border-radius:2px;vertical-align:middle}
code{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12px;background:#f3f5f8;padding:1px 4px;border-radius:3px}
span.raw{display:inline-block;font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12px;max-width:420px;overflow-wrap:anywhere}
"""

PAGE = Template("""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Job report: $title</title>
<style>$css</style>
</head>
<body>
<header><h1>Job report: $title</h1>
<div class="meta">output folder <code>$output_dir</code> &middot; generated $generated</div></header>
<nav>$nav</nav>
<main>
$sections
</main>
</body>
</html>
""")

e = html.escape
SMALL_COLUMN_SHARE = 0.01  # per-column tables sum the columns below this share of a cache's bytes


def _num(v, digits: int = 0) -> str:
    if v is None:
        return "–"
    if isinstance(v, float) and digits:
        return f"{v:,.{digits}f}"
    return f"{round(v):,}"


def _pct(v: float | None, digits: int = 1) -> str:
    return "–" if v is None else f"{v:.{digits}%}"


def _share(v: float) -> str:
    return "<0.1%" if 0 < v < 0.001 else _pct(v)


def _bytes(n: float | None) -> str:
    if n is None:
        return "–"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024
    return ""


def _table(
    headers: list[str],
    rows: list[list[str]],
    numeric: AbstractSet[int] = frozenset(),
    cls: str = "",
    total: list[str] | None = None,
) -> str:
    num = ' class="num"'

    def cells(row, tag):
        return "".join(f"<{tag}{num if i in numeric else ''}>{c}</{tag}>" for i, c in enumerate(row))

    body = "".join(f"<tr>{cells(r, 'td')}</tr>" for r in rows)
    if total:
        body += f'<tr class="total">{cells(total, "td")}</tr>'
    attr = f' class="{cls}"' if cls else ""
    return f"<table{attr}><thead><tr>{cells(headers, 'th')}</tr></thead><tbody>{body}</tbody></table>"


def _section(sid: str, title: str, body: str) -> str:
    return f'<section id="{sid}"><h2>{e(title)}</h2>\n{body}\n</section>'


def _notrun(text: str) -> str:
    return f'<p class="notrun">{e(text)}</p>'


def _img(uri: str, alt: str) -> str:
    return f'<img src="{uri}" alt="{e(alt)}">'


# ---------------------------------------------------------------------------------------------


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
                        f"{np.mean(per):.2f}" if per else "–",
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


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def _spans(spans: list[stats.Span]) -> str:
    out = []
    for s in spans:
        text = e(s.text)
        out.append(s.lead + (text if s.kind == "same" else f'<span class="w-{s.kind}" title="{s.kind}">{text}</span>'))
    return "".join(out)


def _samples(data: ReportData) -> str:
    aug = data.augment
    if not aug.ran:
        return _notrun(aug.note)
    parts = [
        '<p class="legend">Each original next to its variants; words are compared with the original '
        '(case and accents ignored): <span class="w-replaced">replaced</span>'
        f'<span class="w-masked">{e(aug.data["mask_token"])}</span> masked '
        '<span class="w-dropped">dropped</span>'
        '<span class="w-inserted">inserted</span></p>'
    ]
    for split, block in aug.data["splits"].items():
        methods = list(block["methods"])
        parts.append(f"<h3>split {e(split)}</h3>")
        if not block["samples"]:
            parts.append('<p class="note">No original short enough to show that every method augmented.</p>')
            continue
        rows = []
        for s in block["samples"]:
            o = s["original"]
            orig = e(o["text_a"]) + (f"<br><b>b:</b> {e(o['text_b'])}" if o["text_b"] is not None else "")
            cells = [orig]
            for m in methods:
                info = s["methods"].get(m)
                if not info or not info["total"]:
                    cells.append('<span class="more">no variant</span>')
                    continue
                items = []
                for v in info["shown"]:
                    text = _spans(v["a"]) + (f"<br><b>b:</b> {_spans(v['b'])}" if "b" in v else "")
                    items.append(f"<li>{text}</li>")
                more = info["total"] - len(info["shown"])
                tail = f'<div class="more">… and {more} more</div>' if more > 0 else ""
                cells.append(f"<ol>{''.join(items)}</ol>{tail}")
            rows.append(cells)
        parts.append(_table(["original", *[f"{m} variants" for m in methods]], rows, cls="samples"))
    return "\n".join(parts)


def _augmentation(data: ReportData) -> str:
    aug = data.augment
    if not aug.ran:
        return _notrun(aug.note)
    parts = []
    for split, block in aug.data["splits"].items():
        methods = block["methods"]
        rows = []
        for m, f in methods.items():
            r: stats.MethodRates = f["rates"]
            per = f["variants_per_example"]
            sampled = "" if f["stats_examples"] >= f["examples"] else f" ({f['stats_examples']:,} sampled originals)"
            rows.append(
                [
                    e(m),
                    _num(r.variants) + sampled,
                    _pct(r.replaced_rate),
                    _pct(r.masked_rate),
                    _pct(r.dropped_rate),
                    f"{r.mean_length_change:+.2f}",
                    f"{np.mean(per):.2f}" if per else "–",
                    _num(min(per) if per else None),
                    _num(max(per) if per else None),
                    e(str(f["summary"].get("mlm", ""))),
                ]
            )
        parts.append(
            f"<h3>split {e(split)}</h3>"
            + _table(
                [
                    "method",
                    "variants",
                    "replaced / word",
                    "masked / word",
                    "dropped / word",
                    "length change (words)",
                    "variants / example",
                    "min",
                    "max",
                    "MLM",
                ],
                rows,
                {1, 2, 3, 4, 5, 6, 7, 8},
            )
        )
        figs = [
            _img(plots.rate_bars({m: f["rates"] for m, f in methods.items()}), "per-word edit rates"),
            _img(
                plots.count_histograms(
                    {m: f["variants_per_example"] for m, f in methods.items()},
                    "variants per example",
                    "Variants per example",
                ),
                "variants per example",
            ),
            _img(plots.length_change_cdf({m: f["rates"].length_changes for m, f in methods.items()}), "length change"),
        ]
        parts.append(f'<div class="figs">{"".join(figs)}</div>')
    parts.append(
        '<p class="note">Rates are shares of the originals\' words over all variants: a word replaced by '
        "another word (a replacement by the same word is no change), by the mask token, or dropped "
        "(Tang's n-gram sampling keeps one n-gram only).</p>"
    )
    return "\n".join(parts)


def _teacher(data: ReportData) -> str:
    t = data.teacher
    parts = []
    ft = t.data.get("finetune")
    if ft:
        metric = str(ft.get("metric", "accuracy"))
        rows = [
            [
                _num(ep["epoch"]),
                f"{ep['train_loss']:.4f}",
                f"{ep.get('dev_loss', float('nan')):.4f}",
                f"{ep.get(f'dev_{metric}', float('nan')):.4f}",
            ]
            for ep in ft.get("epochs", [])
        ]
        loss = "squared error" if ft.get("regression") else "cross-entropy"
        parts.append(
            f'<h3>Fine-tuning</h3><p class="note">{_num(ft.get("train_examples"))} training examples, '
            f"dev: {e(str(ft.get('dev_source', '')))}; best epoch {_num(ft.get('best_epoch'))}"
            f"{' (reused from an earlier run)' if ft.get('reused') else ''}.</p>"
            + _table(
                ["epoch", f"train loss ({loss})", "dev loss", f"dev {METRIC_NAMES.get(metric, metric)}"],
                rows,
                {0, 1, 2, 3},
            )
        )
    if not t.ran:
        parts.append(_notrun(t.note))
        return "\n".join(parts)
    for err in t.data.get("errors", []):
        parts.append(f'<p class="error">Cache not readable: {e(err)}</p>')
    caches = t.data["caches"]
    parts += [_ensemble(c) for c in caches if c.get("ensemble")]
    if any(c.get("regression") for c in caches):
        parts.append(_teacher_scores([c for c in caches if c.get("regression")]))
        caches = [c for c in caches if not c.get("regression")]
        if not caches:
            return "\n".join(parts)
    rows = []
    for c in caches:
        agree = c.get("agreement")
        flips: stats.FlipStats | None = c["flips"]
        orig, var = c["confidence_original"], c["confidence_variant"]
        predicted = ", ".join(f"{e(k)} {_pct(v / c['rows'] if c['rows'] else None)}" for k, v in c["predicted"].items())
        rows.append(
            [
                e(c["name"]),
                e(", ".join(c["methods"])) or "–",
                _num(c["rows"]),
                predicted,
                _pct(agree[0] / agree[1]) if agree and agree[1] else "–",
                f"{np.mean(orig):.3f}" if orig else "–",
                f"{np.mean(var):.3f}" if var else "–",
                f"{_pct(flips.rate)} ({flips.flips:,} of {flips.compared:,})" if flips else "–",
            ]
        )
    parts.append(
        "<h3>Predictions</h3>"
        + _table(
            [
                "cache",
                "method",
                "rows",
                "predicted labels",
                "agrees with label",
                "confidence: originals",
                "confidence: variants",
                "label-flip rate",
            ],
            rows,
            {2, 4, 5, 6},
        )
    )
    single = [c["name"] for c in caches if c["rows"] and max(c["predicted"].values(), default=0) == c["rows"]]
    if single:
        parts.append(
            f'<p class="error">The teacher predicts the same label for every row of {e(", ".join(single))}: '
            "it has learnt no more than the majority label, and a label-flip rate of zero says nothing about "
            "the augmentation. Train the teacher longer or on more data.</p>"
        )
    parts.append(
        '<p class="note">Label-flip rate: share of variants whose predicted label (argmax of the cached '
        "logits) differs from the prediction on their original. Confidence: the softmax probability of the "
        "predicted label. A variant inherits its original's label.</p>"
    )
    aug_methods = set()
    if data.augment.ran:
        aug_methods = {m for b in data.augment.data["splits"].values() for m in b["methods"]}
    cached = {m for c in caches for m in c["methods"]}
    missing = sorted(aug_methods - cached)
    if missing:
        parts.append(
            _notrun(
                f"No teacher cache of the {', '.join(missing)} corpus: no confidence or flip rate for "
                f"{'it' if len(missing) == 1 else 'them'} (add augmented/<split>/<method> to "
                "teacher.inputs)."
            )
        )
    panels = [(c["name"], c["confidence_original"], c["confidence_variant"]) for c in caches if c["rows"]]
    if panels:
        labels = t.data.get("labels")
        parts.append(
            f'<div class="figs">{_img(plots.confidence_histograms(panels, len(labels) if labels else None), "teacher confidence")}</div>'
        )
    return "\n".join(parts)


def _ensemble(c: dict) -> str:
    """A cache's teacher ensemble: each teacher and each combination scored on its originals."""
    ens = c["ensemble"]
    scores: dict = ens["scores"]
    names = ["pearson", "spearman", "mse"] if c.get("regression") else ["accuracy", "macro_f1"]
    rows = [[e(name), *(f"{v.get(n, float('nan')):.4f}" for n in names)] for name, v in scores.items()]
    agree = ""
    if ens.get("pairwise_agreement") is not None:
        agree = (
            f" Two teachers predict the same label on {_pct(ens['pairwise_agreement'])} of the rows (mean over "
            f"pairs); all {len(ens['teachers'])} agree on {_pct(ens['all_agree'])}."
        )
    return (
        f"<h3>Ensemble: {e(c['name'])}</h3>"
        + _table(["teacher", *(METRIC_NAMES[n] for n in names)], rows, set(range(1, 1 + len(names))))
        + f'<p class="note">{_num(ens["rows"])} originals of the cache, against their labels. prob_mean: the '
        f"mean of the teachers' probabilities; logit_mean: the mean of their logits.{agree}</p>"
    )


def _teacher_scores(caches: list[dict]) -> str:
    """A regression teacher: its predicted scores, their correlation with the gold scores and a
    scatter plot of the two; the shift of a variant's prediction from its original's."""
    rows = []
    for c in caches:
        pred, corr, shift = c.get("prediction"), c.get("correlation") or {}, c.get("shift")
        rows.append(
            [
                e(c["name"]),
                e(", ".join(c["methods"])) or "–",
                _num(c["rows"]),
                f"{pred[0]:.2f} ± {pred[1]:.2f} ({pred[2]:.2f} to {pred[3]:.2f})" if pred else "–",
                _num(c.get("scored")),
                *(
                    f"{corr[k]:.4f}" if np.isfinite(corr.get(k, np.nan)) else "–"
                    for k in ("pearson", "spearman", "mse")
                ),
                f"{shift[0]:.3f} ({shift[1]:,} variants)" if shift and shift[0] is not None else "–",
            ]
        )
    parts = [
        "<h3>Predictions</h3>"
        + _table(
            [
                "cache",
                "method",
                "rows",
                "predicted score (mean ± sd, range)",
                "scored rows",
                "Pearson",
                "Spearman",
                "MSE",
                "variant shift",
            ],
            rows,
            {2, 4, 5, 6, 7},
        ),
        '<p class="note">Pearson, Spearman and MSE of the teacher\'s prediction against the gold score over '
        "the scored originals of each cache. Variant shift: mean absolute difference between the prediction "
        "on a variant and on its original (a variant inherits its original's gold score).</p>",
    ]
    panels = [(c["name"], c["points"], (c.get("correlation") or {}).get("pearson")) for c in caches if c.get("points")]
    if panels:
        parts.append(
            f'<div class="figs">{_img(plots.score_scatter(panels), "teacher prediction against the gold score")}</div>'
        )
    return "\n".join(parts)


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


def _student(data: ReportData) -> str:
    s = data.student
    if not s.ran:
        return _notrun(s.note)
    parts = []
    rows_data, runs = s.data["rows"], s.data["runs"]
    metric = next((str(r["metric"]) for r in [*rows_data, *runs] if r.get("metric")), None)
    if metric is None:  # runs of an older stage name no metric: the history tells
        history = [h for r in runs for h in r.get("history") or []]
        metric = "pearson" if any("dev_pearson" in h for h in history) else "accuracy"
    names = ["pearson", "spearman", "mse"] if metric in REGRESSION_METRICS else ["accuracy", "macro_f1"]
    names = list(dict.fromkeys([metric, *names]))
    split = next((str(r["eval_split"]) for r in [*rows_data, *runs] if r.get("eval_split")), "test")

    def cell(r: dict, name: str, first: bool) -> str:
        mean = r.get(f"{name}_mean", float("nan"))
        if not first:
            return f"{mean:.4f}"
        std = r.get(f"{name}_std")
        return f"{mean:.4f}" + (f" ± {std:.4f}" if std is not None else " (one run)")

    if rows_data:
        rows = [
            [
                e(str(r.get("name", ""))),
                e(str(r.get("model", ""))),
                e(str(r.get("data", ""))),
                e(", ".join(map(str, r.get("seeds", [])))),
                *(cell(r, n, i == 0) for i, n in enumerate(names)),
                _num(r.get("params")),
                _num(r.get("sentences_per_s")),
            ]
            for r in rows_data
        ]
        heads = [f"{split} {METRIC_NAMES[names[0]]} (mean ± std)", *(f"{split} {METRIC_NAMES[n]}" for n in names[1:])]
        parts.append(
            "<h3>Results</h3>"
            + _table(
                ["name", "model", "data", "seeds", *heads, "parameters", "sentences / s"],
                rows,
                set(range(4, 6 + len(names))),
            )
        )
    elif not s.data["has_results"]:
        parts.append(_notrun("No results.json yet: the runs below have not been summarised."))
    if runs:
        key = f"dev_{metric}"
        rows = [
            [
                e(str(r.get("run", ""))),
                e(str(r.get("model", ""))),
                e(str(r.get("data", ""))),
                _num(r.get("seed")),
                _num(sum(key in h for h in r.get("history") or [])),
                *(f"{r.get('scores', r.get('test', {})).get(n, float('nan')):.4f}" for n in names),
            ]
            for r in runs
        ]
        parts.append(
            "<h3>Runs</h3>"
            + _table(
                ["run", "model", "data", "seed", "epochs", *(f"{split} {METRIC_NAMES[n]}" for n in names)],
                rows,
                set(range(3, 5 + len(names))),
            )
        )
        if any(r.get("history") for r in runs):
            curves = plots.learning_curves(runs, metric, METRIC_NAMES[metric])
            parts.append(f'<div class="figs">{_img(curves, "student learning curves")}</div>')
    return "\n".join(parts)


def render(data: ReportData) -> str:
    bodies = {
        "row-flow": _row_flow(data),
        "samples": _samples(data),
        "augmentation": _augmentation(data),
        "teacher": _teacher(data),
        "cache": _cache(data),
        "student": _student(data),
    }
    nav = "".join(f'<a href="#{sid}">{e(title)}</a>' for sid, title in SECTIONS)
    sections = "\n".join(_section(sid, title, bodies[sid]) for sid, title in SECTIONS)
    return PAGE.substitute(
        title=e(data.title),
        output_dir=e(data.output_dir),
        css=CSS,
        nav=nav,
        sections=sections,
        generated=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    )
