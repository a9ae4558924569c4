"""The one stage runner: fixed plan, tasks that write their own files, per-task resume, errors."""

import errno
import json
import os

import pyarrow as pa
import pyarrow.parquet
import pytest

from pipeline import storage
from pipeline.errors import PipelineError, TaskError
from pipeline.runtime import markers
from pipeline.runtime.resources import Resources
from pipeline.runtime.runner import Stage, Work, make_task, run_stage


def _write_task(task, out_dir, calls, fail_at=None):
    """Writes one small Parquet file per task; fails with a disk-full error at ``fail_at``."""
    calls.append(task.index)
    if task.index == fail_at:
        raise storage.OutputError(f"{out_dir}/{task.name}.parquet", OSError(errno.ENOSPC, "full"))
    table = pa.table({"x": list(range(task.spec["lo"], task.spec["hi"]))})
    return {"files": [storage.write_parquet(f"{out_dir}/{task.name}.parquet", table)], "rows_in": table.num_rows}


def _stage(out_dir, calls, fail_at=None, n=5, key="k1"):
    tasks = [make_task(i, {"lo": 10 * i, "hi": 10 * i + 10}, 10) for i in range(n)]
    return Stage(
        "test",
        str(out_dir),
        key,
        lambda: tasks,
        lambda todo: Work(
            _write_task, {"out_dir": str(out_dir), "calls": calls, "fail_at": fail_at}, Resources(cpus=1)
        ),
        summarize=lambda results: {"rows": sum(r["rows_in"] for r in results)},
    )


def test_resume_per_task_and_skip_when_finished(tmp_path, capsys):
    out = tmp_path / "out"
    calls: list[int] = []
    with pytest.raises(storage.OutputError):
        run_stage(_stage(out, calls, fail_at=3), "local")
    assert calls == [0, 1, 2, 3]
    assert sorted(os.listdir(out / markers.TASKS)) == [f"part-0000{i}.json" for i in range(3)]
    assert not (out / markers.MARKER).exists()
    kept = {n: os.stat(out / n).st_mtime_ns for n in os.listdir(out) if n.endswith(".parquet")}

    calls.clear()
    (out / ".part-00003.parquet.abcd1234.tmp").write_bytes(b"half")  # a write cut short
    (out / "part-00009.parquet").write_bytes(b"outside the plan")
    summary = run_stage(_stage(out, calls), "local")
    assert calls == [3, 4]  # only the tasks left
    assert (summary["tasks_reused"], summary["tasks_computed"], summary["rows"]) == (3, 2, 50)
    assert {n: os.stat(out / n).st_mtime_ns for n in kept} == kept
    assert sorted(n for n in os.listdir(out) if not n.startswith("_")) == [f"part-0000{i}.parquet" for i in range(5)]
    marker = json.loads((out / markers.MARKER).read_text())
    assert marker["key"] == "k1" and all(f.get("sha256") for f in marker["files"][:5])

    calls.clear()
    again = run_stage(_stage(out, calls), "local")
    assert calls == [] and again["reused"]
    assert "up to date" in capsys.readouterr().out

    calls.clear()  # another key (a changed setting or input): every task again
    run_stage(_stage(out, calls, key="k2"), "local")
    assert calls == [0, 1, 2, 3, 4]


def test_a_task_marker_of_another_key_or_a_changed_file_is_not_reused(tmp_path):
    out = tmp_path / "out"
    calls: list[int] = []
    run_stage(_stage(out, calls, n=3), "local")
    (out / markers.MARKER).unlink()
    (out / "part-00001.parquet").write_bytes(b"shorter")
    calls.clear()
    run_stage(_stage(out, calls, n=3), "local")
    assert calls == [1]


