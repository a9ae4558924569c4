"""A local Ray started by the program ends with it, even when the driver is SIGKILLed."""

import subprocess
import sys
import time

import pytest

from pipeline.runtime import reaper

pytestmark = [pytest.mark.ray, pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")]

DRIVER = (
    "from pipeline.runtime.ray_env import init_ray; init_ray(num_cpus=1); print('ready', flush=True); "
    "import time; time.sleep(300)"
)


def _name(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()[:80]
    except OSError:
        return "?"


def _alive(tracked):
    return {p: _name(p) for p, start in tracked.items() if (reaper._stat(p) or (0, -1))[1] == start}


def test_local_ray_ends_with_a_killed_driver():
    driver = subprocess.Popen(
        [sys.executable, "-c", DRIVER], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    try:
        assert driver.stdout.readline().strip() == "ready"
        time.sleep(3)  # the raylet's agents are up
        table = reaper._table()
        ray_procs = reaper._descendants({driver.pid: table[driver.pid][1]}, table)
        del ray_procs[driver.pid]
        names = _alive(ray_procs)
        # the processes that used to outlive the driver by a minute are among those tracked
        assert any("RuntimeEnvAgent" in n for n in names.values()), names
        assert any("raylet" in n for n in names.values()), names
    finally:
        driver.kill()
        driver.wait()
    deadline = time.monotonic() + 15
    while _alive(ray_procs) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _alive(ray_procs), f"still running after the driver's SIGKILL: {_alive(ray_procs)}"


def test_watcher_leaves_when_ray_is_shut_down():
    """After ray.shutdown() the watcher has nothing left to track and exits by itself."""
    code = (
        "import ray, time; from pipeline.runtime import ray_env; ray_env.init_ray(num_cpus=1); "
        "w = ray_env._WATCHERS[-1]; ray.shutdown(); "
        "t = time.monotonic()\n"
        "while w.poll() is None and time.monotonic() - t < 20: time.sleep(0.2)\n"
        "print(w.poll())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip().splitlines()[-1] == "0", out.stderr[-2000:]
