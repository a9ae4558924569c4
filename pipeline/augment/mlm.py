"""Masked-language-model candidates for TinyBERT's augmentation, computed in batches.

For a word that is a single word piece the reference builds
``[CLS] pieces-with-that-piece-masked [SEP] pieces [SEP]`` (segment ids 0 then 1), cuts it to
the first 512 tokens (the second segment and its final ``[SEP]`` go first; a first segment of
512 or more fills the whole input with segment 0 and no ``[SEP]``), skips masks at position
512 or later, runs the MLM with batch size 1 and keeps the K=15 highest logits at the mask,
dropping tokens that start with ``##``. ``mlm_input="single"`` uses ``[CLS] masked [SEP]``.

Here every masked input of many sentences goes through the model together:

* inputs are sorted by length and cut into batches of at most ``batch_tokens`` (rows times
  longest row), so the rows of a batch (often all masks of one sentence) barely need padding;
* the encoder runs under ``torch.inference_mode()``; only the hidden states at the mask
  positions go through the MLM head, so the vocabulary projection costs one row per mask
  instead of one per token (falls back to the full logits when the head is not found);
* ``dtype="fp32"`` on a CPU runs the encoder's Linear layers through oneDNN with weights packed
  once (``mkldnn._linear_pointwise`` on dense activations, so no layout conversion per call), and
  the FFN's GELU fused into its first product where that gives the very same bits (checked at
  load): the same float32 arithmetic, about twice MKL's sgemm throughput on the AMD CPUs here
  (MKL does not use its best kernels on them); figures: docs/performance.md, "Roofline";
* ``dtype="bf16"`` runs the encoder under bfloat16 autocast and ``"int8"`` runs a dynamically
  quantised copy of its Linear layers; the head stays float32 in both.

Candidate tokens are returned sorted by token id: the set is what matters, and a canonical
order makes the uniform pick that follows independent of batch composition.
"""

from __future__ import annotations

import copy
import os
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from ..attention import variable_shape_attention

if TYPE_CHECKING:
    from transformers import PreTrainedModel

DTYPES = ("fp32", "bf16", "int8")
MLM_INPUTS = ("pair", "single")
_HEAD_NAMES = ("cls", "lm_head", "predictions")  # BERT, RoBERTa-like, ALBERT
_MAX_MEMO = 1_000_000


