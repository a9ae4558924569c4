"""MiniLM's teacher side, written: a layer's query / key / value projections taken from the teacher
and stored once per cache folder. The file's format and its reader: :mod:`pipeline.cache.minilm`
(whose names are still importable from here for one release, with a DeprecationWarning).
"""

from __future__ import annotations

import hashlib
import warnings
from typing import Any

from .. import storage
from ..cache import minilm as _format
from ..cache.columns import hidden_column
from .errors import TeacherError

# moved to pipeline.cache.minilm; referenced through _format here so that the old import path warns
_MOVED = ("WEIGHTS", "weights_name", "read_layer")


def __getattr__(name: str) -> Any:
    if name in _MOVED:
        warnings.warn(
            f"pipeline.teacher.minilm.{name} is deprecated: import it from pipeline.cache.minilm "
            "(the old path is removed in the next release)",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(_format, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
    missing = [k for k in _format.WEIGHTS if k not in state]
    if missing:
        raise TeacherError(
            f"minilm_layers: layer {layer} of {model_path} has no {missing} (a BERT-style self-attention)"
        )
    return {k: state[k].detach().to(torch.float32).contiguous() for k in _format.WEIGHTS}


def write_layer(folder: str, model_path: str, layer: int, heads: int) -> dict:
    """Write layer ``layer``'s projections into the cache folder; its manifest entry."""
    from safetensors.torch import save

    weights = layer_weights(model_path, layer)
    data = save(weights, metadata={"layer": str(layer), "heads": str(heads), "input": hidden_column(layer - 1)})
    name = _format.weights_name(layer)
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
