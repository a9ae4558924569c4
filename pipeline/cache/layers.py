"""Which teacher layers a cache stores, and how they are numbered (the manifest's ``layer_rule``).

Hidden state 0 is the embeddings output and hidden state L (1..N) the output of transformer
layer L, as in Hugging Face's ``hidden_states``. Attention maps are numbered 1..N.

The TinyBERT mapping: a student of M layers learns from teacher layers g(m) = m·N/M, m = 0..M
(the paper's uniform strategy, 0,3,6,9,12 for M=4 and N=12). When N/M is not whole, g(m) is
rounded half up, computed exactly in integers as (2·m·N + M) // (2·M): N=6 gives 0,2,3,5,6;
N=24 gives 0,6,12,18,24. A teacher shallower than the student gives each layer once. The teacher
stage chooses the layers it stores by this rule and a student maps its layers to them by it.
"""

from __future__ import annotations


class LayerError(ValueError):
    pass


def tinybert_layers(teacher_layers: int, student_layers: int = 4) -> list[int]:
    """The uniform TinyBERT layer mapping, embeddings (0) included."""
    if teacher_layers < 1 or student_layers < 1:
        raise LayerError(f"layer counts must be positive, got teacher {teacher_layers}, student {student_layers}")
    n, m = teacher_layers, student_layers
    return sorted({(2 * i * n + m) // (2 * m) for i in range(m + 1)})


def resolve_layers(layers, teacher_layers: int, student_layers: int = 4) -> list[int]:
    """``layers`` from the config ("tinybert" or a list) checked against the teacher's depth."""
    chosen = tinybert_layers(teacher_layers, student_layers) if layers == "tinybert" else sorted(layers)
    bad = [x for x in chosen if not 0 <= x <= teacher_layers]
    if bad:
        raise LayerError(f"layers {bad} do not exist: the teacher has hidden states 0..{teacher_layers}")
    return chosen


def resolve_attentions(attentions, teacher_layers: int) -> list[int]:
    chosen = sorted(attentions)
    bad = [x for x in chosen if not 1 <= x <= teacher_layers]
    if bad:
        raise LayerError(f"attentions {bad} do not exist: the teacher has attention layers 1..{teacher_layers}")
    return chosen
