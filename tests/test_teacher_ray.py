"""The teacher stage on a local Ray: actor pool output equals the in-process run; re-runs skip shards."""

from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.cache import open_cache
from pipeline.config import parse_config
from pipeline.teacher import TeacherConfig
from pipeline.teacher.stage import run_teacher
from pipeline.testing import random_teacher, write_augmented, write_examples

pytestmark = pytest.mark.ray
INPUT = "augmented/train/tinybert"


def make(tmp_path, name):
    cfg = parse_config(
        {
            "name": "t",
            "task": "sst2",
            "seed": 1,
            "output_dir": str(tmp_path / name),
            "labels": ["negative", "positive"],
            "inputs": {s: {"path": "unused.tsv", "columns": {"text_a": "s", "label": "l"}} for s in ("train", "dev")},
        },
        check_files=False,
    )
    words = ["an", "honest", "effort", "with", "a", "few", "real", "laughs", "and", "one", "great", "scene"]
    rows = [
        {"example_id": f"e{i}", "text_a": " ".join(words[: 2 + i % 10]), "label": "positive", "label_id": 1}
        for i in range(61)
    ]
    write_augmented(tmp_path / name / INPUT, rows, part_rows=25)
    write_examples(tmp_path / name / "examples/dev", rows[:13])
    return cfg


def test_actor_pool_matches_local_and_skips_finished_shards(tmp_path, ray_local):
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    model = random_teacher(tmp_path / "tiny", "tiny", num_labels=2, seed=5, max_position_embeddings=64)
    tc = TeacherConfig(
        model=model,
        layers=[0, 3],
        max_length=32,
        token_budget=128,
        shard_rows=16,
        cpu_threads=1,
        workers=2,
        finetune={"enabled": False},
    )
    local_cfg, ray_cfg = make(tmp_path, "local"), make(tmp_path, "ray")
    run_teacher(local_cfg, tc, inputs=[INPUT], use_ray=False)
    torch.set_num_threads(before)
    result = run_teacher(ray_cfg, tc, inputs=[INPUT, "examples/dev"])  # Ray Data actor pool of 2
    assert result["inputs"][INPUT]["shards_computed"] == 4 and result["inputs"]["examples/dev"]["rows"] == 13
    local = open_cache(str(tmp_path / "local/teacher" / INPUT)).read_table()
    remote = open_cache(str(tmp_path / "ray/teacher" / INPUT)).read_table()
    assert remote.column("row").to_pylist() == list(range(61))
    assert remote.column("example_id").equals(local.column("example_id"))
    assert remote.column("input_ids").equals(local.column("input_ids"))
    np.testing.assert_allclose(
        np.stack(remote.column("logits").to_numpy(zero_copy_only=False)),
        np.stack(local.column("logits").to_numpy(zero_copy_only=False)),
        rtol=1e-4,
        atol=1e-6,
    )
    for layer in (0, 3):
        a = remote.column(f"hidden_{layer}").combine_chunks().flatten().to_numpy().astype(np.float32)
        b = local.column(f"hidden_{layer}").combine_chunks().flatten().to_numpy().astype(np.float32)
        np.testing.assert_allclose(a, b, rtol=2e-3, atol=2e-3)

    out = Path(tmp_path / "ray/teacher" / INPUT)
    (out / "shard-00002.parquet").unlink()
    stamps = {p.name: p.stat().st_mtime_ns for p in out.glob("shard-*.parquet")}
    again = run_teacher(ray_cfg, tc, inputs=[INPUT])["inputs"][INPUT]
    assert again["shards_computed"] == 1 and again["shards_reused"] == 3
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("shard-*.parquet") if p.name in stamps} == stamps
    assert open_cache(str(out)).read_table(["row"]).column("row").to_pylist() == list(range(61))
