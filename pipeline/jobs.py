"""Jobs from Python: a validated job and ``run``, which runs its stages and returns what they did.

    from pipeline import Job, run
    summary = run(Job.from_yaml("jobs/demo.yaml"), stages=["ingest", "augment"], executor="local")
    summary.ingest["train"].kept

The ``pipeline`` command is a thin layer over ``run_config`` (``run`` for a job already loaded):
each stage prints the same summary and progress either way (plain progress lines when the output
is not a terminal, as in a notebook).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any, Literal

from . import layout
from .config import JobConfig, load_config, parse_config

STAGES = ("ingest", "augment", "teacher", "student", "report")
RAY_STAGES = ("ingest", "augment", "teacher")
IN_RAY_JOB = "PIPELINE_IN_RAY_JOB"  # set by pipeline.cluster.entrypoint: paths stay relative to the uploaded folder


class Job:
    """A job: the settings of a job file, validated (every key, and that the input files exist).

    ``Job(**settings)`` takes the job file's keys as Python values; ``Job.from_yaml(path)`` reads
    a job file, with keyword arguments laid over it (a mapping is merged key by key). A bad key or
    value raises ``ConfigError`` naming it, as ``pipeline validate`` does. ``job.config`` is the
    typed configuration (``pipeline.config.JobConfig``).

    Example::

        from pipeline import Job

        job = Job.from_yaml("jobs/demo.yaml", output_dir="/tmp/demo", inputs={"train": {"limit": 40}})
        job = Job(
            name="mine",
            task="sst2",
            seed=1,
            output_dir="out/mine",
            labels=["negative", "positive"],
            inputs={"train": {"path": "data/my/train.tsv", "columns": {"text_a": "sentence", "label": "label"}}},
        )
    """

    config: JobConfig

    def __init__(self, **settings: Any) -> None:
        self.config = parse_config(settings, "Job(...)")

    @classmethod
    def from_yaml(cls, path: str | os.PathLike[str], **overrides: Any) -> Job:
        """The job file at ``path`` (relative input paths are relative to the current folder, as
        for the ``pipeline`` command), with ``overrides`` merged over its keys."""
        return cls._of(load_config(path, overrides=overrides or None))

    @classmethod
    def _of(cls, config: JobConfig) -> Job:
        job = cls.__new__(cls)
        job.config = config
        return job

    @property
    def name(self) -> str:
        """The job's ``name``."""
        return self.config.name

    @property
    def output_dir(self) -> str:
        """The job's ``output_dir``: every stage's outputs are under it."""
        return self.config.output_dir

    def __repr__(self) -> str:
        return f"Job(name={self.name!r}, output_dir={self.output_dir!r})"


@dataclass(frozen=True)
class IngestSummary:
    """One split ingested: ``rows_in == kept + rejected``.

    Example::

        train = run(job, stages=["ingest"]).ingest["train"]
        print(f"{train.rows_in} in = {train.kept} kept + {train.rejected} rejected", train.rejected_by_reason)
    """

    split: str
    rows_in: int
    kept: int
    rejected: int
    rejected_by_reason: dict[str, int]
    examples: str  # the folder of the kept rows (Parquet)
    rejects: str  # the folder of the rejected rows, each with its reason (JSONL)
    reused: bool  # finished by an earlier run with the same inputs and settings
    seconds: float


@dataclass(frozen=True)
class AugmentSummary:
    """One split augmented by one method: ``rows_out`` is the originals and their variants.

    Example::

        tinybert = run(job, stages=["augment"]).augment["train/tinybert"]
        print(tinybert.variants / tinybert.rows_in, "variants per example in", tinybert.output)
    """

    split: str
    method: str
    rows_in: int
    rows_out: int
    variants: int
    output: str
    reused: bool
    seconds: float


@dataclass(frozen=True)
class CacheSummary:
    """One corpus's teacher cache (``open_cache(path)`` reads it).

    Example::

        caches = run(job, stages=["teacher"]).caches
        cache = open_cache(caches["augmented/train/tinybert"].path)
    """

    corpus: str  # e.g. "augmented/train/tinybert", "examples/dev"
    path: str
    rows: int
    reused: bool  # every shard was reused
    seconds: float


