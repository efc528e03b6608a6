"""Frequency loss: L1 between the FFT amplitude spectra of two images."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from ._checks import check_pair, reduce

__all__ = ["fft_amplitude_loss", "FFTAmplitudeLoss"]


def fft_amplitude_loss(pred: torch.Tensor, target: torch.Tensor, norm: str = "ortho",
                       reduction: str = "mean") -> torch.Tensor:
    """L1 distance between ``|rfft2(pred)|`` and ``|rfft2(target)|``.

    Computed in float32 (half-precision FFTs only accept power-of-two sizes), so it works under
    autocast and at any size, odd ones included.

    Args:
        pred: ``(B, C, H, W)`` float, usually in [0, 1].
        target: ``(B, C, H, W)`` float, same shape.
        norm: FFT normalisation (``"ortho"`` keeps the amplitude scale independent of the size).
        reduction: ``"mean"`` | ``"sum"`` | ``"none"`` (``"none"``: ``(B, C, H, W // 2 + 1)``).
    Returns:
        scalar >= 0, zero for identical inputs.
    """
    check_pair(pred, target)
    amp_p = torch.fft.rfft2(pred.float(), norm=norm).abs()
    amp_t = torch.fft.rfft2(target.float(), norm=norm).abs()
    return reduce((amp_p - amp_t).abs(), reduction)


class FFTAmplitudeLoss(nn.Module):
    """Module form of :func:`fft_amplitude_loss`. ``forward(pred, target)`` -> scalar."""

    input_keys: ClassVar[tuple[str, ...]] = ("pred", "target")

    def __init__(self, norm: str = "ortho", reduction: str = "mean") -> None:
        super().__init__()
        if norm not in ("ortho", "forward", "backward"):
            raise ValueError(f"norm must be 'ortho', 'forward' or 'backward', got {norm!r}")
        self.norm = norm
        self.reduction = reduction

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return fft_amplitude_loss(pred, target, self.norm, self.reduction)

    def extra_repr(self) -> str:
        return f"norm={self.norm!r}"
