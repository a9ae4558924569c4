"""Errors of the student stage (kept free of torch so the CLI imports them cheaply)."""

from ..errors import PipelineError


class StudentStageError(PipelineError, RuntimeError):
    """The student stage cannot run as configured (missing split, labels, runs...)."""


class StudentError(PipelineError, ValueError):
    """A student model cannot be built as configured (layer map, sizes)."""