@dataclass(frozen=True)
class RunSummary:
    """What ``run`` did, stage by stage; a stage that did not run leaves its part empty.

    Example::

        summary = run(Job.from_yaml("jobs/demo.yaml"))
        print(summary.rows_in, summary.kept, summary.rejected, summary.rows_out)
        for row in summary.results:  # one per student run: the metric's mean over seeds
            print(row["name"], row["metric"], row["metric_mean"])
    """

    job: str
    output_dir: str
    stages: list[str]
    ingest: dict[str, IngestSummary] = field(default_factory=dict)  # by split
    augment: dict[str, AugmentSummary] = field(default_factory=dict)  # by "split/method"
    caches: dict[str, CacheSummary] = field(default_factory=dict)  # by corpus
    results: list[dict[str, Any]] = field(default_factory=list)  # the students' result rows (results.json)
    report: str | None = None  # the job report's path
    seconds: float = 0.0

    @property
    def rows_in(self) -> int:
        """Rows read by ingest, every split."""
        return sum(s.rows_in for s in self.ingest.values())

    @property
    def kept(self) -> int:
        """Rows kept by ingest, every split."""
        return sum(s.kept for s in self.ingest.values())

    @property
    def rejected(self) -> int:
        """Rows rejected by ingest (each with its reason in the rejects files), every split."""
        return sum(s.rejected for s in self.ingest.values())

    @property
    def rows_out(self) -> int:
        """Rows written by augment: originals and variants, every split and method."""
        return sum(s.rows_out for s in self.augment.values())


def run(
    job: Job,
    stages: Sequence[str] | None = None,
    executor: Literal["ray", "local"] = "ray",
    *,
    splits: Sequence[str] | None = None,
    methods: Sequence[str] | None = None,
    inputs: Sequence[str] | None = None,
    runs: Sequence[str] | None = None,
    seeds: Sequence[int] | None = None,
    strict: bool | None = None,
    address: str | None = None,
    verbose: bool = False,
    unlocked: bool = False,
) -> RunSummary:
    """Run a job's stages in order and return what each did; as ``pipeline run`` (every stage of
    the job, then the report) or, with ``stages``, as its sub-commands.

    ``stages``: some of ``ingest``, ``augment``, ``teacher``, ``student``, ``report`` (run in that
    order); None = the job's stages (teacher and student when the job has them) and the report.
    ``executor``: ``ray`` (a local Ray started when a stage first has work, or ``address``'s
    cluster) or ``local`` (every task in this process, no Ray; the teacher too). ``splits``,
    ``methods``, ``inputs``, ``runs``, ``seeds``, ``strict``: the sub-commands' options of the same
    names; ``verbose``: the Ray workers' own output and transformers' load reports too, as
    ``--verbose``. Finished work is reused, as on the command line; the output folder is locked
    while the stages run (``unlocked``: not). Each stage prints its progress (plain lines when the
    output is not a terminal, as in a notebook) and its summary. A problem a user can fix raises
    ``PipelineError``.

    Example::

        from pipeline import Job, run

        summary = run(Job.from_yaml("jobs/demo.yaml"), stages=["ingest", "augment"], executor="local")
        print(summary.kept, summary.rows_out, summary.augment["train/tinybert"].output)
    """
    return run_config(
        job.config,
        stages,
        executor,
        splits=splits,
        methods=methods,
        inputs=inputs,
        runs=runs,
        seeds=seeds,
        strict=strict,
        address=address,
        verbose=verbose,
        unlocked=unlocked,
        holder=f"pipeline.run({job.name!r})",
    )


def run_config(
    cfg: JobConfig,
    stages: Sequence[str] | None,
    executor: str = "ray",
    *,
    splits: Sequence[str] | None = None,
    methods: Sequence[str] | None = None,
    inputs: Sequence[str] | None = None,
    runs: Sequence[str] | None = None,
    seeds: Sequence[int] | None = None,
    strict: bool | None = None,
    address: str | None = None,
    ray_token_file: str | None = None,
    verbose: bool = False,
    unlocked: bool = False,
    holder: str = "pipeline",
) -> RunSummary:
    """``run`` for a loaded configuration; the CLI's commands call it (``holder`` names the run in
    the output folder's lock)."""
    from .runtime.lock import output_lock
    from .runtime.numerics import pin_numerics

    unknown = [s for s in stages or () if s not in STAGES]
    if unknown or executor not in ("ray", "local"):
        raise ValueError(f"stages must be among {STAGES} and executor 'ray' or 'local'; got {stages}, {executor!r}")
    if stages is None:
        chosen = ["ingest", "augment"] + ["teacher"] * (cfg.teacher is not None)
        chosen += ["student"] * (cfg.student is not None) + ["report"]
    else:
        chosen = [s for s in STAGES if s in stages]
    pin_numerics()  # before any model runs here, and inherited by a local Ray's workers
    if not verbose:
        quiet_libraries()
    started = time.perf_counter()
    parts: dict[str, Any] = {}
    options = {"splits": splits, "methods": methods, "inputs": inputs, "runs": runs, "seeds": seeds, "strict": strict}
    # runs of different seeds may train side by side (docs/cluster.md): the student alone takes no lock
    lock = nullcontext() if chosen == ["student"] else output_lock(cfg.output_dir, holder, unlocked=unlocked)
    with lock:
        if executor == "ray" and any(s in RAY_STAGES for s in chosen):
            cfg = _start_ray(cfg, address, ray_token_file, verbose)
        _run_chosen(cfg, chosen, executor, options, parts)
    return RunSummary(cfg.name, cfg.output_dir, chosen, **parts, seconds=round(time.perf_counter() - started, 3))


