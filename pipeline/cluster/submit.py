"""Running a job on a Ray cluster through Ray Jobs (the job server on the head node, port 8265).

    pipeline submit jobs/demo.yaml --address http://HEAD:8265 --output-dir s3://bucket/kd/demo --follow
    pipeline status ID | pipeline logs ID [--follow] | pipeline stop ID       (--address or $RAY_ADDRESS)

``submit`` checks the job file here, uploads the project directory as the job's working directory
(without ``.venv``, ``out``, ``.git`` and caches), and starts ``pipeline run JOB.yaml`` there as
the job's entrypoint (``python -m pipeline.cluster.entrypoint``, see there why); the entrypoint
joins the cluster through the ``RAY_ADDRESS`` the job server sets. By default the cluster's image is assumed to have the project and its dependencies
installed (``docker/``); ``--requirements`` installs the project's dependencies into the job's
runtime environment instead. ``output_dir`` must be storage every node can reach: an absolute
path on a shared mount (NFS) or a ``pyarrow.fs`` URI (``s3://``, ``gs://``, ``hdfs://``); a relative
path would land in the job's temporary working directory on the head node.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex
import sys
import time
from pathlib import Path

from ..errors import PipelineError

COMMANDS = ("submit", "status", "logs", "stop")
STAGE_COMMANDS = ("run", "ingest", "augment", "teacher", "student")
WORKING_DIR_EXCLUDES = [
    ".venv",
    "venv",
    "out",
    ".git",
    ".bench",
    "build",
    "dist",
    "__pycache__",
    "*.pyc",
    "*.egg-info",
    ".pytest_cache",
    ".mypy_cache",
    ".ruff_cache",
    ".ipynb_checkpoints",
]
TERMINAL = ("SUCCEEDED", "FAILED", "STOPPED")


class SubmitError(PipelineError, RuntimeError):
    """A submission that cannot go ahead; the message says why and what to pass instead."""


# ---------------------------------------------------------------------------------------------
# Command line


def _address(p: argparse.ArgumentParser) -> None:
    p.add_argument("--address", default=None, help="the cluster's job server, http://HEAD:8265 (default: $RAY_ADDRESS)")
    p.add_argument(
        "--ray-token-file",
        default=None,
        metavar="PATH",
        help="token of a cluster with token authentication (default: $RAY_AUTH_TOKEN, "
        "$RAY_AUTH_TOKEN_PATH, ~/.ray/auth_token)",
    )


def add_parsers(sub) -> None:
    """The cluster sub-commands, added to the main parser's sub-parsers."""
    p = sub.add_parser(
        "submit",
        help="run a job on a Ray cluster through Ray Jobs",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("job", help="job YAML file, inside the working directory")
    _address(p)
    p.add_argument("--stage", choices=STAGE_COMMANDS, default="run", help="what the job runs (default: run)")
    p.add_argument(
        "--output-dir", default=None, help="override output_dir: an absolute path on shared storage or a pyarrow.fs URI"
    )
    p.add_argument(
        "--working-dir",
        default=".",
        help="directory uploaded as the job's working directory (default: the current one, the project root)",
    )
    p.add_argument(
        "--requirements",
        action="store_true",
        help="install the project's dependencies (pyproject.toml) into the job's runtime "
        "environment (default: the cluster's image has them)",
    )
    p.add_argument(
        "--pip",
        action="append",
        default=[],
        metavar="SPEC",
        help="extra pip requirement for the runtime environment (repeatable)",
    )
    p.add_argument("--env", action="append", default=[], metavar="KEY=VALUE", help="environment variable (repeatable)")
    p.add_argument("--entrypoint-num-cpus", type=float, default=None, help="CPUs reserved for the driver")
    p.add_argument("--entrypoint-num-gpus", type=float, default=None, help="GPUs reserved for the driver")
    p.add_argument("--entrypoint-memory", type=int, default=None, help="memory reserved for the driver, bytes")
    p.add_argument(
        "--entrypoint-resources",
        type=json.loads,
        default=None,
        metavar="JSON",
        help="custom resources for the driver, e.g. '{\"head\": 1}'",
    )
    p.add_argument("--submission-id", default=None, help="job id (default: chosen by Ray)")
    p.add_argument(
        "--follow", action="store_true", help="stream the logs until the job ends; exit 0 only when it succeeded"
    )
    p.add_argument("--dry-run", action="store_true", help="print the submission instead of sending it")

    p = sub.add_parser("status", help="status of a submitted job")
    p.add_argument("id", help="submission id printed by `pipeline submit`")
    _address(p)
    p.add_argument("--wait", action="store_true", help="wait until the job ends; exit 0 only when it succeeded")

    p = sub.add_parser("logs", help="logs of a submitted job")
    p.add_argument("id")
    _address(p)
    p.add_argument("--follow", "-f", action="store_true", help="stream new lines until the job ends")

    p = sub.add_parser("stop", help="stop a submitted job")
    p.add_argument("id")
    _address(p)


def main(args: argparse.Namespace) -> int:
    """Runs one cluster sub-command; returns the exit status."""
    from ..runtime.ray_auth import RayAuthError, refused, use_token

    try:
        use_token(args.ray_token_file)
        if args.command == "submit":
            spec = build_submission(args)
            if args.dry_run:
                print(json.dumps(spec, indent=2))
                return 0
            client = _client(args.address)
            job_id = _submit(client, spec)
            print(job_id)
            print(
                f"submitted {job_id} to {client.get_address()}: {spec['entrypoint']}\n"
                f"  pipeline status {job_id}\n  pipeline logs {job_id} --follow\n  pipeline stop {job_id}",
                file=sys.stderr,
            )
            return _follow(client, job_id) if args.follow else 0
        client = _client(args.address)
        if args.command == "status":
            if args.wait:
                return _exit_status(_wait(client, args.id), client, args.id)
            _print_status(client, args.id)
            return 0
        if args.command == "logs":
            if args.follow:
                return _follow(client, args.id)
            sys.stdout.write(client.get_job_logs(args.id))
            return 0
        if args.command == "stop":
            stopped = client.stop_job(args.id)
            print(f"{args.id}: " + ("stop requested" if stopped else f"not running ({client.get_job_status(args.id)})"))
            return 0
    except (SubmitError, RayAuthError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (ConnectionError, RuntimeError, ValueError) as exc:  # unreachable server, unknown id
        print(f"error: {args.command}: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        from ray.exceptions import AuthenticationError

        if not isinstance(exc, AuthenticationError):
            raise
        address = args.address or os.environ.get("RAY_ADDRESS")
        print(f"error: {args.command}: {refused(f'the job server at {address}', exc)}", file=sys.stderr)
        return 2
    raise AssertionError(args.command)


# ---------------------------------------------------------------------------------------------
# The submission


def project_requirements(root: Path) -> list[str]:
    """The ``[project] dependencies`` of the pyproject.toml under ``root``, Ray itself left out
    (the cluster's Ray must not be replaced inside a job)."""
    import re

    import tomllib

    path = root / "pyproject.toml"
    if not path.is_file():
        raise SubmitError(f"--requirements: no pyproject.toml in the working directory {root}")
    with open(path, "rb") as fh:
        deps = tomllib.load(fh)["project"]["dependencies"]
    return [d for d in deps if re.split(r"[\s\[<>=!~;]", d, maxsplit=1)[0].lower() != "ray"]


def _is_uri(path: str) -> bool:
    return "://" in path


def build_submission(args: argparse.Namespace) -> dict:
    """Keyword arguments of ``JobSubmissionClient.submit_job`` for a job file (checked here first)."""
    from ..config import ConfigError, load_config

    root = Path(args.working_dir).resolve()
    if not root.is_dir():
        raise SubmitError(f"--working-dir {args.working_dir}: not a directory")
    job = Path(args.job).resolve()
    try:
        job_rel = job.relative_to(root).as_posix()
    except ValueError:
        raise SubmitError(
            f"{args.job}: the job file must be inside the working directory {root}, which is what the cluster receives"
        ) from None
    cwd = os.getcwd()
    try:  # relative input paths are relative to the working directory, as on the cluster
        os.chdir(root)
        overrides = {"output_dir": args.output_dir} if args.output_dir else None
        cfg = load_config(job_rel, check_files=False, overrides=overrides)
        for split, spec in cfg.inputs.items():
            if not _is_uri(spec.path) and not os.path.isabs(spec.path) and not os.path.isfile(spec.path):
                raise SubmitError(
                    f"{args.job}: inputs.{split}.path {spec.path!r} is not in the working directory {root}"
                )
    except ConfigError as exc:
        raise SubmitError(str(exc)) from None
    finally:
        os.chdir(cwd)
    if not _is_uri(cfg.output_dir) and not os.path.isabs(cfg.output_dir):
        raise SubmitError(
            f"{args.job}: output_dir {cfg.output_dir!r} is relative: on a cluster it would land in the "
            f"job's temporary working directory; pass --output-dir with an absolute path on shared "
            f"storage or a URI (s3://..., gs://...)"
        )
    env_vars = {}
    for item in args.env:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SubmitError(f"--env {item!r}: expected KEY=VALUE")
        env_vars[key] = value
    runtime_env: dict = {"working_dir": str(root), "excludes": list(WORKING_DIR_EXCLUDES)}
    pip = (project_requirements(root) if args.requirements else []) + list(args.pip)
    if pip:
        runtime_env["pip"] = {"packages": pip, "pip_check": False}
    if env_vars:
        runtime_env["env_vars"] = env_vars
    # Ray Jobs runs the entrypoint through a shell: every argument quoted, so that a path with
    # spaces or shell syntax stays one argument and never becomes a command of its own
    argv = ["python", "-m", "pipeline.cluster.entrypoint", args.stage, job_rel]
    if args.output_dir:
        argv += ["--output-dir", args.output_dir]
    entrypoint = shlex.join(argv)
    job_spec = {
        "entrypoint": entrypoint,
        "runtime_env": runtime_env,
        "submission_id": args.submission_id,
        "metadata": {"job": cfg.name, "config_hash": cfg.config_hash(), "output_dir": cfg.output_dir},
        "entrypoint_num_cpus": args.entrypoint_num_cpus,
        "entrypoint_num_gpus": args.entrypoint_num_gpus,
        "entrypoint_memory": args.entrypoint_memory,
        "entrypoint_resources": args.entrypoint_resources,
    }
    return {k: v for k, v in job_spec.items() if v is not None}


# ---------------------------------------------------------------------------------------------
# Talking to the job server


def _client(address: str | None):
    from ray.job_submission import JobSubmissionClient

    address = address or os.environ.get("RAY_ADDRESS")
    if not address:
        raise SubmitError("no cluster address: pass --address http://HEAD:8265 or set RAY_ADDRESS")
    try:
        return JobSubmissionClient(address)
    except ConnectionError as exc:
        raise SubmitError(f"cannot reach the Ray job server at {address}: {exc}") from None


def _submit(client, spec: dict, patience: float = 60.0) -> str:
    """``submit_job``, retried while the job server says to try again later (it has no live node
    agent to run the job yet, e.g. just after the head started or a node was lost)."""
    deadline = time.monotonic() + patience
    while True:
        try:
            return client.submit_job(**spec)
        except RuntimeError as exc:
            if "try again later" not in str(exc) or time.monotonic() > deadline:
                raise
            print(f"  job server busy ({exc}); retrying", file=sys.stderr)
            time.sleep(2.0)


def _print_status(client, job_id: str) -> None:
    info = client.get_job_info(job_id)
    when = lambda ms: time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ms / 1000)) if ms else "-"  # noqa: E731
    rows = [
        ("id", job_id),
        ("status", str(info.status)),
        ("message", info.message or ""),
        ("entrypoint", info.entrypoint),
        ("started", when(info.start_time)),
        ("ended", when(info.end_time)),
    ]
    if info.metadata:
        rows.append(("metadata", json.dumps(info.metadata)))
    for key, value in rows:
        print(f"{key:<10}  {value}")


def _wait(client, job_id: str, poll: float = 1.0) -> str:
    while (status := str(client.get_job_status(job_id))) not in TERMINAL:
        time.sleep(poll)
    return status


def _exit_status(status: str, client, job_id: str) -> int:
    info = client.get_job_info(job_id)
    print(
        f"{job_id}: {status}" + (f" ({info.message})" if info.message and status != "SUCCEEDED" else ""),
        file=sys.stderr,
    )
    return 0 if status == "SUCCEEDED" else 1


def _follow(client, job_id: str) -> int:
    async def tail() -> None:
        async for lines in client.tail_job_logs(job_id):
            sys.stdout.write(lines)
            sys.stdout.flush()

    asyncio.run(tail())
    return _exit_status(_wait(client, job_id), client, job_id)
