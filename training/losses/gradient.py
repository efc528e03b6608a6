"""Image-gradient loss: L1 / L2 between Sobel gradients (kornia) of prediction and target."""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from kornia.filters import spatial_gradient
from torch import nn

from ._checks import check_choice, check_pair

__all__ = ["gradient_loss", "GradientLoss"]


def gradient_loss(pred: torch.Tensor, target: torch.Tensor, criterion: str = "l1",
                  normalized: bool = True) -> torch.Tensor:
    """Distance between the Sobel x/y derivatives of ``pred`` and ``target``.

    Uses ``kornia.filters.spatial_gradient(mode="sobel")`` (replicate border) on every channel.

    Args:
        pred: ``(B, C, H, W)`` float, usually in [0, 1].
        target: ``(B, C, H, W)`` float, same shape.
        criterion: ``"l1"`` | ``"l2"`` (mean squared error).
        normalized: normalise the Sobel kernel (sum of absolute weights 1), as kornia does by default.
    Returns:
        scalar >= 0, zero for identical inputs (and for inputs differing by a constant).
    """
    check_pair(pred, target)
    check_choice(criterion, ("l1", "l2"), "criterion")
    gp = spatial_gradient(pred, mode="sobel", order=1, normalized=normalized)    # (B, C, 2, H, W)
    gt = spatial_gradient(target, mode="sobel", order=1, normalized=normalized)
    if criterion == "l1":
        return F.l1_loss(gp, gt)
    return F.mse_loss(gp, gt)


class GradientLoss(nn.Module):
    """Module form of :func:`gradient_loss`. ``forward(pred, target)`` -> scalar."""

    input_keys: ClassVar[tuple[str, ...]] = ("pred", "target")

    def __init__(self, criterion: str = "l1", normalized: bool = True) -> None:
        super().__init__()
        self.criterion = check_choice(criterion, ("l1", "l2"), "criterion")
        self.normalized = bool(normalized)

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return gradient_loss(pred, target, self.criterion, self.normalized)

    def extra_repr(self) -> str:
        return f"criterion={self.criterion!r}"
