"""Command line: one sub-command per stage, ``run`` for a whole job.

pipeline ingest  jobs/demo.yaml     validate inputs → examples + rejects
pipeline augment jobs/demo.yaml     TinyBERT / Tang augmentation of the ingested splits
pipeline teacher jobs/demo.yaml     fine-tune a teacher, cache its logits / hidden states
pipeline student jobs/demo.yaml     train students offline from the cached teacher outputs
pipeline run     jobs/demo.yaml     every stage of the job in order, then the job report
pipeline report  jobs/demo.yaml     (re)write <output_dir>/report.html from the job's outputs
pipeline init    NAME --data DIR    a ready job file for a new task from its data files
pipeline submit  jobs/demo.yaml --address http://HEAD:8265   the job on a Ray cluster (Ray Jobs);
                 then pipeline status / logs / stop ID
"""

from __future__ import annotations

import argparse
import sys
import time

from .config import JobConfig, load_config
from .errors import PipelineError
from .jobs import IN_RAY_JOB, quiet_libraries  # noqa: F401  (IN_RAY_JOB: pipeline.cluster.entrypoint sets it)

STAGES = ("ingest", "augment", "teacher", "student")


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("job", help="job YAML file (see jobs/)")
    p.add_argument(
        "--address", default=None, help="Ray cluster address (default: $RAY_ADDRESS, else a local Ray started here)"
    )
    p.add_argument(
        "--ray-token-file",
        default=None,
        metavar="PATH",
        help="token of a Ray cluster with token authentication (default: $RAY_AUTH_TOKEN, "
        "$RAY_AUTH_TOKEN_PATH, ~/.ray/auth_token)",
    )
    p.add_argument("--output-dir", default=None, help="override output_dir of the job file")
    p.add_argument(
        "--verbose",
        action="store_true",
        help="relay the Ray workers' own output to this console (else it stays in the Ray logs)",
    )
    p.add_argument(
        "--executor",
        choices=["ray", "local"],
        default="ray",
        help="ray (default): tasks on Ray; local: every task in this process, one after the other (no Ray; debugging)",
    )
    p.add_argument(
        "--unlocked",
        action="store_true",
        help="run without the output folder's lock (for a store that cannot create a file exclusively; "
        "you then keep every other run away from the folder)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pipeline", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("ingest", help="validate raw inputs into examples (Parquet) and rejects (JSONL)")
    _common(p)
    p.add_argument("--split", action="append", help="only these splits (repeatable)")
    p.add_argument("--strict", action="store_true", default=None, help="fail when any row is rejected")

    p = sub.add_parser("augment", help="augment ingested splits with the job's methods (TinyBERT, Tang)")
    _common(p)
    p.add_argument("--method", action="append", choices=["tinybert", "tang"], help="only these methods")

    p = sub.add_parser(
        "teacher", help="fine-tune (optional) and cache teacher logits / hidden states of the job's corpora"
    )
    _common(p)
    p.add_argument("--input", action="append", help="only these corpora, e.g. augmented/train/tinybert (repeatable)")

    p = sub.add_parser(
        "student", help="train the job's students from the teacher caches (offline, no Ray) and write the result table"
    )
    _common(p)
    p.add_argument("--run", action="append", help="only these runs of student.runs (repeatable)")
    p.add_argument("--seed", action="append", type=int, help="only these seeds of student.seeds (repeatable)")

    p = sub.add_parser("run", help="run every stage of the job: " + " → ".join(STAGES))
    _common(p)
    p.add_argument("--strict", action="store_true", default=None, help="fail when any row is rejected")

    p = sub.add_parser("report", help="write <output_dir>/report.html from the outputs of a job (no Ray needed)")
    p.add_argument("job", help="job YAML file (see jobs/)")
    p.add_argument("--output-dir", default=None, help="report on this output folder instead of the job's output_dir")

    p = sub.add_parser("validate", help="check a job file and print the resolved configuration")
    p.add_argument("job")

    p = sub.add_parser(
        "init",
        help="write a ready job file for a new task from its data files (columns and labels read from them)",
        description="Finds train / dev / test files in --data by name, reads their columns and the train "
        "file's label set, writes jobs/NAME.yaml with a comment on each knob, and validates it.",
    )
    p.add_argument("name", help="the job's name (a GLUE task name also picks that task's preset)")
    p.add_argument("--data", required=True, help="folder holding train.* (and dev.*, test.*) files")
    p.add_argument("--task", default=None, help="preset of per-task defaults (default: NAME if it is one, else sst2)")
    p.add_argument("--out", default=None, help="job file to write (default: jobs/NAME.yaml)")
    p.add_argument("--force", action="store_true", help="replace an existing job file")

    from .cluster import submit

    submit.add_parsers(sub)
    return parser


def _load(args) -> JobConfig:
    overrides = {"output_dir": args.output_dir} if getattr(args, "output_dir", None) else None
    return load_config(args.job, overrides=overrides)


def _run_stages(cfg: JobConfig, args) -> str | None:
    """The command's stages in order (``pipeline.jobs.run_config``: the library's ``run``); the
    report's path for ``run``."""
    from .jobs import run_config

    done = run_config(
        cfg,
        None if args.command == "run" else [args.command],
        getattr(args, "executor", "ray"),
        splits=getattr(args, "split", None),
        methods=getattr(args, "method", None),
        inputs=getattr(args, "input", None),
        runs=getattr(args, "run", None),
        seeds=getattr(args, "seed", None),
        strict=getattr(args, "strict", None),
        address=args.address,
        ray_token_file=args.ray_token_file,
        verbose=args.verbose,
        unlocked=args.unlocked,
        holder=f"pipeline {args.command} {args.job}",
    )
    return done.report


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from .cluster import submit
    from .runtime.numerics import pin_numerics

    pin_numerics()  # before any model runs here, and inherited by a local Ray's workers
    if not getattr(args, "verbose", False):
        quiet_libraries()

    if args.command in submit.COMMANDS:
        return submit.main(args)
    started = time.perf_counter()
    try:
        if args.command == "init":
            from .init_job import init_job

            path = init_job(args.name, args.data, args.task, args.out, args.force)
            print(f"wrote {path} (validated); next: pipeline run {path}", file=sys.stderr)
            return 0
        if args.command == "validate":
            cfg = load_config(args.job)
            print(cfg.model_dump_json(indent=2))
            print(f"{args.job}: OK (config hash {cfg.config_hash()})", file=sys.stderr)
            return 0
        if args.command == "report":  # reads finished outputs: no Ray, input files need not exist
            from .jobs import write_report

            overrides = {"output_dir": args.output_dir} if args.output_dir else None
            write_report(load_config(args.job, check_files=False, overrides=overrides))
            return 0
        cfg = _load(args)
        report = _run_stages(cfg, args)
    except PipelineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a remote store's failure that no stage wrapped: still one line, exit 2
        from .storage import failure, is_remote_failure

        if not is_remote_failure(exc):
            raise
        print(f"error: {failure(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            "\ninterrupted: every finished task's files are kept (their task markers say so); run the same "
            "command again to resume where it stopped",
            file=sys.stderr,
        )
        return 130
    print(
        f"\n[{cfg.name}] {args.command} finished in {time.perf_counter() - started:,.1f} s; "
        f"outputs under {cfg.output_dir}" + (f"; report {report}" if report else ""),
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
