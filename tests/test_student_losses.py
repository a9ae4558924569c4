"""Distillation losses against values computed by hand."""

import math

import pytest
import torch

from pipeline.student.losses import (
    attention_mse,
    hard_cross_entropy,
    hidden_cosine,
    hidden_mse,
    logit_mse,
    mixed,
    prediction_loss,
    soft_cross_entropy,
)

LN1E = math.log(1 + math.e)  # 1.313262


def test_soft_cross_entropy_by_hand():
    # teacher uniform, student [1, 0]: -(0.5 log σ(1) + 0.5 log σ(-1)) = 0.5 (ln(1+e) - 1 + ln(1+e))
    s, t = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 0.0]])
    assert soft_cross_entropy(s, t).item() == pytest.approx(LN1E - 0.5, abs=1e-6)
    # T = 2 with a uniform student: cross-entropy ln 2 whatever the target, times T² = 4
    s, t = torch.tensor([[0.0, 0.0]]), torch.tensor([[math.log(3.0), 0.0]])
    assert soft_cross_entropy(s, t, temperature=2.0).item() == pytest.approx(4 * math.log(2), abs=1e-6)
    # T = 2, student [2, 0] → z/T = [1, 0]; teacher [ln 9, 0] → z/T = [ln 3, 0] → p = [0.75, 0.25]
    s, t = torch.tensor([[2.0, 0.0]]), torch.tensor([[math.log(9.0), 0.0]])
    by_hand = -(0.75 * (1 - LN1E) + 0.25 * (-LN1E)) * 4
    assert soft_cross_entropy(s, t, temperature=2.0).item() == pytest.approx(by_hand, abs=1e-5)


def test_logit_mse_and_hard_ce_by_hand():
    s, t = torch.tensor([[1.0, 2.0], [3.0, 4.0]]), torch.zeros(2, 2)
    assert logit_mse(s, t).item() == pytest.approx(7.5)
    logits = torch.tensor([[1.0, 0.0], [0.0, 5.0]])
    # row 2 unlabelled (-100): only row 1 counts, -log σ(1) = ln(1 + e^-1)
    assert hard_cross_entropy(logits, torch.tensor([0, -100])).item() == pytest.approx(LN1E - 1, abs=1e-6)
    assert hard_cross_entropy(logits, torch.tensor([-100, -100])).item() == 0.0


def test_mix_is_alpha_weighted():
    s, t, y = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 0.0]]), torch.tensor([0])
    hard, soft = LN1E - 1, LN1E - 0.5
    assert mixed(s, t, y, alpha=0.25).item() == pytest.approx(0.25 * hard + 0.75 * soft, abs=1e-6)
    assert prediction_loss("mix", s, t, y, alpha=1.0).item() == pytest.approx(hard, abs=1e-6)
    assert prediction_loss("mse", s, t, y).item() == pytest.approx(0.5)
    with pytest.raises(ValueError, match="unknown loss"):
        prediction_loss("kl", s, t, y)


def test_intermediate_losses_ignore_padding():
    student = torch.tensor([[[1.0, 1.0], [5.0, 5.0]]])  # token 2 is padding
    mask = torch.tensor([[1, 0]])
    assert hidden_mse(student, torch.zeros_like(student), mask).item() == pytest.approx(1.0)
    att_s = torch.tensor([[[[0.5, 0.5], [0.9, 0.1]]]])  # [B=1, heads=1, T=2, T=2]
    att_t = torch.tensor([[[[0.25, 0.75], [0.0, 1.0]]]])
    assert attention_mse(att_s, att_t, mask).item() == pytest.approx(0.0625)
    assert attention_mse(att_s, att_t, torch.tensor([[1, 1]])).item() == pytest.approx(
        (0.0625 + 0.0625 + 0.81 + 0.81) / 4
    )


def test_hidden_cosine_by_hand():
    """DistilBERT's loss: 1 - cos per real token, averaged over the real tokens only."""
    student = torch.tensor([[[1.0, 0.0], [1.0, 1.0], [5.0, 5.0]]])  # third token is padding
    teacher = torch.tensor([[[0.0, 2.0], [2.0, 2.0], [-1.0, 0.0]]])
    mask = torch.tensor([[1, 1, 0]])
    # token 1: orthogonal, 1 - 0 = 1; token 2: parallel, 1 - 1 = 0; mean over 2 real tokens = 0.5
    assert hidden_cosine(student, teacher, mask).item() == pytest.approx(0.5, abs=1e-6)
    # 45 degrees: 1 - 1/sqrt(2); scale does not matter
    s, t = torch.tensor([[[3.0, 0.0]]]), torch.tensor([[[1.0, 1.0]]])
    assert hidden_cosine(s, t, torch.ones(1, 1)).item() == pytest.approx(1 - 2**-0.5, abs=1e-6)
    # as torch's CosineEmbeddingLoss with target 1 on the masked-selected states (DistilBERT's code)
    g = torch.Generator().manual_seed(0)
    s, t = torch.randn(3, 5, 8, generator=g), torch.randn(3, 5, 8, generator=g)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]])
    keep = mask.bool()
    ref = torch.nn.CosineEmbeddingLoss()(s[keep], t[keep], torch.ones(int(keep.sum())))
    assert hidden_cosine(s, t, mask).item() == pytest.approx(ref.item(), abs=1e-6)


def test_intermediate_loss_choices():
    """hidden_layers: last takes the last student layer against its mapped teacher layer only and no
    embedding term; hidden_loss: cosine swaps the per-layer loss."""
    from types import SimpleNamespace

    from pipeline.student.bert import HiddenProjection, intermediate_loss

    g = torch.Generator().manual_seed(1)
    states = [torch.randn(2, 4, 6, generator=g) for _ in range(3)]  # embeddings + 2 student layers
    batch = {f"hidden_{k}": torch.randn(2, 4, 6, generator=g) for k in (0, 2, 4)}
    batch["attention_mask"] = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1]])
    out, proj, layer_map = SimpleNamespace(hidden_states=states), HiddenProjection(6, 6), [0, 2, 4]
    mask = batch["attention_mask"]
    tiny = intermediate_loss(out, batch, layer_map, proj, False)
    assert set(tiny) == {"embedding", "hidden"}
    assert tiny["hidden"].item() == pytest.approx(
        (hidden_mse(states[1], batch["hidden_2"], mask) + hidden_mse(states[2], batch["hidden_4"], mask)).item()
    )
    distil = intermediate_loss(out, batch, layer_map, proj, False, hidden_loss="cosine", hidden_layers="last")
    assert set(distil) == {"hidden"}
    assert distil["hidden"].item() == pytest.approx(hidden_cosine(states[2], batch["hidden_4"], mask).item())
