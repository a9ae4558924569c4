"""Every path of a job's output folder, in one place.

    <output_dir>/
      examples/<split>/part-NNNNN.parquet       ingest: one file per task (input chunk)
      rejects/<split>/part-NNNNN.jsonl          ingest: the rejected rows of that task, when any
      work/tang-tags/<split>/part-NNNNN.parquet Tang: tagged examples and (tag, word) counts per task
      augmented/<split>/<method>/part-NNNNN.parquet   augment: one file per task (input range)
      teacher/model/                            the fine-tuned teacher
      teacher/<input>/shard-NNNNN.parquet + manifest.json   teacher caches
      teacher/<input>/members/<name>/           an ensemble member's logits-only cache of that input
      teacher/<input>/ensemble.json             the members the job names (teacher.ensemble)
      teacher/members/<name>/                   an ensemble member fine-tuned
      student/                                  student runs, results
      report.html

Each stage output folder also holds ``_summary.json`` and ``_complete.json`` (written last) and
``_tasks/`` (one marker per finished task), see ``runtime/markers.py``.
"""

from __future__ import annotations

import re

from .storage import join

# An input corpus of the teacher: ingested examples of a split, or the augmented corpus of a split and method.
INPUT_PATTERN = r"^(examples/[A-Za-z0-9._-]+|augmented/[A-Za-z0-9._-]+/[A-Za-z0-9._-]+)$"


def input_parts(name: str) -> tuple[str, ...]:
    """'augmented/train/tang' → ('augmented', 'train', 'tang')."""
    if not re.match(INPUT_PATTERN, name):
        raise ValueError(f"not an input name: {name!r}")
    return tuple(name.split("/"))


def examples_dir(output_dir: str, split: str) -> str:
    return join(output_dir, "examples", split)


def rejects_dir(output_dir: str, split: str) -> str:
    return join(output_dir, "rejects", split)


def tang_tags_dir(output_dir: str, split: str) -> str:
    return join(output_dir, "work", "tang-tags", split)


def augmented_dir(output_dir: str, split: str, method: str) -> str:
    return join(output_dir, "augmented", split, method)


def teacher_dir(output_dir: str) -> str:
    return join(output_dir, "teacher")


def teacher_model_dir(output_dir: str) -> str:
    return join(output_dir, "teacher", "model")


def corpus_dir(output_dir: str, input_name: str) -> str:
    """A corpus the teacher reads, by its name ('augmented/train/tang', 'examples/dev')."""
    return join(output_dir, *input_name.split("/"))


def cache_dir(output_dir: str, input_name: str) -> str:
    """The teacher cache of a corpus."""
    return join(output_dir, "teacher", *input_name.split("/"))


def member_model_dir(output_dir: str, member: str) -> str:
    """Where an ensemble member is fine-tuned."""
    return join(output_dir, "teacher", "members", member)


def member_cache_dir(output_dir: str, input_name: str, member: str) -> str:
    """An ensemble member's logits cache of a corpus, inside the corpus's cache folder."""
    return join(cache_dir(output_dir, input_name), "members", member)


def student_dir(output_dir: str) -> str:
    return join(output_dir, "student")


def report_path(output_dir: str) -> str:
    return join(output_dir, "report.html")
