"""The samples and augmentation sections: originals next to their variants with the edits
highlighted, and each method's edit rates and figures."""

from __future__ import annotations

from .. import plots, stats
from ..collect import ReportData
from ..corpus import VariantCounts
from ..markup import _img, _notrun, _num, _pct, _table, e


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
            per: VariantCounts = f["variants_per_example"]
            sampled = "" if f["stats_examples"] >= f["examples"] else f" ({f['stats_examples']:,} sampled originals)"
            rows.append(
                [
                    e(m),
                    _num(r.variants) + sampled,
                    _pct(r.replaced_rate),
                    _pct(r.masked_rate),
                    _pct(r.dropped_rate),
                    f"{r.mean_length_change:+.2f}",
                    f"{per.mean:.2f}" if per.mean is not None else "–",
                    _num(per.min),
                    _num(per.max),
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
                    {m: f["variants_per_example"].counts for m, f in methods.items()},
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
