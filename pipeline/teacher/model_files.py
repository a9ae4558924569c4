"""A teacher model's folder: where it is on this node, and content hashes of its weight and
tokenizer files (the manifest's ``teacher.weights_sha256`` and ``tokenizer.sha256``)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".h5", ".msgpack")
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    "spiece.model",
    "sentencepiece.bpe.model",
)


class ModelSourceError(RuntimeError):
    pass


def _hash_files(folder: Path, names: list[str]) -> str:
    h = hashlib.sha256()
    for name in sorted(names):
        h.update(name.encode() + b"\0")
        with open(folder / name, "rb") as fh:
            while chunk := fh.read(8 << 20):
                h.update(chunk)
        h.update(b"\0")
    return h.hexdigest()


def weights_sha256(model_dir: str) -> str:
    """SHA-256 over the names and bytes of the weight files in a model folder."""
    folder = Path(model_dir)
    names = [p.name for p in folder.iterdir() if p.is_file() and p.name.endswith(WEIGHT_SUFFIXES)]
    if not names:
        raise ModelSourceError(f"{model_dir}: no weight files ({', '.join(WEIGHT_SUFFIXES)})")
    return _hash_files(folder, names)


def tokenizer_sha256(model_dir: str) -> str:
    folder = Path(model_dir)
    return _hash_files(folder, [n for n in TOKENIZER_FILES if (folder / n).is_file()])


def local_model_dir(source: str) -> str:
    """A local folder holding the model: the folder itself, a hub snapshot, or a copy of a URI."""
    if "://" in source:
        from ..assets import local_copy

        return local_copy(source)
    if os.path.isdir(source):
        return os.path.abspath(source)
    if os.path.exists(source) or source.startswith((".", "/", "~")) or source.count("/") > 1:
        raise ModelSourceError(f"teacher model {source!r} is not a folder (and not a hub id)")
    try:
        from huggingface_hub import snapshot_download

        return snapshot_download(source)
    except Exception as exc:
        raise ModelSourceError(
            f"cannot fetch the teacher {source!r} from the Hugging Face hub "
            f"({type(exc).__name__}: {exc}); give a local folder instead"
        ) from None
