"""A local Ray started by the program goes away with it, even when the driver is SIGKILLed.

Ray ties its head processes to the driver, but the dashboard and runtime-env agents (children of
the raylet) notice the raylet's death and then wait up to 60 s for a dead GCS before they exit.
A small watcher process, started beside the local Ray, holds the read end of a pipe whose write end
only the driver has: the pipe closes when the driver dies, however it dies, and the watcher then
ends every process of that Ray (the ones that appeared under the driver while Ray started, and
their descendants, tracked while the driver lives). Linux only (it reads ``/proc``).
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import sys
import time

RESCAN_S = 2.0  # how often the watcher refreshes the set of Ray's processes (workers come and go)
GRACE_S = 1.0  # between SIGTERM and SIGKILL


def _stat(pid: int) -> tuple[int, int] | None:
    """(parent pid, start time in clock ticks) of a live process, None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    # the command name may hold spaces and parentheses: the fields follow the last ')'
    fields = data[data.rindex(b")") + 2 :].split()
    if fields[0] in (b"Z", b"X"):  # a zombie has finished
        return None
    return int(fields[1]), int(fields[19])


def _table() -> dict[int, tuple[int, int]]:
    """Every live process: pid -> (parent pid, start time)."""
    table = {}
    for name in os.listdir("/proc"):
        if name.isdigit() and (stat := _stat(int(name))) is not None:
            table[int(name)] = stat
    return table


def children(pid: int) -> set[int]:
    return {p for p, (parent, _) in _table().items() if parent == pid}


def _descendants(roots: dict[int, int], table: dict[int, tuple[int, int]]) -> dict[int, int]:
    """``roots`` (pid -> start time, those still alive) and their descendants in ``table``."""
    found = {p: start for p, start in roots.items() if table.get(p, (0, -1))[1] == start}
    grew = True
    while grew:
        grew = False
        for p, (parent, start) in table.items():
            if parent in found and p not in found:
                found[p], grew = start, True
    return found


def _end(tracked: dict[int, int]) -> None:
    """SIGTERM every tracked process still alive (the same process: same start time), then SIGKILL."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        alive = [p for p, start in tracked.items() if (_stat(p) or (0, -1))[1] == start]
        for p in alive:
            with contextlib.suppress(OSError):
                os.kill(p, sig)
        if not alive:
            return
        deadline = time.monotonic() + GRACE_S
        while time.monotonic() < deadline and any((_stat(p) or (0, -1))[1] == tracked[p] for p in alive):
            time.sleep(0.05)


def watch(roots: set[int]) -> subprocess.Popen | None:
    """Start the watcher for the processes ``roots`` (children of this process that Ray started).

    The watcher runs in a session of its own (a Ctrl-C to the terminal reaches the driver, which
    shuts Ray down itself) and leaves when the driver dies or every tracked process is gone."""
    if not sys.platform.startswith("linux") or not roots:
        return None
    table = _table()
    spec = ",".join(f"{p}:{table[p][1]}" for p in sorted(roots) if p in table)
    # the child keeps the pipe's read end only; the write end stays with this process
    return subprocess.Popen(
        [sys.executable, "-m", "pipeline.runtime.reaper", spec],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def _main(spec: str) -> int:
    roots = {int(p): int(s) for p, s in (item.split(":") for item in spec.split(",") if item)}
    tracked = _descendants(roots, _table())
    while tracked:
        ready, _, _ = select.select([sys.stdin], [], [], RESCAN_S)
        if ready and not os.read(sys.stdin.fileno(), 1):  # end of file: the driver is gone
            _end(tracked)
            return 0
        live = _table()
        # keep what is tracked and alive, add the new descendants (workers started since)
        tracked = _descendants({p: s for p, s in tracked.items() if live.get(p, (0, -1))[1] == s}, live)
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1] if len(sys.argv) > 1 else ""))
