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
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from pyarrow import fs as pafs

from .. import storage
from ..errors import PipelineError, TaskError
from ..progress import Progress, print_summary
from . import lock, markers
from .resources import Resources

if TYPE_CHECKING:
    from ray.actor import ActorClass

# Reused files up to this size are checked in this process while no stage has started Ray (a
# local Ray not yet needed): SHA-256 ran at about 0.9 GB/s here, a local Ray starts in about 6 s.
IN_PROCESS_CHECK_BYTES = 1 << 30
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
    def from_json(cls, text: str) -> Task:
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
    resources: Resources = field(default_factory=Resources)
    tasks_per_call: int = 1
    # the worker takes a ``progress`` keyword, called with a row count as it goes (a task that runs
    # for minutes moves the progress bar before it ends); its results' rows_in are then not counted
    live_progress: bool = False


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
    # Overrides for a stage with a format of its own: the teacher cache commits a manifest instead
    # of the marker; student runs are reused by their metrics.json and write no task markers.
    reuse: Callable[[Task], dict | None] | None = None
    commit: Callable[[dict, list[dict]], None] | None = None
    task_markers: bool = True
    unit: str = "rows"  # what a result's rows_in counts, in the progress lines


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
        with _live(work, executor, progress) as work:
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


# ---------------------------------------------------------------------------------------------
# Execution: Ray tasks or a Ray actor pool, or in this process


@contextlib.contextmanager
def _live(work: Work, executor: str, progress: Progress) -> Iterator[Work]:
    """``work`` with its ``progress`` keyword when it reports as it goes: in this process the bar
    itself; on Ray a queue (an actor that claims no CPU) that a thread here empties into the bar."""
    if not work.live_progress:
        yield work
        return
    if executor == "local":
        yield dataclasses.replace(work, kwargs={**work.kwargs, "progress": progress.add})
        return
    import queue as queue_errors
    import threading
    import uuid

    from ray.util.queue import Queue

    # workers find the queue by name: an actor handle among an actor's constructor arguments puts
    # them in the object store, which Ray reports on the console for restartable actors
    name = f"progress-{uuid.uuid4().hex}"
    rows = Queue(actor_options={"num_cpus": 0, "name": name})
    stop = threading.Event()

    def drain() -> None:
        while True:
            try:
                progress.add(rows.get(timeout=0.5))
            except queue_errors.Empty:
                if stop.is_set():
                    return

    thread = threading.Thread(target=drain, name="progress", daemon=True)
    thread.start()
    try:
        yield dataclasses.replace(work, kwargs={**work.kwargs, "progress": _RowReport(name)})
    finally:
        stop.set()
        thread.join(timeout=5)
        rows.shutdown()


class _RowReport:
    """A worker's ``progress``: rows done, sent to the driver's queue (without waiting)."""

    def __init__(self, name: str):
        self.name = name
        self._queue: Any = None  # the queue's actor, looked up on the first report

    def __call__(self, n: int) -> None:
        import ray

        if self._queue is None:
            self._queue = ray.get_actor(self.name)
        self._queue.put_nowait.remote(n)


def execute(stage: Stage, tasks: list[Task], work: Work, executor: str) -> Iterator[dict]:
    """The results of ``tasks`` as they finish; each task's marker is written by whoever ran it."""
    marks = (stage.out_dir, stage.key) if stage.task_markers else None
    if executor == "local":
        results = _run_local(tasks, work, marks)
    elif work.resources.actors:
        results = _run_actors(tasks, work, marks)
    else:
        results = _run_tasks(tasks, work, marks)
    for text in results:
        result = json.loads(text)
        if "error" in result:  # the first failed task stops the stage; finished tasks keep their files
            raise TaskError(result["error"])
        yield result


def _run_local(tasks: list[Task], work: Work, marks) -> Iterator[str]:
    if work.resources.actors:
        impl = work.fn(**work.kwargs)
        for start in range(0, len(tasks), work.tasks_per_call):
            chunk = tasks[start : start + work.tasks_per_call]
            yield from _outcomes(chunk, iter(impl(chunk)), marks, catch=False)
        return
    for task in tasks:
        yield from _outcomes([task], iter([work.fn(task, **work.kwargs)]), marks, catch=False)


