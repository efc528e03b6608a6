"""CPGA-Net+ and CPGA-Net++ teachers (Weng, Hsiao, Miaou, "Rethinking the Atmospheric
Scattering-driven Attention via Channel and Gamma Correction Priors for Low-Light Image
Enhancement", arXiv 2409.05274).

Both networks read an image as a hazy scene seen "backwards": each *CP block* estimates a
transmission map ``t`` from the channel priors (per-pixel max / min / mean over the channels, the
bright- and dark-channel priors) and an "atmospheric light" map ``A`` with a small encoder-decoder,
and re-composes its features as ``J * t + A * (1 - t)``. A global gamma ``g`` (one number per image,
from a CBAM-style estimator) drives the *IAAF* (intensity-adaptive attention fusion): it blends
the gamma-corrected image ``base ** g`` with the CP output and subtracts a learned
"intersection" term. IAAF also runs inside the trunk, on the features after every inner CP block.

Layout (``C = n_channels``, default 8; every map keeps ``H x W`` except where noted)::

    g   = ga_est(x)                                      (B, 1, 1, 1)
    y   = cpblks_pre(x)                                  (B, C, H, W), in [eps, 1]
    for i in range(n_blocks):
        y_ = cpblks[i](y) + y
        y  = iaafblks[i](g, y_) + y_                     (B, C, H, W)
    out = cpblk_post(y) + x                              (B, 3, H, W)
    return iaaf(g, out)                                  (B, 3, H, W), in [eps, 1]

The two published variants differ as follows (``CPGANetPlus`` / ``CPGANetPlusPlus``):

====================  ==================================  =========================================
                      CPGA-Net+ (2024, 60,378 params)     CPGA-Net++ (2025, 62,304 params)
====================  ==================================  =========================================
``A`` / IAAF blocks   two 3x3 convs + skip (``ResBlock``)  ConvNeXt blocks (3x3 depthwise, LN, MLP)
IAAF                  ``g(llie) + llie - inter``           masked: scoring nets re-weight both
                                                           inputs; ``(1-m) g(x) + m llie - inter``
                                                           with a learned rate ``m``; the final one
                                                           gamma-corrects the *input* ``x``
resampling            bilinear, ``align_corners=True``     bilinear, ``align_corners=False``
clamps                ``eps = 1e-9``, g in [1e-8, 1e8]      ``eps = 1e-4``, g in [0.01, 4]
====================  ==================================  =========================================

(The resampling and clamp rows follow the authors' code of the time each file was trained; the
parameter names and shapes follow the published files, so they load with ``strict=True``. One
stride-2 stage in every ``A`` branch means H and W must be even: :meth:`forward` pads by one pixel
where needed and crops back.)
"""

from __future__ import annotations

import os
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import nn

from lowlight_rt.errors import ModelError
from lowlight_rt.models import EnhancementModel, register_model
from lowlight_rt.models.arch_layers import crop_to, pad_to_multiple
from lowlight_rt.models.checkpoint import read_foreign_state_dict

__all__ = ["CPGANetPlus", "CPGANetPlusPlus", "is_cpga_state_dict", "load_official_cpga_net"]

BlockKind = Literal["res", "convnext"]


# --------------------------------------------------------------------------------------------
# small helpers


def _conv(cin: int, cout: int, k: int, stride: int = 1, bias: bool = True) -> nn.Conv2d:
    """``k x k`` convolution with "same" padding (``k // 2``)."""
    return nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, bias=bias)


def _act(kind: str) -> nn.Module:
    return nn.ReLU() if kind == "relu" else nn.GELU()


