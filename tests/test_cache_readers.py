"""Other people's readers on a default cache: pyarrow, pandas, polars, DuckDB and Hugging Face
``datasets`` read every column and agree on every value; the dataset card is what ``datasets``
reads; ``python -m pipeline.cache.check`` names what is wrong with a cache or its card."""

import gc
import json
import shutil

import numpy as np
import pyarrow as pa
import pytest
import torch

from pipeline.augment.stage import make_methods, recorded_settings
from pipeline.cache import card, open_cache
from pipeline.cache.card import CARD_NAME, parse
from pipeline.cache.check import main as check_main
from pipeline.teacher import TeacherConfig
from pipeline.teacher.stage import _lineage, run_teacher
from pipeline.testing import cache_job, random_teacher, record_augmentation, write_augmented

INPUT = "augmented/train/tang"
ROWS = 23
LICENSE = "cc-by-4.0"


def _job(root, **train):
    return cache_job(root / "out", seed=4, **train)


def _teacher(model, **kw):
    # the defaults of the stage (float16 encoding, mantissa bits) but for the sizes of a tiny test
    return TeacherConfig(
        model=model,
        layers=[0, 2],
        attentions=[1],
        max_length=32,
        token_budget=64,
        shard_rows=10,
        cpu_threads=1,
        row_group_bytes=1 << 12,
        finetune={"enabled": False},
        **kw,
    )


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("readers")
    model = random_teacher(root / "tiny", "tiny", num_labels=2, seed=5, max_position_embeddings=64)
    cfg = _job(root, license=LICENSE)
    rows = [
        {
            "text_a": f"{'a fine' if i % 2 else 'a dull'} film, take {i}" + " again" * (i % 5),
            "text_b": None if i % 3 else f"said the critic {i}",
            "label": ["negative", "positive"][i % 2] if i % 4 else None,
            "label_id": i % 2 if i % 4 else None,
        }
        for i in range(ROWS)
    ]
    write_augmented(root / "out" / INPUT, rows, part_rows=9)
    record_augmentation(root / "out" / INPUT, cfg, "tang")  # the summary the augment stage would leave
    run_teacher(cfg, _teacher(model), inputs=[INPUT], use_ray=False)
    torch.set_num_threads(before)
    return {"root": root, "model": model, "cfg": cfg, "dir": str(root / "out" / "teacher" / INPUT)}


@pytest.fixture(scope="module")
def reference(built):
    """Every column as pyarrow reads it, row by row in the cache's order."""
    table = open_cache(built["dir"]).read_table()
    assert table.num_rows == ROWS and table.column("row").to_pylist() == list(range(ROWS))
    return table


def _same(name: str, got: dict[str, list], reference: pa.Table) -> None:
    """``got``: column -> values per row (numbers as Python or NumPy values), in row order."""
    assert set(got) == set(reference.column_names), name
    for column in reference.column_names:
        want, values = reference.column(column).to_pylist(), list(got[column])
        assert len(values) == len(want), (name, column)
        for r, (a, b) in enumerate(zip(values, want)):
            if isinstance(b, list):
                assert a is not None and len(a) == len(b), (name, column, r)
                if b and isinstance(b[0], float):  # float16 / float32 compared as float32, bit for bit
                    np.testing.assert_array_equal(np.asarray(a, np.float32), np.asarray(b, np.float32))
                else:
                    assert [int(x) for x in a] == b, (name, column, r)
            elif b is None:
                assert a is None or (isinstance(a, float) and np.isnan(a)), (name, column, r, a)
            else:
                assert a == b, (name, column, r, a, b)


def test_default_cache_has_the_columns_of_the_matrix(reference):
    names = set(reference.column_names)
    assert {"text_a", "text_b", "label_id", "input_ids", "token_type_ids", "logits"} <= names
    assert {"hidden_0", "hidden_2", "attention_1"} <= names
    assert reference.schema.field("hidden_2").type == pa.list_(pa.float16())
    assert reference.column("text_b").null_count > 0 and reference.column("label_id").null_count > 0


def test_pandas(built, reference):
    import pandas as pd

    df = pd.read_parquet(open_cache(built["dir"]).files).sort_values("row")
    got = {c: [None if v is None or (isinstance(v, float) and np.isnan(v)) else v for v in df[c]] for c in df}
    _same("pandas", got, reference)


def test_polars(built, reference):
    pl = pytest.importorskip("polars")
    df = pl.read_parquet(open_cache(built["dir"]).files).sort("row")
    assert df.schema["hidden_2"] == pl.List(pl.Float16)
    _same("polars", {c: df[c].to_list() for c in df.columns}, reference)


