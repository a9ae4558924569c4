from pathlib import Path

import pytest
import yaml

from pipeline.config import ConfigError, load_config, parse_config
from pipeline.tasks import TASKS

ROOT = Path(__file__).resolve().parents[1]


def _write(tmp_path, job):
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(job), encoding="utf-8")
    return path


def test_valid_job_and_task_defaults(tmp_path, job_dict):
    cfg = load_config(_write(tmp_path, job_dict(task="mnli")))
    assert cfg.tinybert_n == TASKS["mnli"].tinybert_n == 10
    assert cfg.tang_n_iter == 10
    assert cfg.augment.tinybert.p == 0.4 and cfg.augment.tinybert.top_k == 15
    assert cfg.augment.tang.p_mask == 0.1 and cfg.augment.tang.p_ng == 0.25
    assert len(cfg.config_hash()) == 16


def test_explicit_n_overrides_task_default(tmp_path, job_dict):
    cfg = load_config(_write(tmp_path, job_dict(augment={"tinybert": {"n_aug": 3}, "tang": {"n_iter": 4}})))
    assert (cfg.tinybert_n, cfg.tang_n_iter) == (3, 4)


@pytest.mark.parametrize(
    "change, expected",
    [
        ({"bogus": 1}, "bogus: unknown key"),
        ({"seed": "abc"}, "seed: Input should be a valid integer"),
        ({"task": "imdb"}, "task: unknown task 'imdb'"),
        ({"labels": ["x"]}, "labels: labels must name at least two distinct labels"),
        ({"augment": {"tang": {"p_mask": 0.7, "p_pos": 0.6}}}, "augment.tang: p_mask + p_pos must be at most 1"),
        ({"augment": {"tinybert": {"p": 1.5}}}, "augment.tinybert.p: Input should be less than or equal to 1"),
        ({"augment": {"splits": ["dev"]}}, "augment.splits names 'dev'"),
        ({"ingest": {"too_long": "cut"}}, "ingest.too_long: Input should be 'reject' or 'truncate'"),
    ],
)
def test_bad_values_name_file_and_key(tmp_path, job_dict, change, expected):
    path = _write(tmp_path, job_dict(**change))
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    assert str(path) in str(exc.value)
    assert expected in str(exc.value)


def test_missing_required_key(tmp_path, job_dict):
    job = job_dict()
    del job["output_dir"]
    with pytest.raises(ConfigError, match="output_dir: required key is missing"):
        load_config(_write(tmp_path, job))


def test_missing_input_file_fails_before_work(tmp_path, job_dict):
    job = job_dict()
    job["inputs"]["dev"] = {"path": str(tmp_path / "nope.tsv"), "columns": {"text_a": "sentence"}}
    with pytest.raises(ConfigError, match=r"inputs.dev.path: no such file .*nope.tsv"):
        load_config(_write(tmp_path, job))


def test_unknown_format_extension(tmp_path, job_dict):
    job = job_dict()
    job["inputs"]["train"]["path"] = "corpus.txt"
    with pytest.raises(ConfigError, match="cannot tell the format of 'corpus.txt'"):
        parse_config(job, "x.yaml", check_files=False)


