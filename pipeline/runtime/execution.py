"""How a stage's tasks run: Ray tasks, a Ray actor pool, or in this process; and the values they
share (the object store on Ray, the value itself in this process).

Each task's result comes back as JSON; a task that fails with a :class:`PipelineError` (a full
disk, a bad input) or a remote store's refusal comes back as its message, which the driver raises
as it is. Whoever runs a task writes its marker (:func:`.markers.mark_task`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from .. import storage
from ..errors import PipelineError, TaskError
from ..progress import Progress
from . import markers
from .work import Stage, Task, Work

if TYPE_CHECKING:
    from ray.actor import ActorClass


@contextlib.contextmanager
def live(work: Work, executor: str, progress: Progress) -> Iterator[Work]:
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
