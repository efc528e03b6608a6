"""Base class of every enhancement network the runtime can run."""

from __future__ import annotations

import abc
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn


def resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of ``(B, C, H, W)`` to ``size = (h, w)``; identity if already that size."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=False)


def transfer_to_full_res(full: torch.Tensor, low: torch.Tensor, enhanced_low: torch.Tensor,
                         detail_gain: torch.Tensor | float = 1.0) -> torch.Tensor:
    """Carry a low-resolution enhancement over to the full-resolution input.

    ``out = up(enhanced_low) + gain * (full - up(low))``: the base layer comes from the network,
    the high-frequency detail the network never saw comes from the input, scaled by ``gain``
    (``(B, 1|3, h, w)`` map at low res or a scalar); a gain below the brightening ratio suppresses noise.

    Args:
        full: ``(B, 3, H, W)`` float in [0, 1], the input at full resolution.
        low: ``(B, 3, h, w)`` float in [0, 1], the input the network saw.
        enhanced_low: ``(B, 3, h, w)`` float in [0, 1], the network's output.
        detail_gain: scalar or ``(B, 1|3, h, w)`` map.
    Returns:
        ``(B, 3, H, W)`` float in [0, 1].
    """
    size = tuple(full.shape[-2:])
    if tuple(low.shape[-2:]) == size:
        return enhanced_low.clamp(0, 1)
    detail = full - resize(low, size)
    if isinstance(detail_gain, torch.Tensor):
        detail_gain = resize(detail_gain, size)
    return (resize(enhanced_low, size) + detail_gain * detail).clamp(0, 1)


class EnhancementModel(nn.Module, metaclass=abc.ABCMeta):
    """A low-light enhancement network.

    Subclasses build their layers from keyword arguments (stored in ``self.config`` and in
    checkpoints), implement :meth:`forward`, and may override :meth:`enhance` to apply an operator
    predicted at low resolution to the full-resolution frame.
    """

    #: short side (pixels) the runtime processes at by default; ``None`` = full resolution
    default_proc_size: ClassVar[int | None] = 360
    #: processing sizes are rounded to a multiple of this (e.g. 2**number_of_downsamplings)
    size_multiple: ClassVar[int] = 8
    #: False for weight-free models (e.g. the classical enhancer)
    needs_weights: ClassVar[bool] = True
    #: registry name, set by ``register_model``
    arch_name: ClassVar[str] = ""
    #: the model's operator grid as ONNX when the checkpoint carries it (set by ``load_checkpoint``; the
    #: CPU engine checks it against the model and runs it through onnxruntime)
    onnx_operator: bytes | None = None

    def __init__(self, **config: Any) -> None:
        super().__init__()
        self.config: dict[str, Any] = dict(config)

    @abc.abstractmethod
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W)`` float in [0, 1] -> ``(B, 3, H, W)`` float in [0, 1]."""

    def enhance(self, full: torch.Tensor, low: torch.Tensor | None = None) -> torch.Tensor:
        """Enhance ``full`` ``(B, 3, H, W)`` using the network on ``low`` ``(B, 3, h, w)`` (both in [0, 1]).

        Returns ``(B, 3, H, W)`` float in [0, 1]. Default: run :meth:`forward` on ``low`` and transfer
        the result to full resolution with a detail gain equal to the local brightening ratio.
        """
        if low is None or tuple(low.shape[-2:]) == tuple(full.shape[-2:]):
            return self.forward(full).clamp(0, 1)
        out_low = self.forward(low)
        ratio = (out_low.mean(1, keepdim=True) + 1e-3) / (low.mean(1, keepdim=True) + 1e-3)
        return transfer_to_full_res(full, low, out_low, ratio.clamp(0, 8))

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