class MlmCandidates:
    """Top-k masked-LM candidates for masked single-piece words of many sentences at once.

    ``model`` is any ``AutoModelForMaskedLM`` and ``tokenizer`` its tokenizer (BERT-style
    CLS/SEP/MASK tokens, WordPiece continuation marker ``##``). The model is put in eval mode
    on ``device``; its weights are never changed (fp32 on a CPU and int8 run on copies).
    """

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer,
        *,
        device: str = "cpu",
        dtype: str = "fp32",
        num_threads: int | None = None,
    ):
        if dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {DTYPES}, got {dtype!r}")
        self.device = torch.device(device)
        if dtype == "int8" and self.device.type != "cpu":
            raise ValueError("int8 dynamic quantisation runs on the CPU only")
        if self.device.type == "cpu":
            torch.set_num_threads(_cpu_threads(num_threads))
        if None in (tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.mask_token_id):
            raise ValueError("the tokenizer needs CLS, SEP and MASK tokens")
        self.dtype = dtype
        self.tokenizer = tokenizer
        model = model.eval().to(self.device)
        head = _mask_head(model)
        if head is None:
            self._encoder, self._head = _with_dtype(model, dtype, self.device), None
        else:
            self._encoder, self._head = _with_dtype(model.base_model, dtype, self.device), head
        config = model.config
        self._token_types = getattr(config, "type_vocab_size", 0) >= 2
        self._max_positions = getattr(config, "max_position_embeddings", None) or 10**9
        self._cls, self._sep = tokenizer.cls_token_id, tokenizer.sep_token_id
        self._mask, self._pad = tokenizer.mask_token_id, tokenizer.pad_token_id or 0
        self._tokens = tokenizer.convert_ids_to_tokens(list(range(config.vocab_size)))
        self._dropped = np.array([t is None or t.startswith("##") for t in self._tokens])
        self._pieces: dict[str, list[int]] = {}

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str,
        *,
        device: str = "cpu",
        dtype: str = "fp32",
        num_threads: int | None = None,
    ) -> MlmCandidates:
        """Load an MLM and its tokenizer by hub id or local folder (weights in float32)."""
        from transformers import AutoModelForMaskedLM, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(name_or_path)
        model = AutoModelForMaskedLM.from_pretrained(name_or_path, dtype=torch.float32)
        return cls(model, tokenizer, device=device, dtype=dtype, num_threads=num_threads)

    def word_pieces(self, words: Sequence[str]) -> list[list[int]]:
        """The word-piece ids of each word (memoised per word type)."""
        missing = list(dict.fromkeys(w for w in words if w not in self._pieces))
        if missing:
            if len(self._pieces) + len(missing) > _MAX_MEMO:
                self._pieces.clear()
            encoded = self.tokenizer(missing, add_special_tokens=False)["input_ids"]
            self._pieces.update(zip(missing, encoded))
        return [self._pieces[w] for w in words]

    def candidates(
        self,
        sentences: Sequence[Sequence[int]],
        masks: Sequence[Sequence[int]],
        *,
        top_k: int = 15,
        mlm_input: str = "pair",
        max_seq_length: int = 512,
        batch_tokens: int = 8192,
    ) -> list[list[list[str]]]:
        """Candidate tokens for each masked piece.

        ``sentences[i]`` holds the piece ids of sentence i (no special tokens) and
        ``masks[i]`` the offsets of the pieces to mask one at a time. Returns, per sentence and
        mask, the tokens among the ``top_k`` highest logits that do not start with ``##``,
        sorted by token id; [] for a mask the truncated input cannot hold.
        """
        if mlm_input not in MLM_INPUTS:
            raise ValueError(f"mlm_input must be one of {MLM_INPUTS}, got {mlm_input!r}")
        max_len = min(max_seq_length, self._max_positions)
        out: list[list[list[str]]] = [[[] for _ in m] for m in masks]
        templates = {}
        jobs = []  # (length, sentence, mask index, mask position)
        for i, (pieces, offsets) in enumerate(zip(sentences, masks)):
            if not offsets:
                continue
            templates[i] = self._template(pieces, mlm_input, max_len)
            length = len(templates[i][0])
            limit = length if mlm_input == "pair" else length - 1  # the mask must be in the input
            for j, offset in enumerate(offsets):
                if offset + 1 < limit:
                    jobs.append((length, i, j, offset + 1))
        jobs.sort()
        # One batch in flight: the next batch is launched before the last one's results are
        # read back, so on a GPU the host's work overlaps the device's (on a CPU it is sequential).
        pending = None
        for batch in _batches(jobs, batch_tokens):
            launched = (batch, self._launch(batch, templates, top_k))
            if pending is not None:
                self._collect(*pending, out)
            pending = launched
        if pending is not None:
            self._collect(*pending, out)
        return out

    def _template(self, pieces: Sequence[int], mlm_input: str, max_len: int):
        """Token ids and segment ids of one sentence's input, before masking."""
        pieces = list(pieces)
        if mlm_input == "single":
            ids = [self._cls, *pieces[: max_len - 2], self._sep]
            return np.array(ids), np.zeros(len(ids), dtype=np.int64)
        ids = ([self._cls, *pieces, self._sep, *pieces, self._sep])[:max_len]
        first = min(len(pieces) + 2, max_len)
        types = np.zeros(len(ids), dtype=np.int64)
        types[first:] = 1
        return np.array(ids), types

    def _launch(self, batch, templates, top_k: int) -> torch.Tensor:
        """Start one batch; its ``top_k`` token ids per row (on the device, maybe not ready yet)."""
        rows, width = len(batch), batch[-1][0]
        host = np.zeros((3, rows, width), dtype=np.int64)  # ids, segment ids, attention
        ids, types, attention = host
        ids[:] = self._pad
        positions = np.empty(rows, dtype=np.int64)
        for r, (length, i, _, pos) in enumerate(batch):
            ids[r, :length], types[r, :length] = templates[i]
            attention[r, :length] = 1
            positions[r] = pos
        ids[np.arange(rows), positions] = self._mask
        stacked = self._to_device(host)
        inputs = {"input_ids": stacked[0], "attention_mask": stacked[2]}
        if self._token_types:
            inputs["token_type_ids"] = stacked[1]
        index = (torch.arange(rows, device=self.device), self._to_device(positions))
        with torch.inference_mode(), variable_shape_attention(self.device):
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.dtype == "bf16"):
                output = self._encoder(**inputs)
            if self._head is None:
                logits = output.logits[index].float()
            else:
                logits = self._head(output.last_hidden_state[index].float())
            return torch.topk(logits, min(top_k, logits.shape[-1]), dim=-1).indices

    def _to_device(self, array: np.ndarray) -> torch.Tensor:
        """A host array on the device; to a GPU from pinned memory, so the copy does not wait
        for the batch in flight (a copy from pageable memory synchronises)."""
        tensor = torch.from_numpy(array)
        if self.device.type != "cuda":
            return tensor.to(self.device)
        return tensor.pin_memory().to(self.device, non_blocking=True)

    def _collect(self, batch, top: torch.Tensor, out: list[list[list[str]]]) -> None:
        """Wait for a launched batch; its kept candidates, sorted by token id, into ``out``."""
        tokens, dropped = self._tokens, self._dropped
        for (_, i, j, _), row in zip(batch, top.cpu().numpy()):
            out[i][j] = [tokens[t] for t in np.sort(row[~dropped[row]])]


