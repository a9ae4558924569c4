"""Attention kernels for inference on batches whose shapes keep changing.

On Hopper and newer GPUs, torch sends ``scaled_dot_product_attention`` with a padding mask (what
BERT-style models pass) to cuDNN first, and cuDNN builds an execution plan for every new
(batch, length) shape: milliseconds per layer and call. Length-sorted batches (the teacher's and
the MLM candidates') bring a new shape almost every batch, so that cost would come back all the
time. On an H100 (torch 2.11), a bf16 teacher's SDPA calls took 3.9 ms of host time each on a first
pass over new shapes against 0.13 ms on shapes seen before, and bf16 candidate generation ran no
faster than fp32 (which cuDNN attention does not take) on a first pass, but twice as fast on a
second pass over the same shapes. Flash and memory-efficient attention have no per-shape set-up.
With this context, the GPU tests (candidate parity, teacher shards) passed on an H100; its effect
on first-pass speed was not measured separately.
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
