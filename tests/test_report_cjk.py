"""The report in Chinese: variants, highlighted diffs and figure labels drawn with a real CJK font.

A tiny job of Chinese reviews (ingested; variants written as the augment stage writes them) goes
through ``pipeline report``. Headless Chromium then draws Han characters of the page's sample
table, in the font its CSS gives them, onto a canvas: with a CJK font every character has its own
glyph; without one every character is the same empty box ("tofu"). The same probe is run once with
only DejaVu visible to Chromium, to show it tells the two apart.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import warnings

import pytest
import yaml

from pipeline.cli import main
from pipeline.config import load_config
from pipeline.report import plots
from pipeline.report.page import CJK_FAMILIES, CSS
from tests.test_report_render import _augment, _chromium, _ingest, _run_chromium, _write_tsv

SENTENCES = [
    ("质量很好，物流也快，非常满意。", "positive"),
    ("房间干净，服务热情，下次还会再来。", "positive"),
    ("这本书内容空洞，完全不值这个价。", "negative"),
    ("屏幕有坏点，客服态度也很差。", "negative"),
]
# variants as the augmenters write them: a character replaced, one masked, one dropped
VARIANTS = {
    0: ["质量很棒，物流也快，非常满意。", "质量很好，[MASK]也快，非常满意。"],
    1: ["房间干净，服务周到，下次还会再来。", "房间干净，服务热情，还会再来。"],
    2: ["这本书内容空洞，完全不值这个钱。", "这本书[MASK]空洞，完全不值这个价。"],
    3: ["屏幕有坏点，客服态度也不好。", "屏幕有[MASK]，客服态度也很差。"],
}
HAN = re.compile(r"[\u4e00-\u9fff]")


def _has_cjk_font() -> bool:
    fc = shutil.which("fc-list")
    if not fc:
        return False
    out = subprocess.run([fc, ":lang=zh", "family"], capture_output=True, text=True, timeout=30).stdout
    return any(family in out for family in CJK_FAMILIES)


@pytest.fixture(scope="module")
def zh_report(tmp_path_factory):
    root = tmp_path_factory.mktemp("zh-report")
    labels = ["negative", "positive"]
    _write_tsv(root / "train.tsv", SENTENCES)
    job_file = root / "job.yaml"
    job_file.write_text(
        yaml.safe_dump(
            {
                "name": "zh-reviews-tiny",
                "task": "sst2",
                "seed": 7,
                "output_dir": str(root / "out"),
                "labels": labels,
                "inputs": {
                    "train": {"path": str(root / "train.tsv"), "columns": {"text_a": "sentence", "label": "label"}}
                },
                "augment": {"methods": ["tang"], "tang": {"n_iter": 2}},
            },
            allow_unicode=True,
        ),
        encoding="utf-8",
    )
    cfg = load_config(job_file)
    examples = _ingest(cfg, "train")
    texts = examples.column("text_a").to_pylist()
    results = [[(text, None)] + [(v, None) for v in VARIANTS[i]] for i, text in enumerate(texts)]
    _augment(cfg, examples, "tang", None, results, 2)
    assert main(["report", str(job_file)]) == 0
    path = root / "out" / "report.html"
    return path, path.read_text(encoding="utf-8")


def test_report_page_holds_the_chinese_variants_and_names_cjk_fonts(zh_report):
    _, html = zh_report
    shown = re.sub(r"<[^>]+>", "", html)  # the page's text, highlight spans left out
    assert "服务周到" in shown and "物流也快" in shown  # a variant and an original, as written
    # words are characters: one replaced pair of characters is highlighted, not the whole clause
    assert '服务<span class="w-replaced" title="replaced">周到</span>' in html
    body = re.search(r"body\{font:[^}]*\}", CSS).group()
    assert '"Noto Sans CJK SC"' in body and body.index("Arial") < body.index("Noto Sans CJK SC") < body.index(
        "sans-serif;"
    )
    masked = re.search(r"\.w-masked\{[^}]*\}", CSS).group()
    assert "CJK" in masked  # the monospace spans (masked words, raw rejects) have a CJK fallback too


def test_figure_labels_in_chinese_have_glyphs():
    if not _has_cjk_font():
        pytest.skip("no CJK font installed (`make chromium` installs fonts-noto-cjk)")
    import matplotlib.pyplot as plt

    assert any("CJK" in f or "WenQuanYi" in f for f in plots.font_families())

    @plots._styled
    def draw() -> str:
        fig, ax = plt.subplots(figsize=(3, 2))
        ax.bar(["负面", "正面"], [3, 4])
        ax.set_title("情感标签")
        return plots.to_data_uri(fig)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert draw().startswith("data:image/png;base64,")
    missing = [str(w.message) for w in caught if "missing from font" in str(w.message)]
    assert not missing, missing


# Draws each distinct Han character of the sample cells (up to 8, in the cell's own computed font) on a
# canvas and reports how many different glyph images came out and whether any was blank.
PROBE = """
<pre id="cjk-probe"></pre>
<script>
(() => {
  const cells = [...document.querySelectorAll("table.samples td")].filter(td => /[\\u4e00-\\u9fff]/.test(td.textContent));
  const cell = cells[0], style = getComputedStyle(cell);
  const chars = [...new Set(cell.textContent.match(/[\\u4e00-\\u9fff]/g))].slice(0, 8);
  const canvas = document.createElement("canvas"); canvas.width = canvas.height = 48;
  const ctx = canvas.getContext("2d");
  const images = chars.map(c => {
    ctx.clearRect(0, 0, 48, 48); ctx.font = "32px " + style.fontFamily; ctx.textBaseline = "top";
    ctx.fillText(c, 4, 4);
    const alpha = ctx.getImageData(0, 0, 48, 48).data.filter((_, i) => i % 4 == 3);
    return alpha.join(",");
  });
  document.getElementById("cjk-probe").textContent = JSON.stringify({
    chars: chars.join(""), distinct: new Set(images).size,
    blank: images.filter(s => !/[1-9]/.test(s)).length, family: style.fontFamily,
  });
})();
</script>
"""


def _probe(browser, page, tmp_path, env=None):
    tmp_path.mkdir(exist_ok=True)
    probe = tmp_path / "probe.html"
    probe.write_text(page.replace("</body>", PROBE + "</body>"), encoding="utf-8")
    cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--user-data-dir=" + str(tmp_path / "profile")]
    run = subprocess.run(
        [*cmd, "--dump-dom", probe.as_uri()], capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env
    )
    assert run.returncode == 0, run.stderr[-2000:]
    found = re.search(r'<pre id="cjk-probe">(.*?)</pre>', run.stdout)
    assert found and found.group(1), run.stdout[-2000:]
    return json.loads(found.group(1).replace("&quot;", '"'))


def test_chinese_variants_render_with_cjk_glyphs_in_chromium(zh_report, tmp_path):
    import os

    browser = _chromium()
    if not _has_cjk_font():
        pytest.skip("no CJK font installed (`make chromium` installs fonts-noto-cjk)")
    _, html = zh_report
    seen = _probe(browser, html, tmp_path / "fonts")
    assert len(seen["chars"]) == 8 and seen["blank"] == 0, seen
    assert seen["distinct"] == 8, seen  # each character its own glyph: none drawn as tofu

    # the control: a fontconfig that sees DejaVu only draws every Han character as the same box
    conf = tmp_path / "fonts.conf"
    conf.write_text(
        '<?xml version="1.0"?><!DOCTYPE fontconfig SYSTEM "fonts.dtd"><fontconfig>'
        f"<dir>/usr/share/fonts/truetype/dejavu</dir><cachedir>{tmp_path / 'fc-cache'}</cachedir></fontconfig>",
        encoding="utf-8",
    )
    tofu = _probe(browser, html, tmp_path / "nofonts", env={**os.environ, "FONTCONFIG_FILE": str(conf)})
    assert tofu["chars"] == seen["chars"] and tofu["distinct"] == 1, tofu

    shot = tmp_path / "zh-report.png"
    run = _run_chromium(browser, f"--screenshot={shot}", "--window-size=1280,1800", zh_report[0].as_uri(), cwd=tmp_path)
    assert run.returncode == 0 and shot.exists(), run.stderr[-2000:]
    if os.environ.get("ZH_REPORT_SCREENSHOT"):  # where to keep the screenshot, for a person to look at
        shutil.copy(shot, os.environ["ZH_REPORT_SCREENSHOT"])
