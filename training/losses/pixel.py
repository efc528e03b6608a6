"""Pixel losses: Charbonnier, and L1 / MSE output distillation to a teacher's output."""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ._checks import check_choice, check_pair, reduce

__all__ = ["charbonnier_loss", "CharbonnierLoss", "PixelLoss", "output_distillation_loss", "OutputDistillationLoss"]


def charbonnier_loss(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-3,
                     reduction: str = "mean") -> torch.Tensor:
    r"""Charbonnier (smooth L1) loss :math:`\sqrt{(p - t)^2 + \varepsilon^2}`.

    Args:
        pred: ``(B, C, H, W)`` float, usually in [0, 1].
        target: ``(B, C, H, W)`` float, same shape.
        eps: smoothing constant; the loss of identical inputs is ``eps`` (its minimum).
        reduction: ``"mean"`` | ``"sum"`` | ``"none"``.
    Returns:
        scalar (or ``(B, C, H, W)`` for ``"none"``), >= ``eps``.
    """
    check_pair(pred, target)
    if eps <= 0:
        raise ValueError(f"eps must be positive, got {eps}")
    return reduce(torch.sqrt((pred - target).pow(2) + eps * eps), reduction)


class CharbonnierLoss(nn.Module):
    """Module form of :func:`charbonnier_loss`. ``forward(pred, target)`` -> scalar."""

    input_keys: ClassVar[tuple[str, ...]] = ("pred", "target")

    def __init__(self, eps: float = 1e-3, reduction: str = "mean") -> None:
        super().__init__()
        if eps <= 0:
            raise ValueError(f"eps must be positive, got {eps}")
        self.eps = float(eps)
        self.reduction = reduction

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return charbonnier_loss(pred, target, self.eps, self.reduction)

    def extra_repr(self) -> str:
        return f"eps={self.eps}"


def output_distillation_loss(student: torch.Tensor, teacher: torch.Tensor, criterion: str = "l1",
                             reduction: str = "mean") -> torch.Tensor:
    """L1 or MSE between the student's output and the (detached) teacher's output.

    Args:
        student: ``(B, 3, H, W)`` float in [0, 1], the student's output.
        teacher: ``(B, 3, H, W)`` float in [0, 1], the teacher's output; no gradient flows into it.
        criterion: ``"l1"`` | ``"mse"``.
        reduction: ``"mean"`` | ``"sum"`` | ``"none"``.
    Returns:
        scalar >= 0, zero when the outputs are identical.
    """
    check_pair(student, teacher)
    check_choice(criterion, ("l1", "mse"), "criterion")
    teacher = teacher.detach()
    if criterion == "l1":
        return F.l1_loss(student, teacher, reduction=reduction)
    return F.mse_loss(student, teacher, reduction=reduction)


class PixelLoss(nn.Module):
    """Plain L1 / MSE to the ground truth. ``forward(pred, target)``: ``(B, C, H, W)`` -> scalar >= 0."""

    input_keys: ClassVar[tuple[str, ...]] = ("pred", "target")

    def __init__(self, criterion: str = "l1", reduction: str = "mean") -> None:
        super().__init__()
        self.criterion = check_choice(criterion, ("l1", "mse"), "criterion")
        self.reduction = reduction

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return output_distillation_loss(pred, target, self.criterion, self.reduction)

    def extra_repr(self) -> str:
        return f"criterion={self.criterion!r}"


class OutputDistillationLoss(PixelLoss):
    """L1 / MSE to the (detached) teacher's output. ``forward(student_out, teacher_out)`` -> scalar >= 0."""

    input_keys: ClassVar[tuple[str, ...]] = ("pred", "teacher")
