"""The "Compact Clarity" student: an MRB backbone with frequency, gradient and feature-stretch extras.

Layout (input ``x`` ``(B, 3, H, W)`` in [0, 1], padded to a multiple of 4)::

    shallow = GradientGuidedConv(conv_in(x), x)             # features gated by the Sobel magnitude
    deep    = [RRG_i (n_blocks MRBs, groups[i]) -> AFS_i] for i in range(n_groups)   # + checkpointing
    fused   = deep + shallow + FFTBranch(shallow)            # global amplitude / phase processing
    out     = clamp(conv_out(fused) + x)                     # global residual

- RRG / MRB: the multi-scale residual blocks of :mod:`lowlight_rt.models.mrb` (4 groups x 3 blocks,
  grouped convolutions 1/2/4/4 per group).
- AFS (adaptive feature stretch): each channel's contrast about its spatial mean is stretched by a
  factor and shifted by an offset that a 1x1 MLP predicts from the channel's (mean, std);
  identity at initialisation.
- FFT branch: ``torch.fft.rfft2`` of the features; the log-amplitude drives a multiplicative amplitude
  gain and the unit phasor (cos, sin of the phase) gets a residual 1x1 correction; ``irfft2`` back.
- Activation checkpointing of each RRG (``set_grad_checkpointing(True)``) while training.

Width: the 1/2/4/4 grouping needs every stream width (``n_feat``, ``1.5 n_feat``, ``2.25 n_feat``)
divisible by 4, so with ``chan_factor=1.5`` ``n_feat`` is a multiple of 16. The thesis width
:data:`CC_THESIS_CFG` (``n_feat=80``) has 8,829,760 parameters, the closest to ~10M the grouping
allows (``n_feat=96`` gives 12.7M). The registry default is a narrow ``n_feat=32`` (1.42M) for
tests and quick experiments.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from .arch_layers import crop_to, pad_to_multiple, sobel_magnitude, st_clamp01
from .base import EnhancementModel
from .mrb import RRG, check_group_widths
from .registry import register_model


class AdaptiveFeatureStretch(nn.Module):
    """``y = x + s * (x - mean) + b`` with per-channel ``s = tanh(.)`` and ``b`` predicted from each
    channel's spatial (mean, std). ``(B, C, H, W)`` -> same; identity at initialisation."""

    def __init__(self, channels: int, reduction: int = 4) -> None:
        super().__init__()
        mid = max(channels // reduction, 8)
        self.fc = nn.Sequential(nn.Conv2d(2 * channels, mid, 1), nn.LeakyReLU(0.2, inplace=True),
                                nn.Conv2d(mid, 2 * channels, 1))
        nn.init.zeros_(self.fc[-1].weight)
        nn.init.zeros_(self.fc[-1].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean((2, 3), keepdim=True)
        std = (x.var((2, 3), keepdim=True, unbiased=False) + 1e-6).sqrt()
        scale, shift = self.fc(torch.cat([mean, std], 1)).chunk(2, dim=1)
        return x + torch.tanh(scale) * (x - mean) + shift


class FFTBranch(nn.Module):
    """Global frequency-domain processing of ``(B, C, H, W)`` features (float32 inside, AMP-safe).

    amplitude ``A`` -> ``A * exp(f_a(log1p(A)))``; phasor ``u = X / A`` -> ``normalise(u + f_p(u))``;
    then ``irfft2`` and a 1x1 projection. ``f_a``, ``f_p`` are 1x1-conv MLPs, zero-initialised.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        c = channels
        self.amp = nn.Sequential(nn.Conv2d(c, c, 1), nn.LeakyReLU(0.2, inplace=True), nn.Conv2d(c, c, 1))
        self.pha = nn.Sequential(nn.Conv2d(2 * c, c, 1), nn.LeakyReLU(0.2, inplace=True), nn.Conv2d(c, 2 * c, 1))
        for head in (self.amp[-1], self.pha[-1]):
            nn.init.zeros_(head.weight)
            nn.init.zeros_(head.bias)
        self.proj = nn.Conv2d(c, c, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        wdt = self.proj.weight.dtype  # the 1x1 convs run in the weights' dtype (fp16 models included)
        with torch.autocast(device_type=x.device.type, enabled=False):
            spec = torch.fft.rfft2(x.float(), norm="ortho")
            re, im = spec.real, spec.imag
            amp = (re * re + im * im + 1e-8).sqrt()
            gain = self.amp(torch.log1p(amp).to(wdt)).float()
            new_amp = amp * torch.exp(gain.clamp(-10, 10))
            u = torch.cat([re / amp, im / amp], 1)
            u = u + self.pha(u.to(wdt)).float()
            ur, ui = u.chunk(2, dim=1)
            norm = (ur * ur + ui * ui + 1e-8).sqrt()
            spec = torch.complex(new_amp * ur / norm, new_amp * ui / norm)
            y = torch.fft.irfft2(spec, s=(h, w), norm="ortho")
            y = self.proj(y.to(wdt))
        return y.to(x.dtype)


class GradientGuidedConv(nn.Module):
    """``f + conv(f) * gate`` where ``gate = sigmoid(convs(|Sobel(x)| / mean(x)))`` ``(B, C, H, W)``.

    The Sobel magnitude is divided by the image's mean brightness so dark and bright images give
    comparable edge guidance.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        mid = max(channels // 2, 8)
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)
        self.guide = nn.Sequential(nn.Conv2d(3, mid, 3, padding=1), nn.LeakyReLU(0.2, inplace=True),
                                   nn.Conv2d(mid, channels, 3, padding=1), nn.Sigmoid())

    def forward(self, feat: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        grad = sobel_magnitude(image) / (image.mean((1, 2, 3), keepdim=True) + 1e-2)
        return feat + self.conv(feat) * self.guide(grad.to(feat.dtype))


class _Group(nn.Module):
    """One recursive residual group followed by adaptive feature stretch."""

    def __init__(self, n_feat: int, n_blocks: int, chan_factor: float, groups: int, bias: bool) -> None:
        super().__init__()
        self.rrg = RRG(n_feat, n_blocks, 3, 2, chan_factor, bias=bias, groups=groups)
        self.afs = AdaptiveFeatureStretch(n_feat)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.afs(self.rrg(x))


#: the thesis width: 8.83M parameters (~10M; see the module docstring)
CC_THESIS_CFG: dict[str, Any] = {"n_feat": 80, "chan_factor": 1.5, "n_groups": 4, "n_blocks": 3,
                                 "groups": [1, 2, 4, 4]}


@register_model("compact_clarity")
class CompactClarity(EnhancementModel):
    """``(B, 3, H, W)`` in [0, 1] -> ``(B, 3, H, W)`` in [0, 1]; any H, W (padded to 4)."""

    size_multiple = 4
    default_proc_size = 360

    def __init__(self, n_feat: int = 32, chan_factor: float = 1.5, n_groups: int = 4, n_blocks: int = 3,
                 groups: list[int] | tuple[int, ...] = (1, 2, 4, 4), bias: bool = False) -> None:
        groups = [int(g) for g in groups]
        if len(groups) != n_groups:
            groups = [groups[min(i, len(groups) - 1)] for i in range(n_groups)]
        super().__init__(n_feat=n_feat, chan_factor=chan_factor, n_groups=n_groups, n_blocks=n_blocks,
                         groups=groups, bias=bias)
        check_group_widths(n_feat, chan_factor, groups)
        self.conv_in = nn.Conv2d(3, n_feat, 3, padding=1, bias=bias)
        self.guided = GradientGuidedConv(n_feat)
        self.body = nn.ModuleList([_Group(n_feat, n_blocks, chan_factor, g, bias) for g in groups])
        self.fft = FFTBranch(n_feat)
        self.conv_out = nn.Conv2d(n_feat, 3, 3, padding=1, bias=bias)
        self.grad_checkpointing = False

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute each group in the backward pass while training (trades compute for memory)."""
        self.grad_checkpointing = enable

    def forward_features(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Enhanced ``(B, 3, H, W)`` in [0, 1] and the output of every group
        ``[(B, n_feat, H', W')] * n_groups`` (H', W' = H, W padded to a multiple of 4)."""
        xp, size = pad_to_multiple(x, self.size_multiple)
        shallow = self.guided(self.conv_in(xp), xp)
        use_ckpt = self.grad_checkpointing and self.training and torch.is_grad_enabled()
        f, feats = shallow, []
        for group in self.body:
            f = checkpoint(group, f, use_reentrant=False) if use_ckpt else group(f)
            feats.append(f)
        fused = f + shallow + self.fft(shallow)
        out = self.conv_out(fused) + xp
        return st_clamp01(crop_to(out, size)), feats

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W)`` float in [0, 1] -> ``(B, 3, H, W)`` float in [0, 1]."""
        return self.forward_features(x)[0]
