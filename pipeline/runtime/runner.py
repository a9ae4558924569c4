"""The one stage runner: plan → skip or resume → tasks on Ray → summary and marker.

A stage is planned as tasks over fixed input ranges (the plan depends only on the inputs and the
settings, never on the number of workers). A task runs on a worker, reads its range, writes its
own files (temporary name, then rename), leaves a task marker and returns small metadata. The
driver only plans, schedules (Ray tasks or a Ray actor pool, or in this process with
``executor="local"``), gathers the metadata, and writes the summary and the stage marker: no
output row passes through it.

Why not Ray Data's own ``write_parquet`` with ``ray.data.checkpoint``: its files follow Ray's
blocks (their number and content change with the workers), and its row-level resume loads every
finished id into memory before the dataset runs; a fixed plan of ranges gives byte-identical
files for any number of workers and resume per task at the cost of one small marker per task.

The tasks and the stage's description are in :mod:`.work`; how the tasks run (Ray tasks, an actor
pool, this process) and the values they share, in :mod:`.execution`.
"""

from __future__ import annotations

import re
import time
from typing import Any, cast

from pyarrow import fs as pafs

from .. import storage
from ..progress import Progress, print_summary
from . import lock, markers
from .execution import LocalRef, RayRef, RayRefs, execute, get, live, put
from .resources import Resources
from .work import Stage, Task, Work, make_task, task_name

__all__ = [
    "LocalRef",
    "RayRef",
    "RayRefs",
    "Stage",
    "Task",
    "Work",
    "get",
    "make_task",
    "put",
    "run_stage",
    "task_name",
]

# Reused files up to this size are checked in this process while no stage has started Ray (a
# local Ray not yet needed): SHA-256 ran at about 0.9 GB/s here, a local Ray starts in about 6 s.
IN_PROCESS_CHECK_BYTES = 1 << 30
_TASK_FILE = re.compile(r"^(?:part|shard)-(\d{5,})[.-]")


def run_stage(stage: Stage, executor: str = "ray") -> dict:
    """Run ``stage``: skip it when finished, else resume it per task; print its summary."""
    started = time.perf_counter()
    marker = markers.finished(stage.out_dir, stage.key) if stage.commit is None else None
    if marker is not None and _intact({0: marker}, executor) == {0}:
        # the summary this stage wrote when it finished (a JSON object)
        summary = {
            **cast("dict[str, Any]", storage.read_json(storage.join(stage.out_dir, markers.SUMMARY))),
            "reused": True,
        }
        print_summary(
            stage.title,
            [
                *stage.lines(summary),
                ("up to date", "finished by an earlier run with the same inputs and settings; not redone"),
            ],
        )
        return summary
    markers.start(stage.out_dir)
    tasks = stage.plan()
    for directory in (stage.out_dir, *stage.other_dirs) + (
        (storage.join(stage.out_dir, markers.TASKS),) if stage.task_markers else ()
    ):
        storage.makedirs(directory)
    results: dict[int, dict] = {}
    for task in tasks:
        done = (
            stage.reuse(task) if stage.reuse else markers.finished_task(stage.out_dir, task.name, stage.key, task.spec)
        )
        if done is not None:
            results[task.index] = {**done, "reused": True}
    intact = _intact(results, executor)
    results = {i: r for i, r in results.items() if i in intact}  # a damaged file: its task runs again
    todo = [t for t in tasks if t.index not in results]
    _remove_stale(stage, {t.index for t in tasks}, {t.index for t in todo})
    known = all(t.rows > 0 for t in tasks)
    progress = Progress(stage.title, unit=stage.unit, total=sum(t.rows for t in tasks) if known else None)
    progress.add(sum(r.get("rows_in", 0) for r in results.values()))
    driver_cpu = 0.0  # this process's CPU time (every thread, Ray's too) while the tasks ran
    if todo:
        work = stage.work(todo)
        cpu = time.process_time()
        with live(work, executor, progress) as work:
            for result in execute(stage, todo, work, executor):
                results[result["index"]] = result
                if not work.live_progress:
                    progress.add(result.get("rows_in", 0))
        driver_cpu = time.process_time() - cpu
    progress.done()
    ordered = [results[t.index] for t in tasks]
    summary = stage.summarize(ordered)
    summary.update(
        {
            "tasks": len(tasks),
            "tasks_computed": len(todo),
            "tasks_reused": len(tasks) - len(todo),
            "seconds": round(time.perf_counter() - started, 3),
            "driver_cpu_s": round(driver_cpu, 3),
        }
    )
    lock.ensure_held()  # a run that lost its output folder's lease commits nothing
    if stage.commit is not None:
        stage.commit(summary, ordered)
    else:
        summary_path = storage.join(stage.out_dir, markers.SUMMARY)
        storage.write_json(summary_path, summary)
        files = [f for r in ordered for f in r.get("files", [])]
        markers.mark_finished(stage.out_dir, stage.key, [*files, {"path": summary_path}])
    print_summary(
        stage.title,
        [
            *stage.lines(summary),
            ("tasks computed / reused", f"{len(todo)} / {len(tasks) - len(todo)}"),
            ("seconds", summary["seconds"]),
        ],
    )
    return summary


def _intact(results: dict[int, dict], executor: str) -> set[int]:
    """The results whose files all still have the SHA-256 their task recorded (a file without a
    recorded checksum, such as a summary, is checked by size only). The files are read by Ray tasks
    (a few, each over many files), not by the driver, except with ``executor="local"`` or when Ray is
    not started yet and they hold at most ``IN_PROCESS_CHECK_BYTES`` (no Ray start for a few MB)."""
    items = [(i, [(f["path"], f["sha256"]) for f in r.get("files", []) if f.get("sha256")]) for i, r in results.items()]
    items = [(i, files) for i, files in items if files]
    unchecked = set(results) - {i for i, _ in items}
    if not items:
        return unchecked
    from . import ray_env

    small = sum(f.get("bytes", 0) for r in results.values() for f in r.get("files", [])) <= IN_PROCESS_CHECK_BYTES
    if executor == "local" or (small and not ray_env.started()):
        return unchecked | set(_matching(items))
    import ray

    from .ray_env import cluster_cpus

    parts = max(1, min(len(items), 2 * cluster_cpus()))
    check = ray.remote(_matching).options(**Resources().ray_options())
    return unchecked | {i for found in ray.get([check.remote(items[k::parts]) for k in range(parts)]) for i in found}


def _matching(items: list[tuple[int, list[tuple[str, str]]]]) -> list[int]:
    """The items every one of whose (path, sha256) files has that SHA-256."""
    return [i for i, files in items if all(storage.file_sha256(path) == sha for path, sha in files)]


def _remove_stale(stage: Stage, planned: set[int], todo: set[int]) -> None:
    """Temporary files of interrupted writes; task files and markers outside the plan, or of tasks
    about to be recomputed (a recomputed task may write fewer files than before)."""
    for directory in (stage.out_dir, *stage.other_dirs, storage.join(stage.out_dir, markers.TASKS)):
        filesystem, p = storage.resolve(directory)
        for info in filesystem.get_file_info(pafs.FileSelector(p, allow_not_found=True)):
            if info.type != pafs.FileType.File:
                continue
            name = info.base_name
            match = _TASK_FILE.match(name)
            stale = name.startswith(".") and name.endswith(".tmp")
            if match and (int(match.group(1)) not in planned or (int(match.group(1)) in todo and stage.task_markers)):
                stale = True
            if stale:
                filesystem.delete_file(info.path)
