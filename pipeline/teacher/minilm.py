"""MiniLM's teacher side in compact form: a layer's query / key / value projections, stored once per
cache folder (``minilm-layer-<L>.safetensors``) beside the per-row input hidden state of that layer
(``hidden_<L-1>``), instead of n x n relation maps per row and per head.

Q, K and V of row r are ``hidden_<L-1>[r] @ W^T + b`` (:func:`pipeline.student.minilm.project`), so
every MiniLM v1 / v2 relation of layer L, over any number of relation heads, is recomputed from
them; ``benchmarks/minilm_bytes.py`` measures the bytes per row against storing the maps and the
relations' error from the stored precision of the hidden state. safetensors holds tensors only: no
code is loaded.
"""

from __future__ import annotations

import hashlib

from .. import storage
from .errors import TeacherError
from .rows import hidden_column

WEIGHTS = ("query.weight", "query.bias", "key.weight", "key.bias", "value.weight", "value.bias")


def weights_name(layer: int) -> str:
    return f"minilm-layer-{layer}.safetensors"


def layer_weights(model_path: str, layer: int) -> dict:
    """The query / key / value ``nn.Linear`` weights of 1-based encoder layer ``layer``, float32."""
    import torch
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(model_path, dtype=torch.float32)
    layers = model.base_model.encoder.layer
    if not 1 <= layer <= len(layers):
        raise TeacherError(f"minilm_layers: the teacher has layers 1..{len(layers)}, not {layer}")
    attention = layers[layer - 1].attention.self
    state = attention.state_dict()
    missing = [k for k in WEIGHTS if k not in state]
    if missing:
        raise TeacherError(
            f"minilm_layers: layer {layer} of {model_path} has no {missing} (a BERT-style self-attention)"
        )
    return {k: state[k].detach().to(torch.float32).contiguous() for k in WEIGHTS}


def write_layer(folder: str, model_path: str, layer: int, heads: int) -> dict:
    """Write layer ``layer``'s projections into the cache folder; its manifest entry."""
    from safetensors.torch import save

    weights = layer_weights(model_path, layer)
    data = save(weights, metadata={"layer": str(layer), "heads": str(heads), "input": hidden_column(layer - 1)})
    name = weights_name(layer)
    with storage.atomic_output(storage.join(folder, name)) as out:
        out.write(data)
    return {
        "file": name,
        "bytes": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "input": hidden_column(layer - 1),
        "heads": heads,
        "hidden_size": int(weights["query.weight"].shape[0]),
    }


def read_layer(folder: str, entry: dict) -> dict:
    """A layer's projections as written (their SHA-256 checked against the manifest entry)."""
    from safetensors.torch import load

    path = storage.join(folder, entry["file"])
    filesystem, p = storage.resolve(path)
    with filesystem.open_input_stream(p) as f:
        data = f.read()
    if hashlib.sha256(data).hexdigest() != entry["sha256"]:
        raise TeacherError(f"{path}: SHA-256 differs from the manifest's (damaged or replaced)")
    return load(data)
