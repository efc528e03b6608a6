"""Structural losses: ``1 - SSIM`` and ``1 - MS-SSIM`` built on pytorch-msssim.

MS-SSIM on small crops
----------------------
pytorch-msssim's ``ms_ssim`` always uses 5 scales and requires the short side to exceed
``(win_size - 1) * 16`` (160 px for the usual 11-px window), which training crops of 64 or 128 px do
not meet. :func:`ms_ssim` here runs the same per-scale computation (pytorch-msssim's SSIM / contrast-
structure kernel, the same Gaussian window, the same 2x average pooling) but uses only as many
scales as the image allows: the largest ``L <= len(weights)`` such that the short side at the
coarsest scale is still at least ``win_size``. When fewer scales are used, the first ``L`` weights are
kept and renormalised to sum to 1 (e.g. 64 px -> 3 scales, weights 0.0448/0.2856/0.3001 scaled by 1/0.6305).
At 161 px and above all 5 scales are used and the value equals ``pytorch_msssim.ms_ssim``. Images whose
short side is below ``win_size`` use the largest odd window that fits (at least 3 px).

Negative contrast-structure terms are clamped to a small positive value (pytorch-msssim clamps to
0, whose fractional power has an infinite gradient), so the loss never produces NaN gradients.
"""

from __future__ import annotations

import importlib
from typing import ClassVar, Sequence

import torch
import torch.nn.functional as F
from pytorch_msssim import ssim as _library_ssim
from torch import nn

from ._checks import check_pair

# the ``pytorch_msssim.ssim`` attribute is the function; the module holds the per-scale kernel
_msssim_impl = importlib.import_module("pytorch_msssim.ssim")

__all__ = ["MS_SSIM_WEIGHTS", "ssim", "ssim_loss", "SSIMLoss", "ms_ssim", "ms_ssim_loss", "MSSSIMLoss",
           "ms_ssim_scales"]

#: the standard 5-scale MS-SSIM weights (Wang et al. 2003)
MS_SSIM_WEIGHTS: tuple[float, ...] = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
_CS_FLOOR = 1e-6


def _fit_window(min_side: int, win_size: int) -> int:
    if win_size % 2 != 1 or win_size < 3:
        raise ValueError(f"win_size must be an odd integer >= 3, got {win_size}")
    if min_side >= win_size:
        return win_size
    if min_side < 3:
        raise ValueError(f"images must be at least 3x3 pixels for SSIM, got short side {min_side}")
    return min_side if min_side % 2 == 1 else min_side - 1


def ms_ssim_scales(min_side: int, win_size: int = 11, max_scales: int = len(MS_SSIM_WEIGHTS)) -> int:
    """Number of MS-SSIM scales usable for an image whose short side is ``min_side`` pixels."""
    win = _fit_window(min_side, win_size)
    levels, side = 1, min_side
    while levels < max_scales and (side + 1) // 2 >= win:
        side = (side + 1) // 2  # pytorch-msssim pads odd sizes before 2x pooling
        levels += 1
    return levels


def _window(win_size: int, win_sigma: float, channels: int) -> torch.Tensor:
    win = _msssim_impl._fspecial_gauss_1d(win_size, win_sigma)
    return win.repeat([channels, 1, 1, 1])


def ssim(pred: torch.Tensor, target: torch.Tensor, data_range: float = 1.0, win_size: int = 11,
         win_sigma: float = 1.5) -> torch.Tensor:
    """Mean SSIM of two image batches (pytorch-msssim), computed in float32.

    Args:
        pred, target: ``(B, C, H, W)`` float in ``[0, data_range]``; any size >= 3x3 (the window
            shrinks to the largest odd size that fits when the image is smaller than ``win_size``).
    Returns:
        scalar in [-1, 1], 1 for identical inputs.
    """
    check_pair(pred, target)
    win = _fit_window(min(pred.shape[-2:]), win_size)
    return _library_ssim(pred.float(), target.float(), data_range=data_range, win_size=win,
                         win_sigma=win_sigma, size_average=True)


def ssim_loss(pred: torch.Tensor, target: torch.Tensor, data_range: float = 1.0, win_size: int = 11,
              win_sigma: float = 1.5) -> torch.Tensor:
    """``1 - SSIM``: ``(B, C, H, W)`` float in ``[0, data_range]`` -> scalar in [0, 2], 0 when identical."""
    return 1.0 - ssim(pred, target, data_range, win_size, win_sigma)