def _run_tasks(tasks: list[Task], work: Work, marks) -> Iterator[str]:
    """Plain Ray tasks, spread over the nodes, ``workers`` (else twice the cluster's slots) in flight.

    The driver sleeps in ``ray.wait`` between results: its CPU time grows with the number of tasks,
    not with their rows or their duration (Ray Data's executor loop polls all the while). A task
    lost with its node is retried by Ray; its file is renamed into place only when complete."""
    import ray

    from .ray_env import cluster_cpus, ensure

    ensure()
    res = work.resources
    remote = ray.remote(_task_call).options(name=work.fn.__name__, scheduling_strategy="SPREAD", **res.ray_options())
    shared = ray.put((work.fn, work.kwargs, marks))  # sent once, not with every task
    limit = res.in_flight(cluster_cpus())
    pending: list = []
    try:
        for task in tasks:
            if len(pending) >= limit:
                done, pending = ray.wait(pending, num_returns=1)
                yield ray.get(done[0])
            pending.append(remote.remote(task.as_json(), shared))
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            yield ray.get(done[0])
    finally:
        for ref in pending:  # an error stopped the stage: nothing more is started or written
            ray.cancel(ref)


def _run_actors(tasks: list[Task], work: Work, marks) -> Iterator[str]:
    """An actor pool (Ray's ``ActorPool``): each actor builds the stage's worker once; calls of
    ``tasks_per_call`` tasks go to whichever actor is free. An actor lost with its node is restarted
    elsewhere and its call retried; the actors end with the stage."""
    import ray
    from ray.util import ActorPool

    from .ray_env import ensure

    ensure()
    res = work.resources
    # the dashboard names an actor after its class: the stage's worker class, not this adapter
    cls = type(work.fn.__name__, (_ActorCall,), {"__module__": __name__})
    actor: ActorClass[Any] = ray.remote(cls).options(
        max_restarts=-1, max_task_retries=-1, scheduling_strategy="SPREAD", **res.ray_options()
    )
    calls = [
        [t.as_json() for t in tasks[i : i + work.tasks_per_call]] for i in range(0, len(tasks), work.tasks_per_call)
    ]
    actors = [actor.remote(work.fn, work.kwargs, marks) for _ in range(res.pool_size(len(calls)))]
    try:
        for texts in ActorPool(actors).map_unordered(lambda a, c: a.run.remote(c), calls):
            yield from texts
    finally:
        for a in actors:
            # ray types ActorClass.remote() as ActorHandle | type (a static-typing proxy); it is an ActorHandle
            ray.kill(a)  # type: ignore[arg-type]


def _finish(task: Task, result: dict, marks: tuple[str, str] | None) -> dict:
    result = {**result, "index": task.index}
    result.setdefault("rows_in", task.rows)
    if marks is not None:
        markers.mark_task(marks[0], task.name, marks[1], task.spec, result)
    return result


def _task_call(task_json: str, shared: tuple) -> str:
    """A Ray task: one task of a stage."""
    fn, kwargs, marks = shared
    task = Task.from_json(task_json)
    (text,) = _outcomes([task], (fn(t, **kwargs) for t in [task]), marks)
    return text


def _outcomes(tasks: list[Task], results: Iterator[dict], marks, catch: bool = True) -> Iterator[str]:
    """Each task's result as JSON. On a worker, a task that fails with a PipelineError (a full disk,
    a bad input) gives its message instead, which the driver raises as it is: through Ray it would
    arrive wrapped in Ray's own exceptions, and retrying would not help."""
    for task in tasks:
        try:
            result = next(results)
        except PipelineError as exc:
            if not catch:
                raise
            yield json.dumps({"index": task.index, "error": str(exc)})
            return
        except OSError as exc:  # a remote store that refused (403, no bucket) or kept failing
            if not catch or not storage.is_remote_failure(exc):
                raise
            yield json.dumps({"index": task.index, "error": str(storage.failure(exc, f"task {task.name}"))})
            return
        yield json.dumps(_finish(task, result, marks))


class _ActorCall:
    """A Ray actor: the stage's worker class built once."""

    def __init__(self, fn: Callable, kwargs: dict, marks):
        self.impl, self.marks = fn(**kwargs), marks

    def run(self, texts: list[str]) -> list[str]:
        tasks = [Task.from_json(t) for t in texts]
        return list(_outcomes(tasks, iter(self.impl(tasks)), self.marks))


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

    from .ray_env import ensure

    ensure()
    return RayRef((ray.put(value),))


def get(ref: Any) -> Any:
    if isinstance(ref, LocalRef):
        return ref.value
    import ray

    return ray.get(list(ref)) if isinstance(ref, RayRefs) else ray.get(ref[0])