def _bilinear(x: torch.Tensor, size: tuple[int, int] | torch.Size, align_corners: bool) -> torch.Tensor:
    """Bilinear resize of ``(B, C, h, w)`` to ``size``; identity when already that size."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=align_corners)


def channel_priors(x: torch.Tensor) -> torch.Tensor:
    """Bright-channel, dark-channel and mean maps of ``(B, C, H, W)`` -> ``(B, 3, H, W)``
    (``max_c x``, ``min_c x``, ``mean_c x``, in that order)."""
    return torch.cat([x.amax(1, keepdim=True), x.amin(1, keepdim=True), x.mean(1, keepdim=True)], dim=1)


# --------------------------------------------------------------------------------------------
# residual blocks shared by both variants


class ResBlock(nn.Module):
    """``conv3x3(stride) -> act -> conv3x3`` plus the input (bilinearly resized when strided).

    ``(B, C, H, W)`` -> ``(B, C, ceil(H / stride), ceil(W / stride))``, unbounded values.
    """

    def __init__(self, channels: int, act: str = "gelu", stride: int = 1, align_corners: bool = False) -> None:
        super().__init__()
        self.body = nn.Sequential(_conv(channels, channels, 3, stride), _act(act), _conv(channels, channels, 3))
        self.align_corners = align_corners

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        res = self.body(x)
        return res + _bilinear(x, res.shape[-2:], self.align_corners)


class ChannelLayerNorm(nn.Module):
    """Layer norm over the channel axis of ``(B, C, H, W)`` (biased variance, ``eps = 1e-6``)."""

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        centred = x - x.mean(1, keepdim=True)
        normed = centred * torch.rsqrt(centred.square().mean(1, keepdim=True) + self.eps)
        return normed * self.weight[:, None, None] + self.bias[:, None, None]


class ConvNeXtBlock(nn.Module):
    """ConvNeXt block with a 3x3 depthwise conv: ``dw3x3 -> LN -> 1x1 (x4) -> GELU -> 1x1``,
    scaled per channel by ``gamma`` and added to the input (a strided 1x1 conv when ``stride > 1``).

    ``(B, C, H, W)`` -> ``(B, C, ceil(H / stride), ceil(W / stride))``, unbounded values.
    """

    def __init__(self, channels: int, stride: int = 1, expansion: int = 4) -> None:
        super().__init__()
        hidden = channels * expansion
        self.dwconv = nn.Conv2d(channels, channels, 3, stride=stride, padding=1, groups=channels)
        self.norm = ChannelLayerNorm(channels)
        self.pwconv1 = nn.Conv2d(channels, hidden, 1)
        self.act = nn.GELU()
        self.pwconv2 = nn.Conv2d(hidden, channels, 1)
        self.gamma = nn.Parameter(torch.full((channels, 1, 1), 1e-6))
        self.downsample = nn.Sequential(nn.Conv2d(channels, channels, 1, stride=stride)) if stride > 1 else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = x if self.downsample is None else self.downsample(x)
        y = self.pwconv2(self.act(self.pwconv1(self.norm(self.dwconv(x)))))
        return skip + self.gamma * y


def _block(kind: BlockKind, channels: int, act: str = "gelu", stride: int = 1,
           align_corners: bool = False) -> nn.Module:
    """The variant's residual block (``ResBlock`` for CPGA-Net+, ``ConvNeXtBlock`` for ++)."""
    if kind == "convnext":
        return ConvNeXtBlock(channels, stride=stride)
    return ResBlock(channels, act=act, stride=stride, align_corners=align_corners)


# --------------------------------------------------------------------------------------------
# channel-prior (CP) block


class TransmissionBranch(nn.Module):
    """Transmission map from the channel priors and the block input.

    ``(B, Cin, H, W)`` -> ``(B, 1, H, W)`` (unbounded: a per-pixel gain on ``J - A``).
    """

    def __init__(self, in_channels: int, width: int) -> None:
        super().__init__()
        self.prep = nn.Sequential(_conv(3, width, 3), nn.GELU())
        self.conv = ResBlock(width + in_channels, act="gelu")
        self.postp = _conv(width + 2 * in_channels, 1, 1)
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(torch.cat([self.prep(channel_priors(x)), x], dim=1))
        return self.postp(self.act(torch.cat([y, x], dim=1)))


