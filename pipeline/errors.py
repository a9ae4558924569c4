"""The one error base class: every error a user can fix derives from it, and the CLI turns it
into ``error: <message>`` and exit status 2 (no traceback)."""

from __future__ import annotations


class PipelineError(Exception):
    """A job that cannot run as configured or on its inputs; the message says why and what to do."""


class TaskError(PipelineError):
    """A task failed on a worker with an error of this kind (a full disk, a bad input file): the
    worker's message, raised again in the driver without Ray's wrapping."""
