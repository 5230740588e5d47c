"""Choosing the torch device and dtype for local models from the pipeline's `device` setting."""

from __future__ import annotations

from typing import Any


def resolve_device(device: str = "auto") -> str:
    """`auto` becomes cuda or mps where available, else cpu; anything else is returned as is."""
    if device != "auto":
        return device
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def default_dtype(device: str) -> Any:
    """bf16 on a GPU that supports it, fp32 elsewhere (CPU bf16 matmuls are slow on most CPUs)."""
    import torch

    if device == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32
