"""A small job of a task family run end to end with ``pipeline run --executor local``: the task's
preset on a data folder, TinyBERT augmentation of two splits, the bundled MiniLM teacher fine-tuned
(hidden states and attentions for the train split), BiLSTM and small BERT students."""

from __future__ import annotations

from pathlib import Path

import yaml


def run_small_job(
    tmp_path: Path, task: str, data_dir: Path, *, splits: list[str], cached: list[str], epochs: int, runs: list[dict]
) -> Path:
    """The job's output folder once ``pipeline run`` has succeeded: ``splits`` augmented, the
    corpora ``cached`` besides examples/train, the student ``runs`` (one seed each)."""
    from pipeline.cli import main

    job = {
        "name": f"{task}-small",
        "task": task,
        "data_dir": str(data_dir),
        "output_dir": str(tmp_path / "out"),
        "augment": {"methods": ["tinybert"], "splits": splits, "tinybert": {"n_aug": 2}},
        "teacher": {
            "finetune": {"epochs": epochs},
            "inputs": ["examples/train", *cached],
            "student_layers": 2,
            "attentions": [3, 6],
            "states_for": ["examples/train"],
        },
        "student": {
            "seeds": [1],
            "runs": runs,
            "bilstm": {"epochs": 1},
            "bert": {"layers": 2, "intermediate_epochs": 1, "epochs": 1},
        },
    }
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(job), encoding="utf-8")
    assert main(["run", str(path), "--executor", "local"]) == 0
    return tmp_path / "out"
