"""Progress for the driver and one-screen stage summaries."""

from __future__ import annotations

import sys
import time


class Progress:
    """Progress of one step on stderr: a live bar with rate and ETA (tqdm) when the stream is a
    terminal, else a plain ``label: N rows (R rows/s)`` line at most every ``every`` seconds and at
    the end (never the same line twice)."""

    def __init__(self, label: str, every: float = 5.0, stream=None, unit: str = "rows", total: int | None = None):
        self.label, self.every, self.stream, self.unit = label, every, stream or sys.stderr, unit
        self.start = self.last = time.perf_counter()
        self.count, self._printed = 0, -1
        self._bar = None
        if _is_terminal(self.stream):
            from tqdm import tqdm

            self._bar = tqdm(
                total=total or None,
                desc=f"  {label}",
                unit=f" {unit}",
                unit_scale=True,
                file=self.stream,
                dynamic_ncols=True,
                mininterval=0.5,
                leave=True,
            )

    def add(self, n: int) -> None:
        self.count += n
        if self._bar is not None:
            self._bar.update(n)
            return
        now = time.perf_counter()
        if now - self.last >= self.every:
            self.last = now
            self._print(now)

    def done(self) -> float:
        now = time.perf_counter()
        if self._bar is not None:
            self._bar.close()
        elif self.count != self._printed:
            self._print(now)
        return now - self.start

    def _print(self, now: float) -> None:
        rate = self.count / max(now - self.start, 1e-9)
        print(f"  {self.label}: {self.count:,} {self.unit} ({rate:,.1f} {self.unit}/s)", file=self.stream, flush=True)
        self._printed = self.count


def _is_terminal(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


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
