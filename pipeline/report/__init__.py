"""The job report: one self-contained ``report.html`` per output folder.

    from pipeline.report import write_report
    write_report("out/demo")                     # -> "out/demo/report.html"
    write_report("s3://bucket/demo")             # -> "s3://bucket/demo/report.html"

``stats`` holds the pure statistics, ``collect`` reads an output folder (no Ray), ``render``
writes the page and ``plots`` its figures (matplotlib, inline PNG); the page's frame is in ``page``,
its HTML helpers in ``markup`` and each of its sections in a module of ``sections``.
"""

from __future__ import annotations

from ..errors import PipelineError

REPORT_NAME = "report.html"


class ReportError(PipelineError, RuntimeError):
    """An output folder the report cannot read (missing)."""


def write_report(output_dir: str, title: str | None = None, mask_token: str = "[MASK]", seed: int = 0) -> str:
    """Read ``output_dir`` (a local folder or a URI: s3://, gs://, file://) and write
    ``<output_dir>/report.html``; returns its path."""
    from .. import storage
    from .collect import collect
    from .render import render

    # a file:// folder is read, printed and returned as its local path, as before
    root = output_dir.removeprefix("file://") if output_dir.startswith("file://") else output_dir
    if not storage.is_dir(root):
        shown = storage.redact(root) if storage.is_remote(root) else root
        raise ReportError(f"{shown}: no such output folder (has the job run?)")
    page = render(collect(root, title=title, mask_token=mask_token, seed=seed))
    path = storage.join(root, REPORT_NAME)
    with storage.atomic_output(path) as out:
        out.write(page.encode("utf-8"))
    return path


def write_job_report(cfg) -> str:
    """The report of a job: its output folder, its name, its Tang mask token and its seed."""
    return write_report(cfg.output_dir, title=cfg.name, mask_token=cfg.augment.tang.mask_token, seed=cfg.seed)