def test_duckdb(built, reference):
    duckdb = pytest.importorskip("duckdb")
    files = open_cache(built["dir"]).files
    rel = duckdb.connect().execute("select * from read_parquet(?) order by row", [files])
    names = [d[0] for d in rel.description]
    rows = rel.fetchall()
    _same("duckdb", {n: [r[i] for r in rows] for i, n in enumerate(names)}, reference)


def test_datasets_from_the_folder(built, reference, tmp_path):
    """``load_dataset(DIR)``: the card's configs name the shards (not manifest.json or _tasks/), its
    features are the ones datasets infers from the shards, its split the corpus's."""
    datasets = pytest.importorskip("datasets")
    ds = datasets.load_dataset(built["dir"], cache_dir=str(tmp_path / "hf"))
    assert list(ds) == ["train"]
    train = ds["train"]
    card = parse(open(f"{built['dir']}/{CARD_NAME}").read())
    assert datasets.Features._from_yaml_list(card["dataset_info"]["features"]) == train.features
    assert train.features["hidden_2"] == datasets.List(datasets.Value("float16"))
    assert train.features["logits"] == datasets.List(datasets.Value("float32"), length=2)
    assert train.info.splits["train"].num_examples == ROWS
    _same("datasets", {c: train[c] for c in train.column_names}, reference)


def test_load_cache_dataset(built, reference, tmp_path):
    pytest.importorskip("datasets")
    from pipeline.cache import load_cache_dataset

    ds = load_cache_dataset(built["dir"], cache_dir=str(tmp_path / "hf"))
    manifest = json.loads(ds.info.description)
    assert manifest == open_cache(built["dir"]).manifest and ds.info.license == LICENSE
    assert ds.info.dataset_name == INPUT and len(ds) == ROWS
    row = ds.with_format("torch")[3]
    assert row["logits"].dtype == torch.float32 and row["logits"].shape == (2,)
    # datasets' torch format widens float16 to float32 (exactly: every float16 is a float32)
    hidden = row["hidden_2"].reshape(int(row["num_tokens"]), manifest["hidden_size"])
    want = np.asarray(reference.column("hidden_2")[3].values, np.float16).reshape(hidden.shape)
    np.testing.assert_array_equal(hidden.numpy(), want.astype(np.float32))
    assert ds.features["hidden_2"].feature.dtype == "float16"

    stream = load_cache_dataset(built["dir"], streaming=True)
    assert json.loads(stream.info.description)["cache_key"] == manifest["cache_key"]
    got = list(stream)  # read to the end: an unfinished streaming iterator can abort Python at exit
    del stream
    gc.collect()
    assert [r["row"] for r in got] == list(range(ROWS))
    np.testing.assert_array_equal(np.asarray(got[5]["logits"], np.float32), reference.column("logits")[5].as_py())


def test_byte_stream_split_readers(built, tmp_path, torch_one_thread):
    """The smaller option: every reader of the matrix but DuckDB 2.0 decodes it."""
    duckdb = pytest.importorskip("duckdb")
    pl = pytest.importorskip("polars")
    root = tmp_path
    cfg = _job(root)
    shutil.copytree(built["root"] / "out" / INPUT, root / "out" / INPUT)
    run_teacher(cfg, _teacher(built["model"], float16_encoding="byte_stream_split"), inputs=[INPUT], use_ray=False)
    cache = open_cache(str(root / "out" / "teacher" / INPUT))
    assert "hidden_2.list.element" in cache.manifest["encoding"]["byte_stream_split"]
    default = open_cache(built["dir"]).read_table()
    assert cache.read_table().column("hidden_2").equals(default.column("hidden_2"))  # same values either way
    assert pl.read_parquet(cache.files).sort("row")["hidden_2"].to_list() == default.column("hidden_2").to_pylist()
    with pytest.raises(duckdb.Error, match="BYTE_STREAM_SPLIT"):
        duckdb.connect().execute("select hidden_2 from read_parquet(?)", [cache.files]).fetchall()


# the dataset card and the check ---------------------------------------------------------------