class AtmosphereBranch(nn.Module):
    """"Atmospheric light" map: a one-level encoder-decoder (stride 2, then x2 upsampling).

    ``(B, Cin, H, W)`` (H, W even) -> ``(B, Cout, H, W)``, unbounded values.
    """

    def __init__(self, in_channels: int, out_channels: int, width: int, block: BlockKind,
                 align_corners: bool) -> None:
        super().__init__()
        self.conv1_A = _conv(in_channels, width, 1)
        self.conv2_A = nn.Sequential(_block(block, width, stride=2, align_corners=align_corners))
        self.gelu = nn.GELU()
        self.conv3_A = _block(block, width)
        self.conv4_A = nn.Sequential(
            _conv(2 * width, width, 3),
            nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True),
            _block(block, width),
        )
        self.conv5_A = _conv(2 * width, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        full = self.conv1_A(x)                      # (B, w, H, W)
        half = self.conv2_A(full)                   # (B, w, H/2, W/2)
        deep = self.conv3_A(half)
        up = self.conv4_A(self.gelu(torch.cat([deep, half], dim=1)))  # (B, w, H, W)
        return self.conv5_A(torch.cat([up, full], dim=1))


class CPBlock(nn.Module):
    """Channel-prior block: ``clamp((J - A) * t + A, eps, 1)`` with ``J = GELU(conv3x3(x))``.

    ``(B, Cin, H, W)`` (H, W even) -> ``(B, Cout, H, W)`` in ``[eps, 1]``.
    """

    def __init__(self, in_channels: int, out_channels: int, width: int, block: BlockKind,
                 align_corners: bool, eps: float) -> None:
        super().__init__()
        self.prep_module = nn.Sequential(_conv(in_channels, out_channels, 3), nn.GELU())
        self.t_module = TransmissionBranch(in_channels, width // 2)
        self.a_module = AtmosphereBranch(in_channels, out_channels, width, block, align_corners)
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.t_module(x)
        a = self.a_module(x)
        j = self.prep_module(x)
        return ((j - a) * t + a).clamp(self.eps, 1.0)


# --------------------------------------------------------------------------------------------
# gamma estimator (ResNet blocks with CBAM attention, then global average pooling)


class ChannelAttention(nn.Module):
    """CBAM channel gate: shared bottleneck MLP on avg- and max-pooled features -> sigmoid.

    ``(B, C, H, W)`` -> ``(B, C, 1, 1)`` in (0, 1).
    """

    def __init__(self, channels: int, ratio: int = 16) -> None:
        super().__init__()
        hidden = channels // min(channels, ratio)
        self.fc = nn.Sequential(_conv(channels, hidden, 1, bias=False), nn.ReLU(),
                                _conv(hidden, channels, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.fc(x.mean((2, 3), keepdim=True)) + self.fc(x.amax((2, 3), keepdim=True)))


class SpatialAttention(nn.Module):
    """CBAM spatial gate: 7x7 conv on the channel mean and max -> sigmoid.

    ``(B, C, H, W)`` -> ``(B, 1, H, W)`` in (0, 1).
    """

    def __init__(self, kernel_size: int = 7) -> None:
        super().__init__()
        self.conv1 = _conv(2, 1, kernel_size, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.conv1(torch.cat([x.mean(1, keepdim=True), x.amax(1, keepdim=True)], dim=1)))


class ResCBAM(nn.Module):
    """Basic ResNet block (conv-BN-GELU-conv-BN) with CBAM gates before the skip, GELU after.

    ``(B, C, H, W)`` -> ``(B, C, ceil(H / stride), ceil(W / stride))``; the skip is a strided
    1x1 conv when ``stride > 1``.
    """

    def __init__(self, channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = _conv(channels, channels, 3, stride)
        self.bn1 = nn.BatchNorm2d(channels)
        self.act = nn.GELU()
        self.conv2 = _conv(channels, channels, 3)
        self.bn2 = nn.BatchNorm2d(channels)
        self.ca = ChannelAttention(channels)
        self.sa = SpatialAttention()
        self.downsample = nn.Conv2d(channels, channels, 1, stride=stride) if stride > 1 else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn2(self.conv2(self.act(self.bn1(self.conv1(x)))))
        y = y * self.ca(y)
        y = y * self.sa(y)
        skip = x if self.downsample is None else self.downsample(x)
        return self.act(y + skip)


class GammaEstimator(nn.Module):
    """One gamma per image: conv3x3 -> ResCBAM (stride 2) -> 2 x ResCBAM (+ long skip) -> 1x1 -> mean.

    ``(B, 3, H, W)`` in [0, 1] -> ``(B, 1, 1, 1)`` clamped to ``gamma_range``.
    """

    def __init__(self, channels: int, align_corners: bool, gamma_range: tuple[float, float]) -> None:
        super().__init__()
        self.conv1_g = _conv(3, channels, 3)
        self.conv2_g = nn.Sequential(ResCBAM(channels, stride=2))
        self.conv3_g = nn.Sequential(ResCBAM(channels), ResCBAM(channels))
        self.conv4_g = _conv(channels, 1, 1)
        self.align_corners = align_corners
        self.gamma_range = gamma_range

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        full = self.conv1_g(x)
        half = self.conv2_g(full)
        feat = self.conv3_g(half) + _bilinear(full, half.shape[-2:], self.align_corners)
        return self.conv4_g(feat).mean((2, 3), keepdim=True).clamp(*self.gamma_range)


# --------------------------------------------------------------------------------------------
# intensity-adaptive attention fusion


class IAAF(nn.Module):
    """Intensity-adaptive attention fusion of a gamma-corrected map and a CP-block output.

    ``forward(gamma, llie, base=None, rate=None)``: ``gamma`` ``(B, 1, 1, 1)`` > 0, ``llie``
    ``(B, C, H, W)`` > 0 (``C = channels``), ``base`` the map to gamma-correct (default ``llie``),
    ``rate`` the learned mixing rate (masking variant only). Returns ``(B, C, H, W)`` in ``[eps, 1]``:

    * plain (CPGA-Net+): ``base ** g + llie - inter(base ** g, llie)``
    * masked (CPGA-Net++): both inputs are first re-weighted by a scoring net (sigmoid maps),
      then ``(1 - m) * base ** g + m * llie - inter``, ``m = clamp(rate, 0.1, 1)``.
    """

    def __init__(self, channels: int, width: int, block: BlockKind, act: str, masking: bool,
                 eps: float, n_scoring: int = 2) -> None:
        super().__init__()
        self.conv1_post_g = _conv(2 * channels, width, 1)
        self.conv2_post_g = _block(block, width, act=act)
        self.conv3_post_g = _conv(width, channels, 1)
        self.conv_scoring = (nn.Sequential(_conv(channels, width, 1),
                                           *[_block(block, width, act=act) for _ in range(n_scoring)],
                                           _conv(width, channels, 1), nn.Sigmoid())
                             if masking else None)
        self.eps = eps

    def forward(self, gamma: torch.Tensor, llie: torch.Tensor, base: torch.Tensor | None = None,
                rate: torch.Tensor | None = None) -> torch.Tensor:
        # the power law and the subtraction are precision-sensitive: under autocast they run in the
        # parameters' own precision (float32, as trained), not in float16
        dt = self.conv1_post_g.weight.dtype
        with torch.autocast(device_type=llie.device.type, enabled=False):
            return self._fuse(gamma.to(dt), llie.to(dt), None if base is None else base.to(dt),
                              None if rate is None else rate.to(dt))

    def _fuse(self, gamma: torch.Tensor, llie: torch.Tensor, base: torch.Tensor | None,
              rate: torch.Tensor | None) -> torch.Tensor:
        corrected = torch.pow(llie if base is None else base, gamma)
        if self.conv_scoring is None:
            a, b = corrected, llie
        else:
            a, b = corrected * self.conv_scoring(corrected), llie * self.conv_scoring(llie)
        inter = self.conv3_post_g(self.conv2_post_g(self.conv1_post_g(torch.cat([a, b], dim=1))))
        if self.conv_scoring is None:
            out = corrected + llie - inter
        else:
            m = (torch.full((), 0.5, device=llie.device) if rate is None else rate).clamp(0.1, 1.0)
            out = (1 - m) * corrected + m * llie - inter
        return out.clamp(self.eps, 1.0)


# --------------------------------------------------------------------------------------------
# the networks


class _CPGANet(EnhancementModel):
    """Shared trunk of CPGA-Net+ / CPGA-Net++; subclasses fix the variant attributes below.

    Config: ``n_channels`` (trunk width, 8), ``gamma_channels`` (gamma estimator width, 16),
    ``n_blocks`` (inner CP blocks, each followed by an IAAF block, 2), ``iaaf_channels`` (IAAF width, 16).
    """

    size_multiple = 2
    default_proc_size = 400  # LOL's short side, the scale the published weights were trained at
    needs_weights = True

    #: residual block of the "A" branches and IAAF modules
    block: ClassVar[BlockKind] = "res"
    #: masked IAAF with learned mixing rates (CPGA-Net++)
    masking: ClassVar[bool] = False
    #: ``align_corners`` of the bilinear skips that cross the stride-2 stages
    align_corners: ClassVar[bool] = True
    #: lower clamp of the CP block and IAAF outputs
    eps: ClassVar[float] = 1e-9
    #: clamp of the estimated gamma
    gamma_range: ClassVar[tuple[float, float]] = (1e-8, 1e8)

    def __init__(self, n_channels: int = 8, gamma_channels: int = 16, n_blocks: int = 2,
                 iaaf_channels: int = 16) -> None:
        super().__init__(n_channels=n_channels, gamma_channels=gamma_channels, n_blocks=n_blocks,
                         iaaf_channels=iaaf_channels)
        cp: dict[str, Any] = dict(width=n_channels, block=self.block, align_corners=self.align_corners,
                                  eps=self.eps)
        self.cpblks_pre = CPBlock(3, n_channels, **cp)
        self.cpblks = nn.ModuleList([CPBlock(n_channels, n_channels, **cp) for _ in range(n_blocks)])
        self.cpblk_post = CPBlock(n_channels, 3, **cp)
        self.ga_est = GammaEstimator(gamma_channels, self.align_corners, self.gamma_range)
        # the final IAAF of CPGA-Net+ uses ReLU in its ResBlock, the inner ones GELU
        self.iaaf = IAAF(3, iaaf_channels, self.block, act="relu", masking=self.masking, eps=self.eps)
        self.iaafblks = nn.ModuleList([IAAF(n_channels, iaaf_channels, self.block, act="gelu",
                                            masking=self.masking, eps=self.eps) for _ in range(n_blocks)])
        if self.masking:
            self.iaaf_masking_rate = nn.Parameter(torch.full((1,), 0.5))
            self.iaafblks_masking_rate = nn.Parameter(torch.full((n_blocks,), 0.5))

    def forward_parts(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(B, 3, H, W)`` in [0, 1], H and W even -> ``(enhanced (B, 3, H, W) in [eps, 1],
        gamma (B, 1, 1, 1), CP-trunk output (B, 3, H, W) in [0, 2])``."""
        gamma = self.ga_est(x)
        y = self.cpblks_pre(x)
        for i, (cpblk, iaaf) in enumerate(zip(self.cpblks, self.iaafblks)):
            y_ = cpblk(y) + y
            rate = self.iaafblks_masking_rate[i] if self.masking else None
            y = iaaf(gamma, y_, rate=rate) + y_
        trunk = self.cpblk_post(y) + x
        if self.masking:
            out = self.iaaf(gamma, trunk, base=x, rate=self.iaaf_masking_rate)
        else:
            out = self.iaaf(gamma, trunk)
        return out, gamma, trunk

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W)`` float in [0, 1], any H, W -> ``(B, 3, H, W)`` float in [0, 1]."""
        xp, size = pad_to_multiple(x, self.size_multiple)
        return crop_to(self.forward_parts(xp)[0], size).clamp(0.0, 1.0)


@register_model("cpga_net_plus")
class CPGANetPlus(_CPGANet):
    """CPGA-Net+ (ResBlocks, plain IAAF): ``(B, 3, H, W)`` in [0, 1] -> ``(B, 3, H, W)`` in [0, 1]."""


@register_model("cpga_net_plusplus")
class CPGANetPlusPlus(_CPGANet):
    """CPGA-Net++ (ConvNeXt blocks, masked IAAF): ``(B, 3, H, W)`` in [0, 1] -> ``(B, 3, H, W)`` in [0, 1]."""

    block = "convnext"
    masking = True
    align_corners = False
    eps = 1e-4
    gamma_range = (1e-2, 4.0)


# --------------------------------------------------------------------------------------------
# loading the published files


def is_cpga_state_dict(keys: Any) -> bool:
    """Whether a collection of state-dict keys is a CPGA-Net+ / ++ one."""
    names = {str(k).removeprefix("module.") for k in keys}
    return {"cpblks_pre.prep_module.0.weight", "ga_est.conv1_g.weight", "iaaf.conv1_post_g.weight"} <= names


def _config_from_state_dict(sd: dict[str, torch.Tensor]) -> dict[str, int]:
    """Network size read off the tensor shapes (the published files use 8 / 16 / 2 / 16)."""
    n_blocks = len({k.split(".")[1] for k in sd if k.startswith("cpblks.")})
    return dict(n_channels=int(sd["cpblks_pre.prep_module.0.weight"].shape[0]),
                gamma_channels=int(sd["ga_est.conv1_g.weight"].shape[0]),
                n_blocks=n_blocks,
                iaaf_channels=int(sd["iaaf.conv1_post_g.weight"].shape[0]))


def load_official_cpga_net(path: str | os.PathLike) -> CPGANetPlus | CPGANetPlusPlus:
    """Load a published CPGA-Net+ / CPGA-Net++ file (``{"epoch", "state_dict", "optimizer"}``, or a
    bare state dict) unchanged, with ``strict=True``. The variant is told by its keys (``++`` has
    ``iaaf_masking_rate``) and the size by its tensor shapes; subnormal floats are flushed to zero.
    Returns the model in eval mode; ``ModelError`` with one line if the file does not fit."""
    sd = read_foreign_state_dict(path, "CPGA-Net+")
    if not is_cpga_state_dict(sd):
        raise ModelError(f"{path} is not a CPGA-Net+ / CPGA-Net++ state dict (no cpblks_pre / ga_est / iaaf weights)")
    cls = CPGANetPlusPlus if "iaaf_masking_rate" in sd else CPGANetPlus
    model = cls(**_config_from_state_dict(sd))
    try:
        model.load_state_dict(sd, strict=True)
    except RuntimeError as e:
        # the first line only names the class; the first detail ("Missing key(s) ...") says why
        lines = [line.strip() for line in str(e).splitlines() if line.strip()]
        why = (lines[1] if len(lines) > 1 else lines[0])[:200] if lines else "load_state_dict failed"
        raise ModelError(f"{path}: weights do not match {cls.__name__} ({why})") from e
    return model.eval()
