"""The documentation stays true: the generated configuration and Python API references are
current, the README's quick-start job is a valid job, every relative link leads to a file, the
README stays short."""

import re
from pathlib import Path

import yaml

from pipeline.config import parse_config
from pipeline.config_reference import render

ROOT = Path(__file__).resolve().parents[1]
DOCS = [
    ROOT / "README.md",
    ROOT / "CONTRIBUTING.md",
    ROOT / "CHANGELOG.md",
    ROOT / "benchmarks/README.md",
    ROOT / "examples/README.md",
    *sorted((ROOT / "docs").glob("*.md")),
]


def test_configuration_reference_is_current():
    assert (ROOT / "docs/configuration.md").read_text(encoding="utf-8") == render(), (
        "docs/configuration.md is stale: python -m pipeline.config_reference > docs/configuration.md"
    )


def test_api_reference_is_current():
    from pipeline.api_reference import render as render_api

    assert (ROOT / "docs/api.md").read_text(encoding="utf-8") == render_api(), (
        "docs/api.md is stale: python -m pipeline.api_reference > docs/api.md"
    )


def test_every_key_is_described():
    missing = [
        line.split("|")[1].strip()
        for line in render().splitlines()
        if line.startswith("| `") and line.rstrip().endswith("|  |")
    ]
    assert not missing, f"keys without a description: {missing}"


def test_readme_quick_start_is_a_valid_job():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"## Quick start.*?```yaml\n(.*?)```", text, re.S).group(1)
    cfg = parse_config(yaml.safe_load(block), "README.md", check_files=False)
    assert cfg.teacher is not None and cfg.student is not None and set(cfg.inputs) == {"train", "dev", "test"}


def test_readme_is_short_and_has_the_two_set_up_commands():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(text.split()) <= 1200
    setup = text.split("## Set-up: two commands", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"^(make \w+)", setup, re.M)
    assert commands == ["make demo", "make test"]


def test_relative_links_lead_to_files():
    broken = []
    for doc in DOCS:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", doc.read_text(encoding="utf-8")):
            if "://" not in target and not (doc.parent / target).exists():
                broken.append(f"{doc.relative_to(ROOT)} -> {target}")
    assert not broken, broken