def ms_ssim(pred: torch.Tensor, target: torch.Tensor, data_range: float = 1.0, win_size: int = 11,
            win_sigma: float = 1.5, weights: Sequence[float] = MS_SSIM_WEIGHTS) -> torch.Tensor:
    """Mean MS-SSIM with as many scales as the image size allows (see the module docstring).

    Args:
        pred, target: ``(B, C, H, W)`` float in ``[0, data_range]``, any size >= 3x3.
        weights: per-scale exponents, finest first; only the first ``L`` are used (renormalised).
    Returns:
        scalar in (0, 1], 1 for identical inputs.
    """
    check_pair(pred, target)
    if len(weights) == 0 or any(w < 0 for w in weights):
        raise ValueError(f"weights must be a non-empty list of non-negative numbers, got {list(weights)}")
    x, y = pred.float(), target.float()
    min_side = min(x.shape[-2:])
    win_size = _fit_window(min_side, win_size)
    levels = ms_ssim_scales(min_side, win_size, len(weights))
    w = x.new_tensor(list(weights[:levels]))
    if levels < len(weights):
        w = w / w.sum()
    win = _window(win_size, win_sigma, x.shape[1])
    terms = []
    for level in range(levels):
        ssim_pc, cs_pc = _msssim_impl._ssim(x, y, data_range=data_range, win=win, size_average=False)
        if level < levels - 1:
            terms.append(cs_pc.clamp_min(_CS_FLOOR))
            pad = [s % 2 for s in x.shape[2:]]
            x = F.avg_pool2d(x, kernel_size=2, padding=pad)
            y = F.avg_pool2d(y, kernel_size=2, padding=pad)
    terms.append(ssim_pc.clamp_min(_CS_FLOOR))
    stacked = torch.stack(terms, dim=0)  # (levels, B, C)
    return torch.prod(stacked ** w.view(-1, 1, 1), dim=0).mean()


def ms_ssim_loss(pred: torch.Tensor, target: torch.Tensor, data_range: float = 1.0, win_size: int = 11,
                 win_sigma: float = 1.5, weights: Sequence[float] = MS_SSIM_WEIGHTS) -> torch.Tensor:
    """``1 - MS-SSIM``: ``(B, C, H, W)`` in ``[0, data_range]`` -> scalar in [0, 1), 0 when identical."""
    return 1.0 - ms_ssim(pred, target, data_range, win_size, win_sigma, weights)


class SSIMLoss(nn.Module):
    """``1 - SSIM`` (pytorch-msssim). ``forward(pred, target)``: ``(B, C, H, W)`` in [0, data_range]."""

    input_keys: ClassVar[tuple[str, ...]] = ("pred", "target")

    def __init__(self, data_range: float = 1.0, win_size: int = 11, win_sigma: float = 1.5) -> None:
        super().__init__()
        _fit_window(win_size, win_size)
        self.data_range, self.win_size, self.win_sigma = float(data_range), int(win_size), float(win_sigma)

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return ssim_loss(pred, target, self.data_range, self.win_size, self.win_sigma)

    def extra_repr(self) -> str:
        return f"data_range={self.data_range}, win_size={self.win_size}"


class MSSSIMLoss(nn.Module):
    """``1 - MS-SSIM`` with scales reduced on small crops (see the module docstring).

    ``forward(pred, target)``: ``(B, C, H, W)`` in [0, data_range] -> scalar in [0, 1).
    """

    input_keys: ClassVar[tuple[str, ...]] = ("pred", "target")

    def __init__(self, data_range: float = 1.0, win_size: int = 11, win_sigma: float = 1.5,
                 weights: Sequence[float] = MS_SSIM_WEIGHTS) -> None:
        super().__init__()
        _fit_window(win_size, win_size)
        if len(weights) == 0 or any(w < 0 for w in weights):
            raise ValueError(f"weights must be a non-empty list of non-negative numbers, got {list(weights)}")
        self.data_range, self.win_size, self.win_sigma = float(data_range), int(win_size), float(win_sigma)
        self.weights = tuple(float(w) for w in weights)

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return ms_ssim_loss(pred, target, self.data_range, self.win_size, self.win_sigma, self.weights)

    def extra_repr(self) -> str:
        return f"data_range={self.data_range}, win_size={self.win_size}, scales<={len(self.weights)}"
