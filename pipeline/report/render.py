"""The report as one self-contained HTML page: inline CSS, inline PNG figures, no script, no network."""

from __future__ import annotations

import time

from .collect import ReportData
from .markup import _section, e
from .page import CSS, PAGE
from .sections.augmentation import _augmentation, _samples
from .sections.cache import _cache
from .sections.row_flow import _row_flow
from .sections.student import _student
from .sections.teacher import _teacher

SECTIONS = [
    ("row-flow", "Row flow"),
    ("samples", "Samples"),
    ("augmentation", "Augmentation"),
    ("teacher", "Teacher"),
    ("cache", "Cache"),
    ("student", "Student"),
]


def render(data: ReportData) -> str:
    bodies = {
        "row-flow": _row_flow(data),
        "samples": _samples(data),
        "augmentation": _augmentation(data),
        "teacher": _teacher(data),
        "cache": _cache(data),
        "student": _student(data),
    }
    nav = "".join(f'<a href="#{sid}">{e(title)}</a>' for sid, title in SECTIONS)
    sections = "\n".join(_section(sid, title, bodies[sid]) for sid, title in SECTIONS)
    return PAGE.substitute(
        title=e(data.title),
        output_dir=e(data.output_dir),
        css=CSS,
        nav=nav,
        sections=sections,
        generated=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    )
