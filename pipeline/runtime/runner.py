"""The one stage runner: plan → skip or resume → tasks on Ray → summary and marker.

A stage is planned as tasks over fixed input ranges (the plan depends only on the inputs and the
settings, never on the number of workers). A task runs on a worker, reads its range, writes its
own files (temporary name, then rename), leaves a task marker and returns small metadata. The
driver only plans, schedules (Ray Data over the task descriptions, or in this process with
``executor="local"``), gathers the metadata, and writes the summary and the stage marker: no
output row passes through it.

Why not Ray Data's own ``write_parquet`` with ``ray.data.checkpoint``: its files follow Ray's
blocks (their number and content change with the workers), and its row-level resume loads every
finished id into memory before the dataset runs; a fixed plan of ranges gives byte-identical
files for any number of workers and resume per task at the cost of one small marker per task.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator

from pyarrow import fs as pafs

from .. import storage
from ..errors import PipelineError, TaskError
from ..progress import Progress, print_summary
from . import markers
from .resources import Resources

_TASK_FILE = re.compile(r"^(?:part|shard)-(\d{5,})[.-]")


def task_name(index: int) -> str:
    return f"part-{index:05d}"


@dataclass(frozen=True)
class Task:
    """One unit of work: ``spec`` (JSON-able) says what it reads; ``rows``: its input rows, if known."""

    index: int
    spec: dict
    rows: int = 0

    @property
    def name(self) -> str:
        return task_name(self.index)

    def as_json(self) -> str:
        return json.dumps({"index": self.index, "spec": self.spec, "rows": self.rows})

    @classmethod
    def from_json(cls, text: str) -> "Task":
        d = json.loads(text)
        return cls(d["index"], d["spec"], d["rows"])


def make_task(index: int, spec: dict, rows: int = 0) -> Task:
    """A task whose spec is in its JSON form (tuples as lists), as a task marker holds it."""
    return Task(index, json.loads(json.dumps(spec)), rows)


@dataclass
class Work:
    """How the remaining tasks run.

    ``fn(task, **kwargs) -> result`` for stateless tasks; with ``resources.actors`` it is a class
    built once per actor with ``kwargs`` and called with a list of tasks (``tasks_per_call``), yielding
    their results in order. A result is a small JSON-able dict; ``files`` lists the files written
    (``storage.file_record``) and ``rows_in`` the input rows done.
    """

    fn: Callable
    kwargs: dict = field(default_factory=dict)
    resources: Resources = Resources()
    tasks_per_call: int = 1


@dataclass
class Stage:
    """What the runner needs of a stage; every callable but ``plan`` and ``work`` has a default."""

    title: str
    out_dir: str
    key: str
    plan: Callable[[], list[Task]]
    work: Callable[[list[Task]], Work]  # called only when some task is left to run
    summarize: Callable[[list[dict]], dict] = lambda results: {}
    lines: Callable[[dict], list[tuple[str, object]]] = lambda summary: []
    other_dirs: tuple[str, ...] = ()  # where tasks write besides out_dir (ingest's rejects)
    # Overrides for a stage with a format of its own (the teacher cache: shards that carry their key
    # in the footer, a manifest as the marker).
    reuse: Callable[[Task], dict | None] | None = None
    commit: Callable[[dict, list[dict]], None] | None = None
    task_markers: bool = True
    unit: str = "rows"  # what a result's rows_in counts, in the progress lines


def run_stage(stage: Stage, executor: str = "ray") -> dict:
    """Run ``stage``: skip it when finished, else resume it per task; print its summary."""
    started = time.perf_counter()
    if stage.commit is None and markers.finished(stage.out_dir, stage.key) is not None:
        summary = storage.read_json(storage.join(stage.out_dir, markers.SUMMARY))
        summary = {**summary, "reused": True}  # type: ignore[dict-item]
        print_summary(stage.title, [*stage.lines(summary), ("up to date", "finished by an earlier run with the same "
                                                                          "inputs and settings; not redone")])
        return summary
    markers.start(stage.out_dir)
    tasks = stage.plan()
    for directory in (stage.out_dir, *stage.other_dirs) + ((storage.join(stage.out_dir, markers.TASKS),)
                                                            if stage.task_markers else ()):
        storage.makedirs(directory)
    results: dict[int, dict] = {}
    for task in tasks:
        done = stage.reuse(task) if stage.reuse else markers.finished_task(stage.out_dir, task.name, stage.key, task.spec)
        if done is not None:
            results[task.index] = {**done, "reused": True}
    todo = [t for t in tasks if t.index not in results]
    _remove_stale(stage, {t.index for t in tasks}, {t.index for t in todo})
    progress = Progress(stage.title, unit=stage.unit)
    progress.add(sum(r.get("rows_in", 0) for r in results.values()))
    if todo:
        for result in execute(stage, todo, stage.work(todo), executor):
            results[result["index"]] = result
            progress.add(result.get("rows_in", 0))
    progress.done()
    ordered = [results[t.index] for t in tasks]
    summary = stage.summarize(ordered)
    summary.update({"tasks": len(tasks), "tasks_computed": len(todo), "tasks_reused": len(tasks) - len(todo),
                    "seconds": round(time.perf_counter() - started, 3)})
    if stage.commit is not None:
        stage.commit(summary, ordered)
    else:
        summary_path = storage.join(stage.out_dir, markers.SUMMARY)
        storage.write_json(summary_path, summary)
        files = [f for r in ordered for f in r.get("files", [])]
        markers.mark_finished(stage.out_dir, stage.key, [*files, {"path": summary_path}])
    print_summary(stage.title, [*stage.lines(summary),
                                ("tasks computed / reused", f"{len(todo)} / {len(tasks) - len(todo)}"),
                                ("seconds", summary["seconds"])])
    return summary


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
            if match and (int(match.group(1)) not in planned or
                          (int(match.group(1)) in todo and stage.task_markers)):
                stale = True
            if stale:
                filesystem.delete_file(info.path)


# ---------------------------------------------------------------------------------------------
# Execution: on Ray Data (tasks or an actor pool), or in this process

def execute(stage: Stage, tasks: list[Task], work: Work, executor: str) -> Iterator[dict]:
    """The results of ``tasks`` as they finish; each task's marker is written by whoever ran it."""
    marks = (stage.out_dir, stage.key) if stage.task_markers else None
    if executor == "local":
        yield from _run_local(tasks, work, marks)
        return
    import ray.data

    items = [{"task": t.as_json()} for t in tasks]
    ds = ray.data.from_items(items, override_num_blocks=len(items))
    options = work.resources.ray_data_options()
    # Ray Data names its operators (and the dashboard its tasks and actors) after the callable:
    # the stage's own function or worker class, not this adapter.
    if work.resources.actors:
        actor = type(work.fn.__name__, (_ActorCall,), {"__module__": __name__})
        ds = ds.map_batches(actor, fn_constructor_args=(work.fn, work.kwargs, marks),
                            batch_size=work.tasks_per_call, batch_format="pyarrow", **options)
    else:
        ds = ds.map_batches(_named_task_call(work.fn.__name__), fn_kwargs={"fn": work.fn, "kwargs": work.kwargs,
                                                                           "marks": marks},
                            batch_size=1, batch_format="pyarrow", **options)
    for row in ds.iter_rows():
        result = json.loads(row["result"])
        if "error" in result:  # the first failed task stops the stage; finished tasks keep their files
            raise TaskError(result["error"])
        yield result


