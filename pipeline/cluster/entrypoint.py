"""Entrypoint of a job submitted with ``pipeline submit``: ``python -m pipeline.cluster.entrypoint ARGS``
runs ``pipeline ARGS`` in a private copy of the job's working directory.

Ray Jobs starts the driver inside the job's unpacked working directory, and Ray unpacks that
directory again (delete, then re-create) when the job's first workers start on the head node; a
driver standing in it loses its current directory part-way (relative paths then fail with
``FileNotFoundError``). The copy is made before the driver joins the cluster; it holds what was
uploaded (job files, small inputs), and is removed when the command ends.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile


def main(argv: list[str] | None = None) -> int:
    source = os.getcwd()
    private = tempfile.mkdtemp(prefix="kd-job-")
    shutil.copytree(source, private, symlinks=True, dirs_exist_ok=True)
    os.chdir(private)
    try:
        from ..cli import IN_RAY_JOB
        from ..cli import main as pipeline_main

        os.environ[IN_RAY_JOB] = "1"
        return pipeline_main(sys.argv[1:] if argv is None else argv)
    finally:
        os.chdir(tempfile.gettempdir())
        shutil.rmtree(private, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