@pytest.mark.ray
def test_a_worker_error_reaches_the_driver_as_the_error_it_is(tmp_path, ray_local):
    """On Ray, a PipelineError in a task (a full disk on a worker) is raised in the driver with the
    worker's message, not wrapped in Ray's exceptions; the tasks finished before keep their files."""

    def task(task, out_dir, calls, fail_at=None):  # nested: Ray's workers get it by value
        from pipeline import storage

        if task.index == fail_at:
            raise storage.OutputError(f"{out_dir}/{task.name}.parquet", OSError(errno.ENOSPC, "full"))
        table = pa.table({"x": list(range(task.spec["lo"], task.spec["hi"]))})
        return {"files": [storage.write_parquet(f"{out_dir}/{task.name}.parquet", table)], "rows_in": 10}

    out = tmp_path / "out"
    stage = _stage(out, [], fail_at=2)
    stage.work = lambda todo: Work(task, {"out_dir": str(out), "calls": [], "fail_at": 2}, Resources(cpus=1))
    with pytest.raises(TaskError, match=r"cannot write .*/part-00002.parquet: No space left on device") as info:
        run_stage(stage, "ray")
    assert isinstance(info.value, PipelineError)
    stage.work = lambda todo: Work(task, {"out_dir": str(out), "calls": []}, Resources(cpus=1))
    summary = run_stage(stage, "ray")
    assert summary["rows"] == 50 and summary["tasks_computed"] >= 1


def test_resources_become_ray_arguments():
    assert Resources(cpus=2, gpus=0.5).ray_options() == {"num_cpus": 2, "num_gpus": 0.5}
    assert Resources(cpus=1, workers=3).in_flight(cluster_cpus=8) == 3  # workers caps the tasks at once
    assert Resources(cpus=1).in_flight(cluster_cpus=8) == 16  # else the CPUs' worth twice over
    assert Resources(cpus=4).in_flight(cluster_cpus=8) == 4
    assert Resources(cpus=0.5, gpus=0.25, workers=4, actors=True).pool_size(calls=10) == 4
    assert Resources(actors=True).pool_size(calls=10) == 1 and Resources(workers=8).pool_size(calls=3) == 3


@pytest.mark.parametrize("executor", ["local", "ray"])
def test_a_damaged_file_of_the_same_size_is_redone_not_reused(tmp_path, request, executor):
    """A finished output whose file was altered in place (same size): the checksum its task recorded
    no longer matches, so the stage resumes and redoes exactly that task."""
    if executor == "ray":
        request.getfixturevalue("ray_local")
    out = tmp_path / "out"

    def task(task, out_dir, calls, fail_at=None):  # nested: Ray's workers get it by value
        from pipeline import storage

        table = pa.table({"x": list(range(task.spec["lo"], task.spec["hi"]))})
        return {"files": [storage.write_parquet(f"{out_dir}/{task.name}.parquet", table)], "rows_in": 10}

    stage = _stage(out, [])
    stage.work = lambda todo: Work(task, {"out_dir": str(out), "calls": []}, Resources(cpus=1))
    run_stage(stage, executor)
    victim = out / "part-00003.parquet"
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF
    victim.write_bytes(bytes(data))
    again = run_stage(stage, executor)
    assert not again.get("reused") and (again["tasks_computed"], again["tasks_reused"]) == (1, 4)
    assert pa.parquet.read_table(victim).column("x").to_pylist() == list(range(30, 40))
    assert run_stage(stage, executor)["reused"]


@pytest.mark.parametrize("executor", ["local", "ray"])
def test_rows_reported_while_tasks_run_reach_the_progress_once(tmp_path, capsys, executor, request):
    if executor == "ray":
        request.getfixturevalue("ray_local")

    def reporting_task(task, out_dir, progress):  # nested: Ray's workers get it by value
        """Reports its rows in two halves while it runs, as the teacher's row groups do."""
        table = pa.table({"x": list(range(task.spec["lo"], task.spec["hi"]))})
        progress(5)
        progress(table.num_rows - 5)
        return {"files": [storage.write_parquet(f"{out_dir}/{task.name}.parquet", table)], "rows_in": table.num_rows}

    tasks = [make_task(i, {"lo": 10 * i, "hi": 10 * i + 10}, 10) for i in range(4)]
    stage = Stage(
        "live",
        str(tmp_path / "out"),
        "k",
        lambda: tasks,
        lambda todo: Work(reporting_task, {"out_dir": str(tmp_path / "out")}, Resources(cpus=1), live_progress=True),
    )
    run_stage(stage, executor)
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("  live:")]
    assert lines[-1].startswith("  live: 40 rows (")  # every reported row once, rows_in not added again