def test_card_header_and_lineage(built):
    text = open(f"{built['dir']}/{CARD_NAME}").read()
    head = parse(text)
    manifest = open_cache(built["dir"]).manifest
    assert head["license"] == LICENSE
    assert head["configs"] == [
        {"config_name": "default", "data_files": [{"split": "train", "path": "shard-*.parquet"}]}
    ]
    meta = head["kd_teacher_cache"]
    assert meta["cache_key"] == manifest["cache_key"] and meta["layers"] == [0, 2] and meta["attentions"] == [1]
    assert meta["teacher"]["weights_sha256"] == manifest["teacher"]["weights_sha256"]
    lineage = meta["lineage"]
    assert lineage["job"]["config_hash"] == built["cfg"].config_hash()
    assert lineage["augmentation"]["method"] == "tang" and lineage["augmentation"]["settings"]["p_mask"] == 0.1
    # as the corpus's summary records them (the augment stage's settings and their hash)
    recorded = json.loads((built["root"] / "out" / INPUT / "_summary.json").read_text())
    assert lineage["augmentation"] == {
        "method": "tang",
        "settings": recorded["settings"],
        "hash": recorded["settings_hash"],
    }
    # the hash follows the augmentation settings, and only them
    other = built["cfg"].model_copy(
        update={
            "augment": built["cfg"].augment.model_copy(
                update={"tang": built["cfg"].augment.tang.model_copy(update={"p_mask": 0.2})}
            )
        }
    )

    def settings_hash(cfg):
        return recorded_settings(cfg, make_methods(cfg, ["tang"], "local")["tang"])["settings_hash"]

    assert settings_hash(other) != lineage["augmentation"]["hash"]
    assert settings_hash(built["cfg"]) == lineage["augmentation"]["hash"]
    # read from the corpus on disk, not from the job: the same corpus has the same lineage
    assert _lineage(other, INPUT)["augmentation"] == lineage["augmentation"]
    assert "augmentation" not in _lineage(built["cfg"], "examples/train")


def test_lineage_of_a_corpus_without_recorded_settings(built, tmp_path):
    """An augmented corpus whose summary records no settings (written before 0.2, or by hand): the
    cache names its method only, and its card says the settings are not recorded."""
    cfg = _job(tmp_path)
    write_augmented(tmp_path / "out" / INPUT, [{"text_a": "a film"}])
    lineage = _lineage(cfg, INPUT)
    assert lineage["augmentation"] == {"method": "tang"}
    manifest = {**open_cache(built["dir"]).manifest, "lineage": lineage}
    text = card.render(manifest, open_cache(built["dir"]).schema, 1)
    assert "- Augmentation: `tang` (its settings are not recorded with the corpus)." in text
    assert card.card_problems(text, manifest, open_cache(built["dir"]).schema, 1) == []


def test_card_is_the_same_on_a_rerun(built, torch_one_thread):
    before = open(f"{built['dir']}/{CARD_NAME}", "rb").read()
    summary = run_teacher(built["cfg"], _teacher(built["model"]), inputs=[INPUT], use_ray=False)
    assert summary["inputs"][INPUT]["shards_reused"] == summary["inputs"][INPUT]["shards"]
    assert open(f"{built['dir']}/{CARD_NAME}", "rb").read() == before


def test_check_passes_a_good_cache(built, capsys):
    assert check_main([built["dir"]]) == 0
    assert json.loads(capsys.readouterr().out)["rows"] == ROWS


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (
            lambda t: t.replace("  - name: hidden_2\n    list: float16", "  - name: hidden_2\n    list: float32"),
            "dataset_info.features: 'hidden_2' is list<float32> in the card, list<float16> in the shards",
        ),
        (lambda t: t.replace(f"num_examples: {ROWS}", f"num_examples: {ROWS + 1}"), "dataset_info.splits:"),
        (lambda t: t.replace(f"license: {LICENSE}", "license: mit"), "license: 'mit' in the card, 'cc-by-4.0'"),
        (
            lambda t: t.replace("  - name: attention_1\n    list: float16\n", ""),
            "dataset_info.features: no 'attention_1'",
        ),
        (lambda t: t.replace("    p_mask: 0.1", "    p_mask: 0.3"), "kd_teacher_cache.lineage:"),
        (lambda t: t[4:], "no YAML header"),
        (lambda t: t.replace("configs:", "configs: [", 1), "the YAML header does not parse"),
        (None, "README.md: missing"),
    ],
)
def test_check_names_what_is_wrong_with_the_card(built, tmp_path, capsys, edit, expected):
    folder = tmp_path / "cache"
    shutil.copytree(built["dir"], folder)
    card = folder / CARD_NAME
    if edit is None:
        card.unlink()
    else:
        edited = edit(card.read_text())
        assert edited != card.read_text()
        card.write_text(edited)
    assert check_main([str(folder)]) == 1
    err = capsys.readouterr().err
    assert expected in err and str(card) in err, err


def test_check_names_a_damaged_shard(built, tmp_path, capsys):
    folder = tmp_path / "cache"
    shutil.copytree(built["dir"], folder)
    shard = folder / "shard-00001.parquet"
    data = bytearray(shard.read_bytes())
    data[100:116] = bytes(16)
    shard.write_bytes(bytes(data))
    assert check_main([str(folder)]) == 1
    assert "shard-00001.parquet" in capsys.readouterr().err
