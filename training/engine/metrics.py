"""Image-quality metrics for validation and evaluation: PSNR, SSIM and their GT-mean-corrected variants."""

from __future__ import annotations

import torch
from pytorch_msssim import ssim as _ssim


def psnr(pred: torch.Tensor, target: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Per-image PSNR in dB. ``pred``, ``target``: ``(B, C, H, W)`` in [0, data_range] -> ``(B,)``."""
    mse = (pred.float() - target.float()).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(data_range ** 2 / mse.clamp_min(1e-10))


def ssim(pred: torch.Tensor, target: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Per-image SSIM (Gaussian window 11, sigma 1.5; pytorch-msssim) -> ``(B,)``.

    Images smaller than the window use a window that fits (odd, at least 3).
    """
    win = min(11, min(pred.shape[-2:]))
    win = win if win % 2 else win - 1
    return _ssim(pred.float(), target.float(), data_range=data_range, size_average=False, win_size=max(3, win))


def gt_mean_correct(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Scale ``pred`` so that its mean grey level equals the reference's (per image), then clamp to [0, 1].

    The "GT-mean" protocol common in low-light papers: it removes the global brightness choice,
    which a reference-free enhancer cannot know, from the score. Results are labelled as corrected.
    """
    pm = pred.float().mean(dim=(1, 2, 3), keepdim=True).clamp_min(1e-6)
    tm = target.float().mean(dim=(1, 2, 3), keepdim=True)
    return (pred.float() * tm / pm).clamp(0, 1)


def quality(pred: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
    """``{"psnr", "ssim", "psnr_gtmean", "ssim_gtmean"}``, each ``(B,)``."""
    pred = pred.clamp(0, 1)
    corrected = gt_mean_correct(pred, target)
    return {"psnr": psnr(pred, target), "ssim": ssim(pred, target),
            "psnr_gtmean": psnr(corrected, target), "ssim_gtmean": ssim(corrected, target)}
