"""Errors of the student stage (kept free of torch so the CLI imports them cheaply)."""


class StudentStageError(RuntimeError):
    """The student stage cannot run as configured (missing split, labels, runs...)."""


class StudentError(ValueError):
    """A student model cannot be built as configured (layer map, sizes)."""