def test_not_yaml_and_not_mapping(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1, 2\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    bad.write_text("- 1\n- 2\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_config(bad)


@pytest.mark.parametrize("name", ["demo.yaml", "rt-polarity.yaml"])
def test_shipped_jobs_are_valid(name, monkeypatch):
    monkeypatch.chdir(ROOT)
    cfg = load_config(ROOT / "jobs" / name)
    assert cfg.inputs["train"].resolved_format == "tsv"


def test_the_chinese_job_is_valid(monkeypatch):
    """jobs/zh-reviews.yaml (its data and teacher are written by data/make_zh_*.py, not committed)."""
    monkeypatch.chdir(ROOT)
    cfg = load_config(ROOT / "jobs" / "zh-reviews.yaml", check_files=False)
    assert cfg.language == "zh" and cfg.augment.methods == ["tang"] and cfg.teacher is not None


def test_a_key_given_twice_is_refused_with_its_line(tmp_path, job_dict):
    path = _write(tmp_path, job_dict())
    path.write_text(path.read_text(encoding="utf-8") + "seed: 5\nseed: 6\n", encoding="utf-8")
    with pytest.raises(
        ConfigError,
        match=r"job.yaml: not valid YAML: the key 'seed' is given twice in one mapping "
        r"\(first on line \d+\)[\s\S]*line \d+",
    ):
        load_config(path)


def test_an_alias_bomb_is_refused_at_once(tmp_path, job_dict):
    """Nine levels of nine-way aliases stand for 9^9 values: refused before anything walks them."""
    import time

    lines = ["a0: &a0 [x, y]"] + [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
    path = _write(tmp_path, job_dict())
    path.write_text(
        "\n".join(lines) + "\n" + path.read_text(encoding="utf-8").replace("labels:", "labels: *a9\nx_labels:"),
        encoding="utf-8",
    )
    started = time.perf_counter()
    with pytest.raises(ConfigError, match="refused: its aliases expand to more than 100,000 values") as info:
        load_config(path)
    assert time.perf_counter() - started < 5 and len(str(info.value)) < 300
    # aliases that stay small are fine
    small = _write(tmp_path, job_dict())
    small.write_text("x: &labels [negative, positive]\n" + small.read_text(encoding="utf-8"), encoding="utf-8")
    with pytest.raises(ConfigError, match="x: unknown key"):  # parsed; only the extra key is wrong
        load_config(small)


def test_a_huge_bad_value_is_not_echoed_whole(tmp_path, job_dict):
    path = _write(tmp_path, job_dict(seed="z" * 100_000))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert "seed: Input should be a valid integer" in str(info.value) and len(str(info.value)) < 1000


@pytest.mark.parametrize(
    "change, expected",
    [
        (
            {"inputs": {"train": {"path": "x.tsv", "limit": True, "columns": {"text_a": "s"}}}},
            "inputs.train.limit: Input should be a valid integer",
        ),
        ({"seed": "3"}, "seed: Input should be a valid integer"),
        ({"augment": {"tinybert": {"p": True}}}, "augment.tinybert.p: Value error, expected a number, got bool"),
        (
            {"augment": {"tinybert": {"do_lower_case": 1}}},
            "augment.tinybert.do_lower_case: Input should be a valid boolean",
        ),
        ({"ingest": {"strict": "yes"}}, "ingest.strict: Input should be a valid boolean"),
        ({"teacher": {"finetune": {"lr": "1e-4"}}}, "teacher.finetune.lr: Value error, expected a number, got str"),
    ],
)
def test_types_are_strict(job_dict, change, expected):
    with pytest.raises(ConfigError) as info:
        parse_config(job_dict(**change), "job.yaml", check_files=False)
    assert expected.replace("Value error, ", "") in str(info.value), str(info.value)


def test_numbers_keep_their_natural_forms(job_dict):
    cfg = parse_config(job_dict(seed=7, augment={"tinybert": {"p": 1, "n_aug": 3}}), "job.yaml", check_files=False)
    assert cfg.seed == 7 and cfg.augment.tinybert.p == 1.0 and cfg.tinybert_n == 3


def test_validate_names_missing_glove_and_model_paths(tmp_path, job_dict):
    job = job_dict(
        augment={"tinybert": {"glove": {"path": str(tmp_path / "nope.txt")}}},
        teacher={"model": "./no-such-teacher"},
        student={
            "runs": [{"name": "s", "model": "bilstm", "data": "examples/train"}],
            "dev_split": "train",
            "test_split": None,
            "bilstm": {"glove": "/no/such/glove.txt"},
        },
    )
    with pytest.raises(ConfigError) as info:
        load_config(_write(tmp_path, job))
    text = str(info.value)
    assert f"augment.tinybert.glove.path: no such file or folder '{tmp_path / 'nope.txt'}'" in text
    assert "teacher.model: no such file or folder './no-such-teacher'" in text
    assert "student.bilstm.glove: no such file or folder '/no/such/glove.txt'" in text
    # a hub id is looked up when the stage loads it, not here
    load_config(
        _write(
            tmp_path,
            job_dict(
                teacher={"model": "bert-base-uncased"},
                augment={"tinybert": {"mlm": "google/bert_uncased_L-2_H-128_A-2"}},
            ),
        )
    )