def _finish(task: Task, result: dict, marks: tuple[str, str] | None) -> dict:
    result = {**result, "index": task.index}
    result.setdefault("rows_in", task.rows)
    if marks is not None:
        markers.mark_task(marks[0], task.name, marks[1], task.spec, result)
    return result


def _run_local(tasks: list[Task], work: Work, marks) -> Iterator[dict]:
    if work.resources.actors:
        impl = work.fn(**work.kwargs)
        for start in range(0, len(tasks), work.tasks_per_call):
            chunk = tasks[start : start + work.tasks_per_call]
            for task, result in zip(chunk, impl(chunk)):
                yield _finish(task, result, marks)
        return
    for task in tasks:
        yield _finish(task, work.fn(task, **work.kwargs), marks)


def _results_table(results: Iterable[str]):
    import pyarrow as pa

    return pa.table({"result": pa.array(list(results), pa.string())})


def _task_call(batch, fn: Callable, kwargs: dict, marks) -> Any:
    tasks = [Task.from_json(t) for t in batch.column("task").to_pylist()]
    return _results_table(_outcomes(tasks, (fn(t, **kwargs) for t in tasks), marks))


def _outcomes(tasks: list[Task], results: Iterator[dict], marks) -> Iterator[str]:
    """Each task's result as JSON. A task that fails with a PipelineError (a full disk, a bad input)
    gives its message instead, which the driver raises as it is: through Ray it would arrive wrapped
    in Ray's own exceptions, and retrying would not help."""
    for task in tasks:
        try:
            result = next(results)
        except PipelineError as exc:
            yield json.dumps({"index": task.index, "error": str(exc)})
            return
        yield json.dumps(_finish(task, result, marks))


def _named_task_call(name: str) -> Callable:
    def call(batch, fn: Callable, kwargs: dict, marks) -> Any:
        return _task_call(batch, fn, kwargs, marks)

    call.__name__ = call.__qualname__ = name
    return call


class _ActorCall:
    """Ray Data actor: the stage's worker class built once per actor."""

    def __init__(self, fn: Callable, kwargs: dict, marks):
        self.impl, self.marks = fn(**kwargs), marks

    def __call__(self, batch) -> Any:
        tasks = [Task.from_json(t) for t in batch.column("task").to_pylist()]
        return _results_table(_outcomes(tasks, iter(self.impl(tasks)), self.marks))


# ---------------------------------------------------------------------------------------------
# Sharing values with the tasks: the object store on Ray, the value itself in this process

class LocalRef:
    """A value shared with in-process tasks (``executor="local"``); hashed by identity, like a ref."""

    __slots__ = ("value",)

    def __init__(self, value: Any):
        self.value = value


class RayRef(tuple):
    """An ObjectRef in a hashable box: Ray passes it through untouched, and it keys per-worker caches."""


class RayRefs(tuple):
    """Several ObjectRefs in one such box: :func:`get` gives their values as a list."""


def put(value: Any, executor: str) -> Any:
    if executor == "local":
        return LocalRef(value)
    import ray

    return RayRef((ray.put(value),))


def get(ref: Any) -> Any:
    if isinstance(ref, LocalRef):
        return ref.value
    import ray

    return ray.get(list(ref)) if isinstance(ref, RayRefs) else ray.get(ref[0])
