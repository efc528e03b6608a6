"""The real-time student: a small encoder/decoder that predicts a denoising affine operator.

Built for a 2-core CPU at 720p and 30 FPS including decode and encode, so the network sees only the
downsampled frame (short side ``default_proc_size``) and its output is a per-pixel affine operator on
a grid at half the processing resolution (see :mod:`.affine`)::

    base, G   = net(low)                      # (B, 3, h/2, w/2) in (0, 1), (B, 1|3, h/2, w/2) >= 0
    offset    = base - G * avgpool2(low)
    out       = up(offset) + up(G) * full     # ~= up(base) + up(G) * (full - up(avgpool2(low)))

``base`` is the network's denoised, brightened picture; ``G`` is the gain given to the detail the
network could not see (finer than its grid). Where ``G`` is small the full-resolution noise is
suppressed, where it is large edges and texture pass through: a learned guided filter, which costs
two bilinear resizes and one multiply-add per full-resolution pixel.

Network (``w`` = ``width``, ``d`` = ``depth``), as follows::

    in    x / mean(x)                   @ 1     (processing resolution, padded to a multiple of 8)
    stem  conv3x3 s2 3 -> w             @ 1/2   -> skip0
    down1 conv2x2 s2 w -> 2w, d blocks  @ 1/4   -> skip1
    down2 conv2x2 s2 2w -> 4w, d blocks @ 1/8   + global context (FiLM from mean features, log mean(x))
    up1   1x1 4w -> 2w, up, + skip1, block    @ 1/4
    up0   1x1 2w -> w, up, + skip0, light block @ 1/2
    head  1x1 w -> 3 + gain_channels          @ 1/2

Blocks are residual depthwise-separable pairs (dw3x3, 1x1, act, dw3x3, 1x1); the light block at 1/2
keeps one (dw3x3, 1x1, act). Upsampling is nearest x2 (the levels are exact halves).

:meth:`forward` runs the same path the runtime runs: it downsamples its input by ``train_scale``
(area filter, like the sources' downsampling) and applies the operator to the full input, so
training optimises exactly what ships.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from kornia.color import rgb_to_grayscale
from torch import nn

from .affine import AffineOperatorModel, guard_highlights, local_max, neutralize_dark_chroma, window_mean
from .classical import estimate_noise_sigma
from .registry import register_model

#: ``low -> (offset, gain, x_half, level)``: :meth:`RealtimeStudent.operator_grid` or a stand-in for it
OperatorGridFn = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]]


def _act() -> nn.Module:
    return nn.LeakyReLU(0.1, inplace=True)


class Pointwise(nn.Conv2d):
    """1x1 convolution; on channels_last input it runs as one GEMM over pixels (no layout copies)."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__(c_in, c_out, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last):
            return F.linear(x.permute(0, 2, 3, 1), self.weight.flatten(1), self.bias).permute(0, 3, 1, 2)
        return super().forward(x)


class SepBlock(nn.Module):
    """``x + pw(dw(act(pw(dw(x)))))``: two depthwise-separable 3x3 convolutions with a residual.

    ``light=True`` keeps one pair, ``x + act(pw(dw(x)))`` (used at half resolution, where every
    elementwise pass is 4x dearer than one level down).
    """

    def __init__(self, channels: int, light: bool = False) -> None:
        super().__init__()
        c = channels
        layers = [nn.Conv2d(c, c, 3, padding=1, groups=c), Pointwise(c, c), _act()]
        if not light:
            layers += [nn.Conv2d(c, c, 3, padding=1, groups=c), Pointwise(c, c)]
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class GlobalContext(nn.Module):
    """FiLM from the frame's mean features and log brightness: ``f * (1 + scale) + shift``."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(channels + 1, channels), _act(), nn.Linear(channels, 2 * channels))
        nn.init.zeros_(self.mlp[-1].weight)
        nn.init.zeros_(self.mlp[-1].bias)

    def forward(self, f: torch.Tensor, log_level: torch.Tensor) -> torch.Tensor:
        """``f (B, C, h, w)``, ``log_level (B, 1)`` -> ``(B, C, h, w)``."""
        stats = torch.cat([f.mean(dim=(2, 3)), log_level], dim=1)
        scale, shift = self.mlp(stats)[..., None, None].chunk(2, dim=1)
        return f * (1 + scale) + shift


class Up(nn.Module):
    """``1x1 conv`` at the coarse level, nearest x2 to the skip's size, add the skip, act, block."""

    def __init__(self, c_in: int, c_out: int, light: bool = False) -> None:
        super().__init__()
        self.proj = Pointwise(c_in, c_out)
        self.act = _act()
        self.block = SepBlock(c_out, light)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        # levels are exact halves (input padded to a multiple of 8): nearest x2, smoothed by the block
        up = F.interpolate(self.proj(x), size=tuple(skip.shape[-2:]), mode="nearest")
        return self.block(self.act(up + skip))


