"""A newcomer's first run prints only the project's own lines: progress, stage summaries, the
result table, the closing line. No other library's bars, load reports, worker prefixes, colour
codes or warnings (``--verbose`` lets the Ray workers' output through)."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.ray
ROOT = Path(__file__).resolve().parents[1]

# what the project prints: "[job] ..." headers, indented progress and summary lines, "== stage ==",
# the result table's rows, the closing line
OWN_LINE = re.compile(r"^(\[[\w.-]+\] |  \S|== .+ ==$|\| )")
NOISE = (
    "LOAD REPORT",
    "Loading weights",
    "core_worker",
    "Token authentication",
    "(raylet",
    "pid=",
    "\x1b[",
    "dedup",
    "Warning",
    "WARNING",
    "it/s]",
    "Traceback",
)


def test_a_small_job_prints_only_the_projects_lines(tmp_path):
    data = ROOT / "data/rt-polarity"
    columns = {"text_a": "sentence", "label": "label"}
    job = {
        "name": "console",
        "task": "sst2",
        "seed": 3,
        "output_dir": str(tmp_path / "out"),
        "labels": ["negative", "positive"],
        "inputs": {
            split: {"path": str(data / f"{split}.tsv"), "columns": columns, "limit": 24}
            for split in ("train", "dev", "test")
        },
        "augment": {"tinybert": {"mlm": "none", "n_aug": 3, "glove": {"rows": 20000}}, "tang": {"n_iter": 3}},
        # the bundled MiniLM has no classifier head: fine-tuning loads it with a newly initialised head,
        # which is what makes transformers print its load report
        "teacher": {
            "finetune": {"epochs": 1},
            "max_length": 32,
            "inputs": ["augmented/train/tinybert", "examples/dev"],
        },
        "student": {
            "seeds": [1],
            "bilstm": {"glove_rows": 2000},
            "runs": [{"name": "b", "model": "bilstm", "data": "augmented/train/tinybert", "epochs": 1}],
        },
    }
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(job), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "TRANSFORMERS_", "HF_HUB_"))}
    done = subprocess.run(
        [sys.executable, "-m", "pipeline", "run", str(path)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=600,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    assert "== teacher ==" in output and "== student ==" in output
    assert "  fine-tune epoch 1/1: train loss" in done.stderr  # relayed from the fine-tuning task
    lines = [line for line in output.splitlines() if line.strip()]
    foreign = [line for line in lines if not OWN_LINE.match(line)]
    assert not foreign, "lines not from the project:\n" + "\n".join(foreign[:20])
    noisy = [line for line in lines if any(n in line for n in NOISE)]
    assert not noisy, "\n".join(noisy[:20])
    progress = [line for line in lines if line.startswith("  ") and "/s)" in line]
    assert len(progress) == len(set(progress)), "a progress line printed twice"
