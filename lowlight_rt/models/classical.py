"""Classical (non-learned) low-light enhancer: adaptive gamma + CLAHE + guided-filter denoising.

No weights, no training: every step is a hand-designed image-processing operation. It is the
runtime's default only where the trained student (``assets/models/realtime.pt``) is absent.

At the processing resolution it computes a smooth per-pixel luminance gain and an edge-preserving
denoising operator, and returns them as an affine operator (see :mod:`.affine`) that the engine
applies to the full-resolution RGB frame; colours are preserved because all three channels of a
pixel get (nearly) the same gain.

1. Luminance ``Y`` (Rec. 601) and a lightly smoothed ``Ys`` (3x3 box) so the gain map is smooth and
   amplifies the noise no more than the signal.
2. Adaptive gamma: ``gamma = ln(target_mean) / ln(geometric mean of Ys)``, clamped to
   ``[gamma_min, gamma_max]``, so the log-average luminance maps to ``target_mean``. For video the
   log-average is smoothed over frames with an exponential moving average (``temporal_alpha``) that
   snaps on a scene cut (a jump larger than ``scene_cut`` in log units) so exposure does not flicker.
3. CLAHE on ``Ys ** gamma`` (OpenCV on CPU, kornia elsewhere), blended by ``clahe_amount``.
4. Gain ``= target / Ys``, limited by ``max_gain`` and so that the brightest channel does not clip.
5. Denoising: a self-guided filter (He et al.) on the brightened picture with the regularisation set
   from the noise level (Immerkaer's estimator, also smoothed over frames) times ``denoise``: flat
   areas are averaged, edges keep the input's detail.
"""

from __future__ import annotations

import math
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from kornia.color import rgb_to_grayscale

from .affine import AffineOperatorModel, neutralize_dark_chroma
from .registry import register_model

#: default input-luma thresholds of the dark-chroma neutralisation (grey below, colour above)
GREY_BLACK, GREY_COLOUR = 0.02, 0.08


def _box(x: torch.Tensor, radius: int) -> torch.Tensor:
    """Mean over a ``(2r+1)^2`` window (edges mirrored), ``(B, C, H, W)`` -> same shape.

    CPU tensors use OpenCV's running-sum box filter (torch's stride-1 pooling is far slower there).
    """
    if radius <= 0:
        return x
    k = 2 * radius + 1
    if x.device.type == "cpu" and x.dtype == torch.float32 and not x.requires_grad:
        src = x.contiguous().numpy()
        out = np.empty_like(src)
        for b in range(src.shape[0]):
            for c in range(src.shape[1]):
                cv2.boxFilter(src[b, c], -1, (k, k), dst=out[b, c], borderType=cv2.BORDER_REFLECT_101)
        return torch.from_numpy(out)
    padded = F.pad(x, (radius, radius, radius, radius), mode="reflect") if min(x.shape[-2:]) > radius else \
        F.pad(x, (radius, radius, radius, radius), mode="replicate")
    return F.avg_pool2d(padded, k, stride=1)


def estimate_noise_sigma(y: torch.Tensor) -> torch.Tensor:
    """Immerkaer's noise standard deviation per channel: ``(B, C, H, W)`` -> ``(B, C)`` (units of ``y``)."""
    h, w = y.shape[-2:]
    if h < 3 or w < 3:
        return y.new_zeros(y.shape[:2])
    # the kernel [[1,-2,1],[-2,4,-2],[1,-2,1]] is separable: second difference along H, then W
    d = y[..., :-2, :] - 2 * y[..., 1:-1, :] + y[..., 2:, :]
    d = d[..., :-2] - 2 * d[..., 1:-1] + d[..., 2:]
    return d.abs().mean(dim=(2, 3)) * (math.sqrt(math.pi / 2.0) / 6.0)


def _clahe(y: torch.Tensor, clip: float, grid: int) -> torch.Tensor:
    """CLAHE of ``y`` ``(B, 1, H, W)`` in [0, 1] (OpenCV for CPU tensors, kornia otherwise)."""
    if y.device.type != "cpu":
        import kornia

        return kornia.enhance.equalize_clahe(y, clip_limit=float(clip), grid_size=(grid, grid))
    op = cv2.createCLAHE(clipLimit=float(clip), tileGridSize=(grid, grid))
    y8 = (y.detach() * 255.0 + 0.5).clamp_(0, 255).to(torch.uint8).numpy()
    out = np.stack([op.apply(np.ascontiguousarray(y8[b, 0])) for b in range(y8.shape[0])])
    return torch.from_numpy(out).to(y.dtype).div_(255.0).unsqueeze(1)


