"""HTML helpers shared by the report's sections: escaping, numbers, byte sizes, tables, notes
and inline images."""

from __future__ import annotations

import html
from collections.abc import Set as AbstractSet

e = html.escape


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


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"