def _run_chosen(cfg: JobConfig, chosen: list[str], executor: str, o: dict[str, Any], parts: dict[str, Any]) -> None:
    def listed(key: str) -> list | None:
        return list(o[key]) if o[key] is not None else None

    if "ingest" in chosen:
        from .ingest.stage import run_ingest

        parts["ingest"] = {
            split: IngestSummary(
                split,
                s.rows_in,
                s.kept,
                s.rejected,
                dict(s.rejected_by_reason),
                layout.examples_dir(cfg.output_dir, split),
                layout.rejects_dir(cfg.output_dir, split),
                s.reused,
                s.seconds,
            )
            for split, s in run_ingest(cfg, listed("splits"), o["strict"], executor=executor).items()
        }
    if "augment" in chosen:
        from .augment.stage import run_augment

        done = run_augment(cfg, listed("methods"), executor=executor)
        parts["augment"] = {
            f"{split}/{method}": AugmentSummary(
                split,
                method,
                s["examples_in"],
                s["rows_out"],
                s["variants"],
                layout.augmented_dir(cfg.output_dir, split, method),
                bool(s.get("reused")),
                float(s.get("seconds", 0.0)),
            )
            for (split, method), s in done.items()
        }
    if "teacher" in chosen:
        from .teacher.stage import run_teacher

        done = run_teacher(cfg, inputs=listed("inputs"), use_ray=executor == "ray")
        parts["caches"] = {
            name: CacheSummary(name, s["cache"], s["rows"], s["shards_computed"] == 0, float(s.get("seconds", 0.0)))
            for name, s in done["inputs"].items()
        }
    if "student" in chosen:
        from .student.stage import run_student

        parts["results"] = run_student(cfg, runs=listed("runs"), seeds=listed("seeds"))["rows"]
    if "report" in chosen:
        parts["report"] = write_report(cfg)


def quiet_libraries() -> None:
    """Only the project's own lines on the console: transformers' load reports and weight-loading
    bars stay out (``--verbose`` keeps them). Set in the environment, so that a local Ray's workers
    inherit it."""
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


def write_report(cfg: JobConfig) -> str:
    """Write the job report (``<output_dir>/report.html``) from the job's outputs; its path."""
    from .progress import print_summary
    from .report import write_job_report

    started = time.perf_counter()
    path = write_job_report(cfg)
    print_summary("report", [("report", path), ("seconds", time.perf_counter() - started)])
    return path


def _start_ray(cfg: JobConfig, address: str | None, token_file: str | None, verbose: bool) -> JobConfig:
    """Say how Ray is started or joined when a stage first has work for it (``ray_env.defer``; a
    re-run whose outputs are all reused never starts it); the job as its workers must see it
    (absolute paths when joining a running cluster from a shell, see ``absolute_paths``)."""
    from .config import absolute_paths
    from .runtime import ray_env
    from .runtime.ray_auth import use_token

    use_token(token_file)
    # every Ray start goes through ray_env.ensure: none implicit, with Ray's defaults (set before ray is imported)
    os.environ.setdefault("RAY_ENABLE_AUTO_CONNECT", "0")
    address = address or cfg.ray.address or os.environ.get("RAY_ADDRESS")
    ray_env.defer(
        address,
        cfg.ray.num_cpus,
        verbose,
        announce=lambda where: print(f"[{cfg.name}] {where}", file=sys.stderr, flush=True),
    )
    if address and address != "local":  # a cluster that cannot be joined fails before any work
        ray_env.ensure()
    joined = address and address != "local" and not os.environ.get(IN_RAY_JOB)
    return absolute_paths(cfg) if joined else cfg
