"""The page frame of the report: its stylesheet and the HTML template that holds the sections."""

from __future__ import annotations

from string import Template

# Chinese, Japanese and Korean text (variants, highlighted diffs, labels): a CJK family after the Latin
# ones, so Latin text keeps its font and Han characters get real glyphs, Simplified Chinese forms first
# (Debian's fonts-noto-cjk, fonts-wqy-zenhei; macOS's PingFang; Windows's Microsoft YaHei)
CJK_FAMILIES = ("Noto Sans CJK SC", "Source Han Sans SC", "WenQuanYi Zen Hei", "PingFang SC", "Microsoft YaHei")
CJK_MONO_FAMILIES = ("Noto Sans Mono CJK SC", "Noto Sans CJK SC", "WenQuanYi Zen Hei Mono", "PingFang SC")

CSS_TEMPLATE = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,$cjk,sans-serif;color:#1f2328;
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
.w-masked{background:#cfe3ff;border-radius:2px;font-family:ui-monospace,Menlo,Consolas,$cjk_mono,monospace;font-size:12px}
.w-inserted{background:#d8f3dc;border-radius:2px}
.w-dropped{color:#b03a2e;text-decoration:line-through;opacity:.65}
.legend span{margin-right:14px;padding:1px 5px}
.bar{display:inline-block;height:10px;background:#3b6fb6;border-radius:2px;vertical-align:middle}
code{font-family:ui-monospace,Menlo,Consolas,$cjk_mono,monospace;font-size:12px;background:#f3f5f8;padding:1px 4px;border-radius:3px}
span.raw{display:inline-block;font-family:ui-monospace,Menlo,Consolas,$cjk_mono,monospace;font-size:12px;max-width:420px;overflow-wrap:anywhere}
"""
CSS = Template(CSS_TEMPLATE).substitute(
    cjk=",".join(f'"{f}"' for f in CJK_FAMILIES), cjk_mono=",".join(f'"{f}"' for f in CJK_MONO_FAMILIES)
)

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
