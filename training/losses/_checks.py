"""Input checks shared by the loss modules (kornia style: fail early with one clear line)."""

from __future__ import annotations

from typing import Sequence

import torch


def check_image(x: object, name: str = "input", channels: int | None = None) -> torch.Tensor:
    """Check that ``x`` is a floating ``(B, C, H, W)`` tensor (optionally with ``channels`` channels)."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim != 4:
        raise ValueError(f"{name} must have shape (B, C, H, W), got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got {x.dtype}")
    if channels is not None and x.shape[1] != channels:
        raise ValueError(f"{name} must have {channels} channels, got shape {tuple(x.shape)}")
    return x


def check_pair(pred: object, target: object, channels: int | None = None) -> None:
    """Check two ``(B, C, H, W)`` floating tensors of identical shape."""
    check_image(pred, "pred", channels)
    check_image(target, "target", channels)
    assert isinstance(pred, torch.Tensor) and isinstance(target, torch.Tensor)
    if pred.shape != target.shape:
        raise ValueError(f"pred and target must have the same shape, got {tuple(pred.shape)} "
                         f"and {tuple(target.shape)}")


def check_choice(value: str, choices: Sequence[str], name: str) -> str:
    """Check that ``value`` is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")
    return value


def reduce(x: torch.Tensor, reduction: str) -> torch.Tensor:
    """Apply ``"mean"`` / ``"sum"`` / ``"none"`` to an element-wise loss tensor."""
    if reduction == "mean":
        return x.mean()
    if reduction == "sum":
        return x.sum()
    if reduction == "none":
        return x
    raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
