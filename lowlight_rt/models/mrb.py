"""Multi-scale residual blocks (the MIRNet-v2 family of layers).

Shared by the ``compact_clarity`` student and the MIRNet-v2 teacher (``training/teachers``).
Module and parameter names follow the published MIRNet-v2 release (Zamir et al., TPAMI 2022) so
its checkpoints load without remapping; the implementation here is our own.

Layout of one :class:`MRB` (multi-scale residual block), input ``(B, C, H, W)``::

    full    (C,        H,   W)   --RCB--+--SKFF<--up--+--RCB--+--SKFF<--up--+-- 1x1 conv --> + x
    half    (C*f,   H/2, W/2)   --RCB--+--SKFF<--up--+--RCB--+--SKFF<--up--+
    quarter (C*f^2, H/4, W/4)   --RCB-----------------+--RCB----------------+

``f`` is ``chan_factor``; H and W must be multiples of 4 (the models pad).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..errors import ModelError


def _act() -> nn.Module:
    return nn.LeakyReLU(0.2)


class SKFF(nn.Module):
    """Selective kernel feature fusion of ``height`` streams of ``(B, C, H, W)``.

    A global descriptor of the summed streams (spatial mean) goes through a 1x1 bottleneck and one
    1x1 head per stream; a softmax across streams gives per-channel weights for the weighted sum.
    """

    def __init__(self, in_channels: int, height: int = 3, reduction: int = 8, bias: bool = False) -> None:
        super().__init__()
        self.height = height
        d = max(int(in_channels / reduction), 4)
        self.conv_du = nn.Sequential(nn.Conv2d(in_channels, d, 1, padding=0, bias=bias), _act())
        self.fcs = nn.ModuleList([nn.Conv2d(d, in_channels, 1, stride=1, bias=bias) for _ in range(height)])

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        """``height`` tensors ``(B, C, H, W)`` -> ``(B, C, H, W)``."""
        stacked = torch.stack(feats, dim=1)                    # (B, S, C, H, W)
        z = self.conv_du(stacked.sum(1).mean((2, 3), keepdim=True))
        weights = torch.stack([fc(z) for fc in self.fcs], dim=1).softmax(dim=1)   # (B, S, C, 1, 1)
        return (stacked * weights).sum(1)


class ContextBlock(nn.Module):
    """Global context: a softmax attention over positions pools one ``(C,)`` vector, transformed by
    a 1x1 / LeakyReLU / 1x1 stack and added to every position."""

    def __init__(self, n_feat: int, bias: bool = False) -> None:
        super().__init__()
        self.conv_mask = nn.Conv2d(n_feat, 1, kernel_size=1, bias=bias)
        self.channel_add_conv = nn.Sequential(
            nn.Conv2d(n_feat, n_feat, kernel_size=1, bias=bias), _act(),
            nn.Conv2d(n_feat, n_feat, kernel_size=1, bias=bias))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c = x.shape[:2]
        attn = self.conv_mask(x).flatten(2).softmax(dim=-1)          # (B, 1, HW)
        context = torch.bmm(x.flatten(2), attn.transpose(1, 2))      # (B, C, 1)
        return x + self.channel_add_conv(context.view(b, c, 1, 1))


class RCB(nn.Module):
    """Residual context block: two (grouped) 3x3 convs, global context, LeakyReLU, residual."""

    def __init__(self, n_feat: int, kernel_size: int = 3, reduction: int = 8, bias: bool = False,
                 groups: int = 1) -> None:
        super().__init__()
        pad = kernel_size // 2
        self.body = nn.Sequential(
            nn.Conv2d(n_feat, n_feat, kernel_size, stride=1, padding=pad, bias=bias, groups=groups), _act(),
            nn.Conv2d(n_feat, n_feat, kernel_size, stride=1, padding=pad, bias=bias, groups=groups))
        self.act = _act()
        self.gcnet = ContextBlock(n_feat, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.gcnet(self.body(x))) + x


class Down(nn.Module):
    """2x average-pool then a 1x1 conv to ``int(C * chan_factor)`` channels."""

    def __init__(self, in_channels: int, chan_factor: float, bias: bool = False) -> None:
        super().__init__()
        self.bot = nn.Sequential(
            nn.AvgPool2d(2, ceil_mode=True, count_include_pad=False),
            nn.Conv2d(in_channels, int(in_channels * chan_factor), 1, stride=1, padding=0, bias=bias))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bot(x)


class DownSample(nn.Module):
    """``log2(scale_factor)`` :class:`Down` steps."""

    def __init__(self, in_channels: int, scale_factor: int, chan_factor: float = 2, kernel_size: int = 3) -> None:
        super().__init__()
        steps = []
        for _ in range(int(math.log2(scale_factor))):
            steps.append(Down(in_channels, chan_factor))
            in_channels = int(in_channels * chan_factor)
        self.body = nn.Sequential(*steps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class Up(nn.Module):
    """A 1x1 conv to ``int(C // chan_factor)`` channels then 2x bilinear upsampling."""

    def __init__(self, in_channels: int, chan_factor: float, bias: bool = False) -> None:
        super().__init__()
        self.bot = nn.Sequential(
            nn.Conv2d(in_channels, int(in_channels // chan_factor), 1, stride=1, padding=0, bias=bias),
            nn.Upsample(scale_factor=2, mode="bilinear", align_corners=bias))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bot(x)


class UpSample(nn.Module):
    """``log2(scale_factor)`` :class:`Up` steps."""

    def __init__(self, in_channels: int, scale_factor: int, chan_factor: float = 2, kernel_size: int = 3) -> None:
        super().__init__()
        steps = []
        for _ in range(int(math.log2(scale_factor))):
            steps.append(Up(in_channels, chan_factor))
            in_channels = int(in_channels // chan_factor)
        self.body = nn.Sequential(*steps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class MRB(nn.Module):
    """Multi-scale residual block: full / half / quarter streams exchanging information twice.

    ``height`` and ``width`` are accepted for parity with the published configuration (the layout
    is fixed at 3 streams x 2 exchanges). Input / output ``(B, n_feat, H, W)``, H and W multiples of 4.
    """

    def __init__(self, n_feat: int, height: int, width: int, chan_factor: float, bias: bool, groups: int) -> None:
        super().__init__()
        self.n_feat, self.height, self.width = n_feat, height, width
        c0, c1, c2 = int(n_feat), int(n_feat * chan_factor), int(n_feat * chan_factor ** 2)
        self.dau_top = RCB(c0, bias=bias, groups=groups)
        self.dau_mid = RCB(c1, bias=bias, groups=groups)
        self.dau_bot = RCB(c2, bias=bias, groups=groups)
        self.down2 = DownSample(c0, 2, chan_factor)
        self.down4 = nn.Sequential(DownSample(c0, 2, chan_factor), DownSample(c1, 2, chan_factor))
        self.up21_1 = UpSample(c1, 2, chan_factor)
        self.up21_2 = UpSample(c1, 2, chan_factor)
        self.up32_1 = UpSample(c2, 2, chan_factor)
        self.up32_2 = UpSample(c2, 2, chan_factor)
        self.conv_out = nn.Conv2d(n_feat, n_feat, kernel_size=1, padding=0, bias=bias)
        self.skff_top = SKFF(c0, 2)
        self.skff_mid = SKFF(c1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        top, mid, bot = x, self.down2(x), self.down4(x)
        top, mid, bot = self.dau_top(top), self.dau_mid(mid), self.dau_bot(bot)
        mid = self.skff_mid([mid, self.up32_1(bot)])
        top = self.skff_top([top, self.up21_1(mid)])
        top, mid, bot = self.dau_top(top), self.dau_mid(mid), self.dau_bot(bot)
        mid = self.skff_mid([mid, self.up32_2(bot)])
        top = self.skff_top([top, self.up21_2(mid)])
        return self.conv_out(top) + x


class RRG(nn.Module):
    """Recursive residual group: ``n_MRB`` multi-scale residual blocks, a 3x3 conv, residual."""

    def __init__(self, n_feat: int, n_MRB: int, height: int, width: int, chan_factor: float,
                 bias: bool = False, groups: int = 1) -> None:
        super().__init__()
        blocks: list[nn.Module] = [MRB(n_feat, height, width, chan_factor, bias, groups) for _ in range(n_MRB)]
        blocks.append(nn.Conv2d(n_feat, n_feat, kernel_size=3, stride=1, padding=1, bias=bias))
        self.body = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + x


def check_group_widths(n_feat: int, chan_factor: float, groups: list[int] | tuple[int, ...]) -> None:
    """Raise ``ModelError`` if a stream width of an MRB is not divisible by its group count."""
    widths = (int(n_feat), int(n_feat * chan_factor), int(n_feat * chan_factor ** 2))
    for g in groups:
        bad = [w for w in widths if w % g]
        if bad:
            raise ModelError(f"n_feat={n_feat}, chan_factor={chan_factor}: stream width(s) {bad} "
                             f"not divisible by groups={g}")
