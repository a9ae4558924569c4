"""The cache package stands alone: reading a cache imports no stage's heavy libraries (torch only
for tensors), the 0.1 import paths under ``pipeline.teacher`` still work for one release and warn,
and the project itself imports none of them. Each check runs in a fresh Python process, where
nothing is imported yet and a module-level warning is not spent."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pipeline.teacher import TeacherConfig
from pipeline.teacher.stage import run_teacher
from pipeline.testing import cache_job, random_teacher, write_examples

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("ray", "transformers", "spacy", "gensim", "nltk", "datasets")


def _python(code: str, *args: str) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args], capture_output=True, text=True, cwd=ROOT, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory, torch_one_thread_module):
    root = tmp_path_factory.mktemp("cache-package")
    model = random_teacher(root / "tiny", "tiny", num_labels=2, seed=2, max_position_embeddings=64)
    cfg = cache_job(root / "out")
    rows = [{"text_a": f"a {'fine' if i % 2 else 'dull'} film, take {i}", "label_id": i % 2} for i in range(9)]
    write_examples(root / "out" / "examples" / "train", rows)
    teacher = TeacherConfig(
        model=model,
        layers=[0, 2],
        attentions=[1],
        max_length=32,
        shard_rows=4,
        cpu_threads=1,
        finetune={"enabled": False},
    )
    run_teacher(cfg, teacher, inputs=["examples/train"], use_ray=False)
    return str(root / "out" / "teacher" / "examples" / "train")


@pytest.fixture(scope="module")
def torch_one_thread_module():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_reading_a_cache_imports_no_stage_library(cache_dir):
    done = _python(
        f"""
        import json, sys
        from pipeline.cache import open_cache, open_ensemble
        from pipeline.cache.check import main

        cache = open_cache(sys.argv[1])
        assert cache.read_table(["row", "logits", "hidden_2"]).num_rows == 9
        assert open_ensemble(sys.argv[1], verify="footer").logits().shape == (1, 9, 2)
        assert main([sys.argv[1]]) == 0
        # Arrow and NumPy only, so far: torch comes with tensors
        loaded = [m for m in ("torch", *{HEAVY!r}) if m in sys.modules]
        assert not loaded, loaded

        from pipeline.cache import CacheDataset

        batch = next(iter(CacheDataset(sys.argv[1], batch_size=4)))
        assert tuple(batch["hidden_2"].shape[::2]) == (4, 32), batch["hidden_2"].shape
        loaded = [m for m in {HEAVY!r} if m in sys.modules]
        assert not loaded, loaded
        print(json.dumps({{"torch": "torch" in sys.modules}}))
        """,
        cache_dir,
    )
    assert json.loads(done.stdout.splitlines()[-1]) == {"torch": True}


# (old module, name, the module that holds it now)
OLD_PATHS = [
    ("pipeline.teacher", "open_cache", "pipeline.cache.reader"),
    ("pipeline.teacher", "CacheError", "pipeline.cache.reader"),
    ("pipeline.teacher", "to_torch", "pipeline.cache.torch_dataset"),
    ("pipeline.teacher.cache", "TeacherCache", "pipeline.cache.reader"),
    ("pipeline.teacher.cache", "to_torch", "pipeline.cache.torch_dataset"),
    ("pipeline.teacher.torch_dataset", "CacheDataset", "pipeline.cache.torch_dataset"),
    ("pipeline.teacher.hf", "load_cache_dataset", "pipeline.cache.hf_dataset"),
    ("pipeline.teacher.ensemble", "open_ensemble", "pipeline.cache.ensemble"),
    ("pipeline.teacher.check", "main", "pipeline.cache.check"),
    ("pipeline.teacher.card", "render", "pipeline.cache.card"),
    ("pipeline.teacher.manifest", "MANIFEST_NAME", "pipeline.cache.manifest"),
    ("pipeline.teacher.manifest", "weights_sha256", "pipeline.teacher.model_files"),
    ("pipeline.teacher.layers", "tinybert_layers", "pipeline.cache.layers"),
    ("pipeline.teacher.rows", "hidden_column", "pipeline.cache.columns"),
    ("pipeline.teacher.shards", "inspect_shard", "pipeline.cache.shards"),
    ("pipeline.teacher.minilm", "read_layer", "pipeline.cache.minilm"),
]


def test_old_paths_still_work_and_warn(cache_dir):
    _python(
        f"""
        import importlib, sys, warnings

        for old, name, new in {OLD_PATHS!r}:
            if old != "pipeline.teacher":
                sys.modules.pop(old, None)  # imported again: its warning at import is given again
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                exec(f"from {{old}} import {{name}} as got")
            assert got is getattr(importlib.import_module(new), name), (old, name)
            ours = [w for w in caught if issubclass(w.category, DeprecationWarning) and "pipeline." in str(w.message)]
            assert len(ours) == 1 and "removed in the next release" in str(ours[0].message), (old, name, caught)
            assert ours[0].filename == "<string>", (old, ours[0].filename)  # the importer's line, not the alias's

        # what 0.1 kept beside the moved names still works, silently
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            from pipeline.teacher import TeacherConfig, run_teacher, tinybert_layers
            from pipeline.teacher.rows import round_mantissa
            from pipeline.teacher.shards import plan_shards
        """
    )
    for module, warned in (("pipeline.teacher.check", True), ("pipeline.cache.check", False)):
        done = subprocess.run(
            [sys.executable, "-m", module, cache_dir], capture_output=True, text=True, cwd=ROOT, timeout=300
        )
        assert done.returncode == 0 and json.loads(done.stdout)["rows"] == 9, done.stderr[-3000:]
        assert ("DeprecationWarning: pipeline.teacher.check is deprecated" in done.stderr) is warned, done.stderr


def test_the_project_imports_no_deprecated_path():
    """Every module of the package imported with the aliases' warnings as errors (the aliases and
    ``pipeline.__main__``, which runs the command line, left out)."""
    _python(
        """
        import importlib, pkgutil, warnings

        import pipeline

        warnings.filterwarnings("error", message=r"pipeline\\.teacher.* is deprecated", category=DeprecationWarning)
        aliases = {"cache", "torch_dataset", "hf", "ensemble", "check", "card", "manifest", "layers"}
        for info in pkgutil.walk_packages(pipeline.__path__, "pipeline."):
            parent, _, leaf = info.name.rpartition(".")
            if info.name == "pipeline.__main__" or (parent == "pipeline.teacher" and leaf in aliases):
                continue
            importlib.import_module(info.name)
        """
    )
