"""MiniLM's teacher side in compact form: a layer's query / key / value projections, stored once per
cache folder (``minilm-layer-<L>.safetensors``) beside the per-row input hidden state of that layer
(``hidden_<L-1>``), instead of n x n relation maps per row and per head.

Q, K and V of row r are ``hidden_<L-1>[r] @ W^T + b`` (:func:`pipeline.student.minilm.project`), so
every MiniLM v1 / v2 relation of layer L, over any number of relation heads, is recomputed from
them; ``benchmarks/minilm_bytes.py`` measures the bytes per row against storing the maps and the
relations' error from the stored precision of the hidden state. safetensors holds tensors only: no
code is loaded. This module reads the file; the teacher stage writes it (``pipeline/teacher/minilm.py``).
"""

from __future__ import annotations

import hashlib

from .. import storage

WEIGHTS = ("query.weight", "query.bias", "key.weight", "key.bias", "value.weight", "value.bias")


class MiniLMFileError(ValueError):
    """A projections file that is not the one the manifest records."""


def weights_name(layer: int) -> str:
    return f"minilm-layer-{layer}.safetensors"


def read_layer(folder: str, entry: dict) -> dict:
    """A layer's projections as written (their SHA-256 checked against the manifest entry)."""
    from safetensors.torch import load

    path = storage.join(folder, entry["file"])
    filesystem, p = storage.resolve(path)
    with filesystem.open_input_stream(p) as f:
        data = f.read()
    if hashlib.sha256(data).hexdigest() != entry["sha256"]:
        raise MiniLMFileError(f"{path}: SHA-256 differs from the manifest's (damaged or replaced)")
    return load(data)