def _batches(jobs: list, batch_tokens: int):
    """Cut length-sorted jobs into batches of at most ``batch_tokens`` padded tokens."""
    batch: list = []
    for job in jobs:
        if batch and (len(batch) + 1) * job[0] > batch_tokens:
            yield batch
            batch = []
        batch.append(job)
    if batch:
        yield batch


def _mask_head(model: PreTrainedModel) -> nn.Module | None:
    """The module mapping last hidden states to vocabulary logits, checked on a tiny input."""
    head = next((getattr(model, n) for n in _HEAD_NAMES if isinstance(getattr(model, n, None), nn.Module)), None)
    if head is None or getattr(model, "base_model", model) is model:
        return None
    ids = torch.arange(1, 9, device=next(model.parameters()).device)[None] % model.config.vocab_size
    with torch.inference_mode():
        full = model(input_ids=ids).logits
        split = head(model.base_model(input_ids=ids).last_hidden_state)
    return head if full.shape == split.shape and torch.allclose(full, split, atol=1e-4, rtol=1e-4) else None


def _with_dtype(module: nn.Module, dtype: str, device: torch.device) -> nn.Module:
    """The module to run: a oneDNN copy for fp32 on a CPU, itself for bf16 (autocast at call
    time) or fp32 elsewhere, a dynamically quantised copy for int8.

    ``torch.ao.quantization`` is deprecated in favour of torchao; its warnings are silenced here.
    """
    if dtype == "bf16" or device.type != "cpu":
        return module
    if dtype == "fp32":
        if not torch.backends.mkldnn.is_available():
            return module
        try:
            return _packed_fp32(copy.deepcopy(module))
        except (AttributeError, RuntimeError):  # a torch build without these oneDNN ops: its public copy
            from torch.utils.mkldnn import to_mkldnn

            return to_mkldnn(copy.deepcopy(module))
    from torch.ao.quantization import quantize_dynamic

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return quantize_dynamic(module, {nn.Linear}, dtype=torch.qint8, inplace=False)


class _PackedLinear(nn.Module):
    """An ``nn.Linear`` run by oneDNN with its weight packed once, on dense activations (the output
    bits of ``torch.utils.mkldnn``'s copy without its two layout conversions per call); with
    ``gelu`` the exact (erf) GELU is applied by the same call."""

    def __init__(self, linear: nn.Linear, gelu: bool = False):
        super().__init__()
        self.out_features = linear.out_features
        weight = linear.weight.detach().float().contiguous()
        self.weight = torch.ops.mkldnn._reorder_linear_weight(weight, None)
        self.bias = None if linear.bias is None else linear.bias.detach().float().contiguous()
        self.attr, self.algorithm = ("gelu", "none") if gelu else ("none", "")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, x.shape[-1]).contiguous()
        out = torch.ops.mkldnn._linear_pointwise(flat, self.weight, self.bias, self.attr, [], self.algorithm)
        return out.reshape(*x.shape[:-1], self.out_features)


def _packed_fp32(module: nn.Module) -> nn.Module:
    """``module`` with every Linear packed for oneDNN (:class:`_PackedLinear`); a Linear followed by
    an exact GELU (BERT's intermediate layer: ``dense`` then ``intermediate_act_fn``) gets the GELU
    fused, where a sample gives bit-identical outputs to the two separate steps."""
    for parent in list(module.modules()):
        dense, act = getattr(parent, "dense", None), getattr(parent, "intermediate_act_fn", None)
        if isinstance(dense, nn.Linear) and isinstance(act, nn.Module) and _fuses_gelu(dense, act):
            parent.dense, parent.intermediate_act_fn = _PackedLinear(dense, gelu=True), nn.Identity()
    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.Linear):
                setattr(parent, name, _PackedLinear(child))
    return module


def _fuses_gelu(dense: nn.Linear, act: nn.Module) -> bool:
    """Whether oneDNN's fused GELU gives the bits of ``act(dense(x))`` (the float32 path) on a sample."""
    if getattr(act, "act", None) is not nn.functional.gelu:  # transformers' GELUActivation, erf form
        return False
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(64, dense.in_features, generator=generator) * 3
    with torch.inference_mode():
        from torch.utils.mkldnn import to_mkldnn

        expected = act(to_mkldnn(copy.deepcopy(dense))(x))
        return torch.equal(_PackedLinear(dense, gelu=True)(x), expected)


def _cpu_threads(requested: int | None) -> int:
    """Requested threads, else OMP_NUM_THREADS (Ray sets it per worker), else usable cores."""
    if requested:
        return requested
    env = os.environ.get("OMP_NUM_THREADS", "")
    return int(env) if env.isdigit() and int(env) > 0 else len(os.sched_getaffinity(0))