@register_model("classical")
class ClassicalEnhancer(AffineOperatorModel):
    """Classical enhancer (no learning): adaptive gamma + CLAHE-style local contrast + guided-filter denoise.

    Args:
        target_mean: the frame's log-average luminance is mapped to this value (0..1).
        gamma_min, gamma_max: clamp of the adaptive gamma (``gamma_max=1`` never darkens).
        clahe_clip, clahe_grid: CLAHE clip limit and tile grid (tiles per side).
        clahe_amount: blend of the CLAHE result into the gamma-corrected luminance (0 = gamma only).
        max_gain: upper limit of the luminance gain.
        denoise: guided-filter regularisation in units of the estimated noise (0 disables).
        denoise_radius: guided-filter window radius at the processing resolution.
        temporal_alpha: weight of the newest frame in the exposure / noise moving average
            (1.0 = no temporal smoothing).
        scene_cut: jump of the log-average luminance (natural log) above which the moving average
            restarts from the new frame.
        grey_black, grey_colour: input luma (0..1) below which the output is grey, and above which
            its colour is untouched (smooth in between; see
            :func:`~lowlight_rt.models.affine.neutralize_dark_chroma`); ``grey_colour=0`` disables.
    """

    #: the gain map is smooth, so a coarse grid suffices (about 3.7x below 720p)
    default_proc_size = 192
    size_multiple = 8
    needs_weights = False

    def __init__(self, target_mean: float = 0.4, gamma_min: float = 0.25, gamma_max: float = 1.0,
                 clahe_clip: float = 2.0, clahe_grid: int = 8, clahe_amount: float = 0.5,
                 max_gain: float = 12.0, denoise: float = 2.0, denoise_radius: int = 2,
                 temporal_alpha: float = 0.2, scene_cut: float = 0.5,
                 grey_black: float = GREY_BLACK, grey_colour: float = GREY_COLOUR) -> None:
        super().__init__(target_mean=target_mean, gamma_min=gamma_min, gamma_max=gamma_max,
                         clahe_clip=clahe_clip, clahe_grid=clahe_grid, clahe_amount=clahe_amount,
                         max_gain=max_gain, denoise=denoise, denoise_radius=denoise_radius,
                         temporal_alpha=temporal_alpha, scene_cut=scene_cut,
                         grey_black=grey_black, grey_colour=grey_colour)
        if grey_colour and not 0.0 <= grey_black < grey_colour:
            raise ValueError("need 0 <= grey_black < grey_colour (or grey_colour=0 to disable)")
        if not 0.0 < target_mean < 1.0:
            raise ValueError("target_mean must be in (0, 1)")
        if not 0.0 < gamma_min <= gamma_max:
            raise ValueError("need 0 < gamma_min <= gamma_max")
        if not 0.0 < temporal_alpha <= 1.0:
            raise ValueError("temporal_alpha must be in (0, 1]")
        self.target_mean = float(target_mean)
        self.gamma_min, self.gamma_max = float(gamma_min), float(gamma_max)
        self.clahe_clip, self.clahe_grid, self.clahe_amount = float(clahe_clip), int(clahe_grid), float(clahe_amount)
        self.max_gain = float(max_gain)
        self.denoise, self.denoise_radius = float(denoise), int(denoise_radius)
        self.temporal_alpha, self.scene_cut = float(temporal_alpha), float(scene_cut)
        self.grey_black, self.grey_colour = float(grey_black), float(grey_colour)
        self._state: torch.Tensor | None = None  # (2,) smoothed [log-average luminance, noise sigma]

    # -- temporal state --------------------------------------------------------------------------
    def reset_state(self) -> None:
        """Forget the exposure / noise history (call on a seek or a new, unrelated input)."""
        self._state = None

    def _smooth(self, stats: torch.Tensor) -> torch.Tensor:
        """Exponential moving average over the frames of ``stats`` ``(B, 2)``, in batch order."""
        out = []
        state = self._state
        for b in range(stats.shape[0]):
            cur = stats[b]
            if state is None or state.device != cur.device:
                state = cur
            else:
                cut = (cur[0] - state[0]).abs() > self.scene_cut
                state = torch.where(cut, cur, state + self.temporal_alpha * (cur - state))
            out.append(state)
        self._state = state.detach()
        return torch.stack(out)

    # -- the enhancer ----------------------------------------------------------------------------
    def predict_operator(self, low: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``low (B, 3, h, w)`` in [0, 1] -> ``(offset (B, 3, h, w), gain (B, 3, h, w))`` (float32)."""
        x = low.detach().float().clamp(0, 1)
        y = rgb_to_grayscale(x)   # BT.601 luma
        ys = _box(y, 1)
        eps = 1.0 / 255.0

        log_mean = (ys + eps).log().mean(dim=(1, 2, 3))
        sigma = estimate_noise_sigma(x).mean(1)  # mean of the channels' noise (includes chroma noise)
        log_mean, sigma = self._smooth(torch.stack([log_mean, sigma], dim=1)).unbind(1)

        # adaptive gamma: geometric mean -> target_mean
        gamma = (math.log(self.target_mean) / log_mean.clamp(max=-1e-3)).clamp(self.gamma_min, self.gamma_max)
        y_gamma = (ys + eps).pow(gamma.view(-1, 1, 1, 1)).clamp(0, 1)
        if self.clahe_amount > 0:
            y_target = torch.lerp(y_gamma, _clahe(y_gamma, self.clahe_clip, self.clahe_grid), self.clahe_amount)
        else:
            y_target = y_gamma
        # gain, limited so that the brightest channel (smoothed) stays below 1
        vmax = _box(x.amax(1, keepdim=True), 1)
        gain = torch.minimum(y_target / (ys + eps), 1.0 / (vmax + eps)).clamp(1.0 / self.max_gain, self.max_gain)

        if self.denoise <= 0:
            return self._grey(torch.zeros_like(x), gain.expand_as(x).contiguous(), x)
        # self-guided filter on the brightened picture E = gain * x, per channel
        r = self.denoise_radius
        e = gain * x
        mean = _box(e, r)
        var = (_box(e * e, r) - mean * mean).clamp_min(0)
        noise_var = (self.denoise * sigma.view(-1, 1, 1, 1) * gain).square()
        a = var / (var + noise_var + 1e-8)
        b = (1 - a) * mean
        a, b = _box(a, r), _box(b, r)
        return self._grey(b, a * gain, x)

    def _grey(self, offset: torch.Tensor, gain: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.grey_colour <= 0:
            return offset, gain
        return neutralize_dark_chroma(offset, gain, _box(x, 2), self.grey_black, self.grey_colour)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W)`` in [0, 1] -> ``(B, 3, H, W)`` in [0, 1], processed at the given resolution."""
        return self.enhance(x, x)

    def extra_repr(self) -> str:
        cfg: dict[str, Any] = self.config
        return ", ".join(f"{k}={v}" for k, v in cfg.items())
