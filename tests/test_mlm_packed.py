"""The fp32 CPU encoder of MlmCandidates (oneDNN, weights packed once, GELU fused) gives the very
bits of the former ``torch.utils.mkldnn`` copy, so candidate sets cannot move."""

import copy

import pytest
import torch
from transformers import BertConfig, BertForMaskedLM

from pipeline.augment.mlm import _packed_fp32, _PackedLinear

pytestmark = pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="no oneDNN in this torch")


def test_packed_encoder_gives_the_bits_of_the_mkldnn_copy():
    from torch.utils.mkldnn import to_mkldnn

    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=500, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=256
    )
    encoder = BertForMaskedLM(config).eval().base_model
    packed = _packed_fp32(copy.deepcopy(encoder))
    fused = [m for m in packed.modules() if isinstance(m, _PackedLinear) and m.attr == "gelu"]
    assert len(fused) == config.num_hidden_layers  # every intermediate layer's GELU fused
    assert not any(isinstance(m, torch.nn.Linear) for m in packed.modules())
    ids = torch.randint(5, 500, (7, 19))
    mask = torch.ones_like(ids)
    mask[3:, 12:] = 0  # padded rows
    types = torch.zeros_like(ids)
    types[:, 9:] = 1
    with torch.inference_mode():
        want = to_mkldnn(copy.deepcopy(encoder))(input_ids=ids, attention_mask=mask, token_type_ids=types)
        got = packed(input_ids=ids, attention_mask=mask, token_type_ids=types)
    assert torch.equal(got.last_hidden_state, want.last_hidden_state)


def test_a_non_gelu_activation_is_not_fused():
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=100,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        hidden_act="gelu_new",  # the tanh form: oneDNN's fused GELU is the erf one
    )
    packed = _packed_fp32(copy.deepcopy(BertForMaskedLM(config).eval().base_model))
    assert not any(isinstance(m, _PackedLinear) and m.attr == "gelu" for m in packed.modules())
    assert any(isinstance(m, _PackedLinear) for m in packed.modules())
