"""Progress lines for the driver and one-screen stage summaries."""

from __future__ import annotations

import sys
import time


class Progress:
    """Prints ``label: N rows (R rows/s)`` to stderr at most every ``every`` seconds."""

    def __init__(self, label: str, every: float = 5.0, stream=None, unit: str = "rows"):
        self.label, self.every, self.stream, self.unit = label, every, stream or sys.stderr, unit
        self.start = self.last = time.perf_counter()
        self.count = 0

    def add(self, n: int) -> None:
        self.count += n
        now = time.perf_counter()
        if now - self.last >= self.every:
            self.last = now
            self._print(now)

    def done(self) -> float:
        now = time.perf_counter()
        self._print(now)
        return now - self.start

    def _print(self, now: float) -> None:
        rate = self.count / max(now - self.start, 1e-9)
        print(f"  {self.label}: {self.count:,} {self.unit} ({rate:,.1f} {self.unit}/s)", file=self.stream, flush=True)


def print_summary(title: str, rows: list[tuple[str, object]], stream=None) -> None:
    """A titled key / value summary."""
    stream = stream or sys.stdout
    width = max((len(k) for k, _ in rows), default=0)
    print(f"\n== {title} ==", file=stream)
    for key, value in rows:
        if isinstance(value, float):
            value = f"{value:,.2f}"
        elif isinstance(value, int):
            value = f"{value:,}"
        print(f"  {key:<{width}}  {value}", file=stream)
    stream.flush()