@register_model("realtime")
class RealtimeStudent(AffineOperatorModel):
    """Real-time student (see module doc). ``(B, 3, H, W)`` in [0, 1] -> ``(B, 3, H, W)`` in [0, 1].

    Args:
        width: channels at half the processing resolution (2x at 1/4, 4x at 1/8).
        depth: separable residual blocks at 1/4 and at 1/8 of the processing resolution.
        gain_channels: 1 (one detail gain for all colours) or 3 (per colour channel).
        train_scale: downsampling factor :meth:`forward` uses to make the network's input (about the
            runtime's ratio, e.g. 720 / 256 = 2.8); :meth:`forward` also accepts ``scale=``.
        default_proc_size: short side the runtime processes at by default.
        color_prior: multiply the predicted base by the input's chromaticity ``(c + e) / (mean_rgb(c) + e)``
            of a ``1/prior_pool``-resolution average ``c`` (``e`` = 0.1 x frame mean, so dark noisy areas
            tend to neutral): the network then predicts brightness and colour corrections, not colour from
            scratch.
        prior_pool: 8, 4 or 2: the colour prior's averaging cell in processing pixels. A coarse prior is
            cleaner; a finer one leaves the network less blur to undo at sharp colour edges (where the
            network's correction and a coarse prior do not line up, a lit line on a dark road gets a
            fringe in the complementary colour).
        lit_hue: ``l``: where the input is already lit (its brightest colour on the operator grid above
            ``l``, fully from ``2 l``; absolute 0..1 units) and in the 8 grid cells around, the base
            keeps the input's hue at the network's brightness. A lamp, a floodlit wall or a gold tower
            is coloured by its light and is not to be white-balanced (the network, taught to remove
            casts from dark pictures, turned a gold tower green); the neighbours, because the cells
            beside a lit line on a dark road took the complement of its colour (blue dots along an
            orange lane line). ``0`` disables it.
        lit_desaturate: ``s`` in [0, 1]: how lit areas (``lit_hue``) lose saturation as they are brightened.
            ``0`` keeps the input's colour ratios exactly (a warm headlight pool brightened 4x becomes a
            saturated orange); ``1`` brightens them as a power curve on each channel would (the exponent
            that takes the input's luma to the output's, applied to the colour ratios), which is what a
            camera's tone curve does: the pool turns warm white. In between, the exponent is blended.
        lit_keep: ``k``: where the input is already exposed around a grid cell (its brightest colour,
            averaged over the 5x5 cells around it, above ``k``; fully from ``k + 0.4``; absolute 0..1
            units) the operator blends towards the identity, as ``keep_full`` does for a whole bright
            frame: a floodlit tower in a dark night photo keeps its lattice instead of being lifted
            into a flat, clipped blob. ``0`` disables it.
        mono: ``t``: a monochrome frame stays monochrome. Where the input's colour deviations (each colour
            minus the mean of the three, less its frame-wide mean, so a constant tint counts as none)
            average under ``t`` times the frame's mean level, the base is grey (fully at ``t``, not at all
            from ``2 t``): an infrared night camera's black-and-white picture gets no colour cast from a
            network taught to correct colour casts. Colour pictures measure 0.0099 and up (the lowest of
            334: night photos, SICE and IR-RGB lows and normal exposures, night-clip frames),
            black-and-white video through H.264 exactly 0. ``0`` disables it.
        out_cap, out_cap_floor: ``c``, ``a``: no output pixel's luma above ``a + c * ratio * m``, ``m`` its input's
            luma averaged over 3x3 pixels and ``ratio`` the frame's normalising gain (0.25 / mean level, at least 3);
            applied at full resolution after the operator, the pixel's colours scaled together (see
            :func:`~lowlight_rt.models.affine.cap_output_luma`). It removes the glow that the coarse
            operator spreads from lit objects into the black around them and keeps burned-in text (a
            timestamp) sharp; pixels lifted about as much as the frame are untouched. ``c = 0`` disables it.
        grey_black, grey_colour: input luma (0..1, on the operator grid) below which the output is
            grey and above which its colour is the network's (smooth in between; see
            :func:`~lowlight_rt.models.affine.neutralize_dark_chroma`): near-black areas of compressed
            video carry only a codec bias, never colour. ``grey_colour=0`` disables it.
        highlight_guard: scale the base so no channel exceeds 0.98 (hue kept: a lit yellow wall stays
            yellow instead of clipping its red channel), and lower the detail gain where the brightest
            input nearby would clip (see :func:`~lowlight_rt.models.affine.guard_highlights`).
        keep_gate: predict one "keep" weight ``k`` in (0, 1) per frame from global statistics (the mean
            deep features, log mean level, log 4-power mean level) and blend the operator towards the
            identity: ``offset *= 1 - k``, ``gain = k + (1 - k) * gain``. A well-exposed frame then
            stays itself (``k`` near 1) without the per-pixel maps having to reproduce it exactly.
        temporal_alpha: at inference (``eval()`` mode) the operator grid is averaged over frames,
            per grid cell, where the input did not change: weight ``temporal_alpha`` for the newest
            frame where the input's change ``|low_t - low_{t-1}|`` (mean over colours, in units of the
            frame's brightness: mean level scaled to 0.25, as the network sees it) is below ``motion``
            in the cell and its 8 neighbours, 1 where it is above (moving objects never ghost). ``1.0`` disables it. A scene cut (mean
            level changing by more than half) resets it; :meth:`reset_state` after a seek.
        motion: the normalised input change above which a grid cell is treated as moving.
        motion_noise: ``k``: in noisy video the threshold is at least ``k`` times the frame's noise level
            (Immerkaer's estimate on the operator grid's input, normalised like the change), so sensor
            noise alone does not count as motion and the filter averages it out where nothing moves
            (a noisy, static night scene: with ``motion`` alone every cell "moved" every frame and the
            grid flickered with the noise). ``0`` disables it.
        keep_from, keep_full: a floor under the keep weight by exposure: ``k >= smoothstep`` of the
            frame's mean level (0..1) from ``keep_from`` (no floor) to ``keep_full`` (``k = 1``): a
            frame that bright is well exposed whatever the camera, and stays itself. ``keep_full=0``
            disables the floor (the learned gate alone decides).
        detail_denoise: ``k``: scale the detail gain by ``v / (v + (k * sigma)^2)``, ``v`` the local
            (3x3) variance of the operator-grid input and ``sigma`` its noise level (Immerkaer's
            estimate on the network's input): where the picture is flat at the grid's scale, the
            detail finer than the grid is mostly noise and is not brightened (a guided filter's
            rule). ``0`` disables it.
        lift_limit: ``c``: no grid cell's base brighter (max over colours, hue kept) than
            ``0.03 + c * ratio * m``, ``m`` the largest 3x3 mean of the input (max over colours) in the cell
            and its 8 neighbours (the mean first, so noise in a dark sky does not turn into speckle) and
            ``ratio`` the normalising gain (0.25 / mean level): what the input shows as black (a night sky
            beside a floodlit building) stays dark instead of taking the grey the network spreads from
            its bright neighbours. ``0`` disables it.
    """

    default_proc_size = 256  # class-level default; the ``default_proc_size`` option overrides per instance
    size_multiple = 8
    needs_weights = True

    def __init__(self, width: int = 16, depth: int = 2, gain_channels: int = 1, train_scale: float = 2.5,
                 default_proc_size: int = 256, color_prior: bool = False,
                 grey_black: float = 0.0, grey_colour: float = 0.0, highlight_guard: bool = False,
                 keep_gate: bool = False, temporal_alpha: float = 1.0, motion: float = 0.03, motion_noise: float = 0.0,
                 keep_from: float = 0.0, keep_full: float = 0.0, detail_denoise: float = 0.0,
                 lift_limit: float = 0.0, prior_pool: int = 8, lit_hue: float = 0.0,
                 lit_keep: float = 0.0, lit_desaturate: float = 0.0, mono: float = 0.0,
                 out_cap: float = 0.0, out_cap_floor: float = 0.05) -> None:
        super().__init__(width=width, depth=depth, gain_channels=gain_channels, train_scale=train_scale,
                         default_proc_size=default_proc_size, color_prior=bool(color_prior),
                         grey_black=float(grey_black), grey_colour=float(grey_colour),
                         highlight_guard=bool(highlight_guard), keep_gate=bool(keep_gate),
                         temporal_alpha=float(temporal_alpha), motion=float(motion), motion_noise=float(motion_noise),
                         keep_from=float(keep_from), keep_full=float(keep_full),
                         detail_denoise=float(detail_denoise), lift_limit=float(lift_limit),
                         prior_pool=int(prior_pool), lit_hue=float(lit_hue), lit_keep=float(lit_keep),
                         lit_desaturate=float(lit_desaturate), mono=float(mono), out_cap=float(out_cap),
                         out_cap_floor=float(out_cap_floor))
        if out_cap < 0 or not 0.0 <= out_cap_floor <= 1.0:
            raise ValueError("need out_cap >= 0 and 0 <= out_cap_floor <= 1")
        self.out_cap, self.out_cap_floor = float(out_cap), float(out_cap_floor)
        if not 0.0 <= mono <= 0.05:
            raise ValueError("mono must be in [0, 0.05]")
        self.mono = float(mono)
        if not 0.0 <= lit_desaturate <= 1.0:
            raise ValueError("lit_desaturate must be in [0, 1]")
        self.lit_desaturate = float(lit_desaturate)
        if not 0.0 <= lit_keep < 1.0:
            raise ValueError("lit_keep must be in [0, 1)")
        self.lit_keep = float(lit_keep)
        if not 0.0 <= lit_hue <= 0.5:
            raise ValueError("lit_hue must be in [0, 0.5]")
        self.lit_hue = float(lit_hue)
        if prior_pool not in (2, 4, 8):
            raise ValueError("prior_pool must be 2, 4 or 8")
        self.prior_pool = int(prior_pool)
        if lift_limit < 0:
            raise ValueError("lift_limit must be >= 0")
        self.lift_limit = float(lift_limit)
        if keep_full and not 0.0 <= keep_from < keep_full <= 1.0:
            raise ValueError("need 0 <= keep_from < keep_full <= 1 (or keep_full=0 to disable)")
        self.keep_from, self.keep_full = float(keep_from), float(keep_full)
        if detail_denoise < 0:
            raise ValueError("detail_denoise must be >= 0")
        self.detail_denoise = float(detail_denoise)
        if not 0.0 < temporal_alpha <= 1.0:
            raise ValueError("temporal_alpha must be in (0, 1]")
        if motion <= 0:
            raise ValueError("motion must be > 0")
        if motion_noise < 0:
            raise ValueError("motion_noise must be >= 0")
        self.temporal_alpha, self.motion, self.motion_noise = float(temporal_alpha), float(motion), float(motion_noise)
        self._previous: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor] | None = None
        self.highlight_guard = bool(highlight_guard)
        if grey_colour and not 0.0 <= grey_black < grey_colour:
            raise ValueError("need 0 <= grey_black < grey_colour (or grey_colour=0 to disable)")
        self.grey_black, self.grey_colour = float(grey_black), float(grey_colour)
        self.color_prior = bool(color_prior)
        if gain_channels not in (1, 3):
            raise ValueError("gain_channels must be 1 or 3")
        if train_scale < 1:
            raise ValueError("train_scale must be >= 1")
        w = int(width)
        self.default_proc_size = int(default_proc_size)  # instance value shadows the class default
        self.gain_channels = int(gain_channels)
        self.train_scale = float(train_scale)
        self.stem = nn.Sequential(nn.Conv2d(3, w, 3, stride=2, padding=1), _act())
        self.down1 = nn.Sequential(nn.Conv2d(w, 2 * w, 2, stride=2), _act(), *[SepBlock(2 * w) for _ in range(depth)])
        self.down2 = nn.Sequential(nn.Conv2d(2 * w, 4 * w, 2, stride=2), _act(), *[SepBlock(4 * w) for _ in range(depth)])
        self.context = GlobalContext(4 * w)
        self.up1 = Up(4 * w, 2 * w)
        self.up0 = Up(2 * w, w, light=True)
        self.head = Pointwise(w, 3 + self.gain_channels)
        self.keep_gate = nn.Linear(4 * w + 2, 1) if keep_gate else None
        if self.keep_gate is not None:   # start near "enhance" (k ~ 0.02): a stage-2 init keeps its behaviour
            nn.init.normal_(self.keep_gate.weight, std=1e-3)
            nn.init.constant_(self.keep_gate.bias, -4.0)
        with torch.no_grad():  # start from detail gain ~ratio (keep detail), base ~0.5
            self.head.weight.mul_(0.1)
            self.head.bias.zero_()
            self.head.bias[3:].fill_(0.5413)  # softplus(0.5413) = 1

    def network(self, x: torch.Tensor, level: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The trained layers alone, from the padded input to the head's raw outputs.

        Args:
            x: ``(B, 3, h, w)`` float in [0, 1], ``h`` and ``w`` multiples of :attr:`size_multiple`.
            level: ``(B, 1, 1, 1)``, the mean of ``x`` plus 0.01.
        Returns:
            ``head (B, 3 + gain_channels, h/2, w/2)``, raw (base logits, gain before softplus), and
            ``deep_mean (B, 4 width)``, the deepest features averaged over the frame (the keep gate's input).
        """
        ratio = 0.25 / level  # normalising gain, at most 25
        s0 = self.stem(x * ratio)
        s1 = self.down1(s0)
        deep = self.down2(s1)
        f = self.context(deep, level.log().flatten(1))
        f = self.up0(self.up1(f, s1), s0)
        return self.head(f), deep.mean(dim=(2, 3))

    def predict_operator(self, low: torch.Tensor,
                         operator_grid: OperatorGridFn | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``low (B, 3, h, w)`` in [0, 1] -> ``offset (B, 3, ceil(h/2), ceil(w/2))``, ``gain (B, 1|3, ...)``.

        :meth:`operator_grid` (or ``operator_grid``, a stand-in with the same arguments and results:
        the same computation exported to ONNX and run by onnxruntime on the CPU, see
        :mod:`lowlight_rt.inference.onnx_operator`), then, at inference, the temporal filter (the only
        step with state).
        """
        offset, gain, x_half, level = (operator_grid or self.operator_grid)(low)
        if self.temporal_alpha < 1.0 and not self.training:
            offset, gain = self._smooth_over_time(x_half, level, offset, gain)
        return offset, gain

    def operator_grid(self, low: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """The operator before the temporal filter: everything :meth:`predict_operator` does without state.

        ``low (B, 3, h, w)`` in [0, 1] -> ``offset (B, 3, h', w')``, ``gain (B, 1|3, h', w')`` (``h' = ceil(h/2)``,
        ``w' = ceil(w/2)``), ``x_half (B, 3, h', w')`` (the input averaged over 2x2) and ``level (B, 1, 1, 1)``
        (its mean + 0.01): the last two are what the temporal filter compares frames by.

        The network sees the input normalised by its mean brightness (``ratio = 0.25 / mean``); the
        brightness itself enters through the global context, so the features do not depend on the
        exposure. The detail gain is predicted relative to ``ratio`` (initially equal to it), so
        detail starts out brightened like the picture and the network learns where to suppress it.
        """
        h, w = low.shape[-2:]
        m = self.size_multiple
        ph, pw = (-h) % m, (-w) % m
        x = F.pad(low, (0, pw, 0, ph), mode="replicate") if (ph or pw) else low
        level = x.mean(dim=(1, 2, 3), keepdim=True) + 1e-2
        ratio = 0.25 / level  # normalising gain, at most 25
        head, deep_mean = self.network(x, level)
        keep = None
        if self.keep_gate is not None:  # (B, 1, 1, 1) in (0, 1), from global statistics only
            x2 = x * x   # (x^2)^2: two multiplies, several times cheaper than pow(4) on CPU
            p4 = (x2 * x2).mean(dim=(1, 2, 3), keepdim=True).add(1e-8).pow(0.25) + 1e-2
            stats = torch.cat([deep_mean, level.log().flatten(1), p4.log().flatten(1)], dim=1)
            keep = torch.sigmoid(self.keep_gate(stats))[..., None, None]
        gh, gw = (h + 1) // 2, (w + 1) // 2
        # NCHW-contiguous from here: elementwise ops on channel slices of channels_last are slow
        out = head[..., :gh, :gw].contiguous()
        # 2x2 mean (bilinear at exactly 1/2 with half-pixel centres; faster than avg_pool2d on CPU)
        x_half_padded = F.interpolate(x, scale_factor=0.5, mode="bilinear", align_corners=False).contiguous()
        x_half = x_half_padded[..., :gh, :gw].contiguous()
        base = torch.sigmoid(out[:, :3])
        if self.color_prior:  # input chromaticity on a coarse grid, smooth and nearly free of chroma noise
            # = avg_pool2d(x, prior_pool): the padded size is a multiple of 8, so cells of the half map nest
            c = F.avg_pool2d(x_half_padded, self.prior_pool // 2) if self.prior_pool > 2 else x_half_padded
            e = 0.1 * level
            chroma = (c + e) / (c.mean(dim=1, keepdim=True) + e)
            chroma = F.interpolate(chroma, scale_factor=self.prior_pool / 2, mode="bilinear",
                                   align_corners=False)   # -> the operator grid (1/2)
            base = base * chroma[..., :gh, :gw]
        brightest = (x_half.amax(dim=1, keepdim=True) if (self.lit_hue > 0 or self.lift_limit > 0 or self.lit_keep > 0)
                     else None)
        if self.lit_hue > 0:   # lit areas keep the input's hue: a gold tower is not white-balanced to green
            t = ((brightest - self.lit_hue) / self.lit_hue).clamp(0, 1)   # from lit_hue to 2 x lit_hue
            w = local_max(t * t * (3 - 2 * t), 1)   # and the cells beside them: no complement-coloured rim
            luma_in, luma_out = rgb_to_grayscale(x_half) + 1e-4, rgb_to_grayscale(base)
            ratios = x_half / luma_in   # the input's colour as ratios to its luma
            if self.lit_desaturate > 0:   # brightened like a power curve per channel: less saturated
                power = (luma_out.clamp(1e-4, 1.0).log() / luma_in.clamp(max=0.9999).log()).clamp(0, 1)
                ratios = ratios.clamp_min(1e-4) ** (1 - self.lit_desaturate * (1 - power))
                ratios = ratios / (rgb_to_grayscale(ratios) + 1e-6)   # the luma stays the network's
            same_hue = ratios * luma_out
            base = torch.lerp(base, same_hue, w)
        # hue-preserving limits on the base's brightest channel, applied as one scale
        limit = 0.98 if self.highlight_guard else None   # roll-off: no channel above 0.98
        if self.lift_limit > 0:   # black stays black: a cell is at most c x ratio x its brightest neighbour
            v = window_mean(brightest, 1)
            cap = 0.03 + self.lift_limit * ratio * local_max(v, 1)   # mean first: noise makes no speckle
            limit = cap if limit is None else cap.clamp(max=limit)
        if limit is not None:
            base = base * (limit / base.amax(dim=1, keepdim=True).clamp_min(1e-6)).clamp(max=1.0)
        if self.mono > 0:   # black-and-white input (an infrared camera): a grey base, no colour cast
            d = x_half - x_half.mean(dim=1, keepdim=True)
            spread = (d - d.mean(dim=(2, 3), keepdim=True)).abs().mean(dim=(1, 2, 3), keepdim=True) / level
            t = ((2 * self.mono - spread) / self.mono).clamp(0, 1)   # 1 up to mono, 0 from 2 x mono
            base = torch.lerp(base, rgb_to_grayscale(base).expand_as(base), t * t * (3 - 2 * t))
        gain = F.softplus(out[:, 3:]) * ratio  # detail gain relative to the normalising gain
        if self.detail_denoise > 0:   # flat at the grid's scale: the finer detail is noise
            sigma = estimate_noise_sigma(x).mean(dim=1).view(-1, 1, 1, 1)
            y = x_half.mean(dim=1, keepdim=True)
            mean = window_mean(y, 1)
            var = (window_mean(y * y, 1) - mean * mean).clamp_min(0)
            gain = gain * (var / (var + (self.detail_denoise * sigma) ** 2 + 1e-10))
        offset = torch.addcmul(base, gain, x_half, value=-1.0)
        if self.highlight_guard:
            offset, gain = guard_highlights(offset, gain, x_half)
        if self.grey_colour > 0:
            offset, gain = neutralize_dark_chroma(offset, gain, x_half, self.grey_black, self.grey_colour)
        if self.keep_full > 0:   # exposure floor: a well-exposed frame stays itself on any camera
            t = ((level - 1e-2 - self.keep_from) / (self.keep_full - self.keep_from)).clamp(0, 1)
            floor = t * t * (3 - 2 * t)
            keep = floor if keep is None else torch.maximum(keep, floor)
        if self.lit_keep > 0:   # locally well exposed: stay close to the input (per grid cell)
            t = ((window_mean(brightest, 2) - self.lit_keep) / 0.4).clamp(0, 1)
            local = t * t * (3 - 2 * t)
            keep = local if keep is None else torch.maximum(keep, local)
        if keep is not None:
            offset = offset * (1 - keep)
            gain = torch.lerp(gain, torch.ones_like(gain), keep)
        return offset, gain, x_half, level

    def output_cap(self, low: torch.Tensor) -> tuple[float, torch.Tensor] | None:
        """``(out_cap_floor, out_cap x ratio (B,))`` for :func:`~lowlight_rt.models.affine.cap_output_luma`, or ``None`` when disabled."""
        if self.out_cap <= 0:
            return None
        # the frame's normalising gain, at least 3: then a single lit pixel on black (a star, a distant lamp:
        # its 3x3 mean is a ninth of it) is never capped, and a well-exposed frame stays itself
        ratio = (0.25 / (low.mean(dim=(1, 2, 3)) + 1e-2)).clamp(min=3.0)
        return self.out_cap_floor, self.out_cap * ratio

    def reset_state(self) -> None:
        """Forget the previous frame's operator (call after a seek or a new clip)."""
        self._previous = None

    def _smooth_over_time(self, x_half: torch.Tensor, level: torch.Tensor, offset: torch.Tensor,
                          gain: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Motion-adaptive moving average of the operator grid over the frames of the batch, in order."""
        offsets, gains = [], []
        for b in range(x_half.shape[0]):
            cur = (x_half[b:b + 1].detach(), level[b:b + 1].detach(), offset[b:b + 1], gain[b:b + 1])
            prev = self._previous
            if prev is None or any(p.shape != c.shape or p.device != c.device for p, c in zip(prev, cur)):
                state = cur                                                   # new clip / new size
            else:
                # change in units of the frame's brightness (mean level -> 0.25, as the network sees it),
                # spread to the 8 neighbours: the operator is interpolated between grid cells
                change = (cur[0] - prev[0]).abs().mean(dim=1, keepdim=True) * (0.25 / cur[1])
                # a scene cut takes the new operator everywhere (lerp with weight 1 is exact); kept a
                # tensor, so a GPU stream never waits for the host here
                cut = (cur[1] - prev[1]).abs() > 0.5 * prev[1]
                threshold = self.motion
                if self.motion_noise > 0:   # sensor noise is not motion: the threshold follows the noise level
                    noise = estimate_noise_sigma(cur[0]).mean(dim=1).view(-1, 1, 1, 1) * (0.25 / cur[1])
                    threshold = torch.clamp(self.motion_noise * noise, min=self.motion)
                moving = (local_max(change, 1) > threshold) | cut
                a = torch.where(moving, 1.0, self.temporal_alpha).to(offset.dtype)
                # the reference input follows the output: a slow drift is tracked, not accumulated
                state = (torch.lerp(prev[0], cur[0], a), cur[1], torch.lerp(prev[2], cur[2], a),
                         torch.lerp(prev[3], cur[3], a))
            self._previous = tuple(t.detach() for t in state)
            offsets.append(state[2])
            gains.append(state[3])
        return torch.cat(offsets), torch.cat(gains)

    def forward(self, x: torch.Tensor, scale: float | None = None) -> torch.Tensor:
        """Training path = runtime path: downsample ``x`` by ``scale`` (default ``train_scale``), enhance.

        ``x (B, 3, H, W)`` in [0, 1] -> ``(B, 3, H, W)`` in [0, 1].
        """
        s = self.train_scale if scale is None else float(scale)
        h, w = x.shape[-2:]
        size = (max(1, round(h / s)), max(1, round(w / s)))
        low = F.interpolate(x, size=size, mode="area") if size != (h, w) else x
        return self.enhance(x, low)
