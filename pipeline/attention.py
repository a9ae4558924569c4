"""Attention kernels for inference on batches whose shapes keep changing.

On Hopper and newer GPUs, torch sends ``scaled_dot_product_attention`` with a padding mask (what
BERT-style models pass) to cuDNN first, and cuDNN builds an execution plan for every new
(batch, length) shape: milliseconds per layer and call. Length-sorted batches (the teacher's and
the MLM candidates') bring a new shape almost every batch, so that cost would come back all the
time; flash and memory-efficient attention have no per-shape set-up (figures: docs/performance.md).
"""

from __future__ import annotations

import contextlib

import torch


def variable_shape_attention(device: torch.device):
    """A context in which SDPA on ``device`` skips cuDNN's per-shape plans (no-op off CUDA)."""
    if device.type != "cuda":
        return contextlib.nullcontext()
    from torch.nn.attention import SDPBackend, sdpa_kernel

    return sdpa_kernel([SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH])
