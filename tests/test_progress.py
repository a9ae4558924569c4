"""Progress: a live bar with rate and ETA on a terminal, plain lines elsewhere, never the same line twice."""

import io

from pipeline.progress import Progress


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_a_terminal_gets_a_bar_with_rate_and_eta():
    stream = Terminal()
    p = Progress("augment train tang", stream=stream, total=300)
    for _ in range(3):
        p.add(100)
    p.done()
    text = stream.getvalue()
    assert "augment train tang" in text and "100%" in text and "300/300" in text
    assert "rows/s" in text and "<" in text  # rate, and elapsed<remaining


def test_plain_lines_elsewhere_once_each():
    stream = io.StringIO()
    p = Progress("ingest train", stream=stream, every=0.0)
    p.add(5)  # printed at once (every=0)
    p.done()  # nothing new: no second line
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1 and lines[0].startswith("  ingest train: 5 rows (")
    p.add(2)
    p.done()
    assert stream.getvalue().splitlines()[-1].startswith("  ingest train: 7 rows (")
