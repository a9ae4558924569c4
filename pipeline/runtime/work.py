"""What the runner runs: tasks over fixed input ranges, the work that runs them, the stage.

A :class:`Task` is a range of a stage's input (its ``spec``, JSON-able, as its marker holds it);
:class:`Work` says how the remaining tasks run (a function, or a class built once per actor) and
with what resources; :class:`Stage` is what :func:`.runner.run_stage` needs of a stage.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field

from .resources import Resources


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
