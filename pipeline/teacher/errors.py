"""The teacher stage's error (no heavy imports: the CLI catches it)."""

from ..errors import PipelineError


class TeacherError(PipelineError, RuntimeError):
    """The teacher stage cannot run as configured (the message says why and what to do)."""
