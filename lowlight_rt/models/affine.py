"""Models whose full-resolution output is a per-pixel affine map predicted at low resolution.

Such a model looks at the downsampled input ``low`` and predicts an *operator*: an ``offset``
``(B, 3, h', w')`` and a ``gain`` ``(B, 1|3, h', w')`` on a coarse grid that covers the frame. The
full-resolution output is

    ``out = clamp(up(offset) + up(gain) * full, 0, 1)``

with ``up`` a bilinear resize (half-pixel centres, the same as ``cv2.INTER_LINEAR``). Where the gain
is high the input's full-resolution detail is kept; where it is low (flat, noisy areas) the offset,
which the model computed from a smoothed / denoised view, takes over: a learned guided filter. The
operator is cheap to apply at 720p/1080p, and the engine can fold the strength blend into it:
``in + s * (out - in) = s * offset + (1 + s * (gain - 1)) * in``.
"""

from __future__ import annotations

import abc

import torch
import torch.nn.functional as F
from kornia.color import rgb_to_grayscale

from .base import EnhancementModel, resize


def apply_affine_operator(full: torch.Tensor, offset: torch.Tensor, gain: torch.Tensor) -> torch.Tensor:
    """``clamp(up(offset) + up(gain) * full, 0, 1)``.

    Args:
        full: ``(B, 3, H, W)`` float in [0, 1].
        offset: ``(B, 3, h, w)`` float (any range).
        gain: ``(B, 1|3, h, w)`` float, usually >= 0.
    Returns:
        ``(B, 3, H, W)`` float in [0, 1].
    """
    size = tuple(full.shape[-2:])
    return torch.addcmul(resize(offset, size), resize(gain, size), full).clamp(0, 1)


def cap_output_luma(out: torch.Tensor, full: torch.Tensor, floor: float | torch.Tensor,
                    slope: torch.Tensor) -> torch.Tensor:
    """Scale each pixel's colours together so its luma is at most ``floor + slope * box3(luma(full))``.

    The grid operator lifts a cell as a whole; where a cell mixes bright and black pixels (a floodlit
    building's edge against the night sky, the strokes of a burned-in timestamp) its smooth base lifts
    the black ones to a glow. Capped by a few times the frame's gain over their own (3x3-averaged)
    input, they stay dark; every pixel lifted about as much as the frame is left alone.

    Args:
        out: ``(B, 3, H, W)`` float in [0, 1], the operator's output.
        full: ``(B, 3, H, W)`` float in [0, 1], the input.
        floor: luma every pixel may reach whatever its input (0..1; a float or a 0-d tensor).
        slope: ``(B,)`` largest luma gain over the input (per frame).
    Returns:
        ``(B, 3, H, W)`` float in [0, 1].
    """
    luma_in = F.avg_pool2d(rgb_to_grayscale(full), 3, stride=1, padding=1, count_include_pad=False)
    limit = floor + slope.to(out.dtype).view(-1, 1, 1, 1) * luma_in
    scale = (limit / rgb_to_grayscale(out).clamp_min(1e-6)).clamp(max=1.0)
    return out * scale


def neutralize_dark_chroma(offset: torch.Tensor, gain: torch.Tensor, low: torch.Tensor,
                           black: float, colour: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Pull an operator's output towards grey where the input is too dark to carry colour.

    In the darkest areas of real footage the input's chroma is a codec / sensor bias of a code or
    two, and any brightening multiplies it into purple or green blotches (and the block grid with
    it). With ``s`` = smoothstep of the input luma from ``black`` (``s = 0``) to ``colour``
    (``s = 1``), the output becomes ``Y_out + s * (out - Y_out)``: grey where ``s = 0``, untouched
    where ``s = 1``. The luma part that is not detail is taken from the operator grid, so the result
    is again an affine operator::

        offset' = s * offset + (1 - s) * luma(offset + gain * low)
        gain'   = s * gain

    Args:
        offset: ``(B, 3, h, w)`` float.
        gain: ``(B, 1|3, h, w)`` float.
        low: ``(B, 3, h, w)`` float in [0, 1], the input averaged onto the operator grid.
        black, colour: luma thresholds in [0, 1] (``black < colour``).
    Returns:
        ``(offset', gain')`` of the same shapes.
    """
    if not 0.0 <= black < colour:
        raise ValueError("need 0 <= black < colour")
    y_in = rgb_to_grayscale(low)
    s = ((y_in - black) / (colour - black)).clamp(0, 1)
    s = s * s * (3 - 2 * s)
    y_out = rgb_to_grayscale(offset + gain * low)
    return torch.lerp(y_out, offset, s), gain * s


def local_max(x: torch.Tensor, radius: int = 1) -> torch.Tensor:
    """Max over a ``(2 radius + 1)^2`` window, edges replicated: ``(B, C, H, W)`` -> same shape.

    The same values as ``max_pool2d(x, 2 radius + 1, stride=1, padding=radius)``, as two separable
    passes of elementwise maxima (several times faster on CPU than pooling with indices).
    """
    if radius <= 0:
        return x
    h, w = x.shape[-2:]
    p = torch.nn.functional.pad(x, (radius, radius, radius, radius), mode="replicate")
    rows = p[..., 0:h, :]
    for i in range(1, 2 * radius + 1):
        rows = torch.maximum(rows, p[..., i:i + h, :])
    out = rows[..., 0:w]
    for j in range(1, 2 * radius + 1):
        out = torch.maximum(out, rows[..., j:j + w])
    return out


def window_mean(x: torch.Tensor, radius: int = 1) -> torch.Tensor:
    """Mean over a ``(2 radius + 1)^2`` window of the pixels inside the frame: ``(B, C, H, W)`` -> same.

    The same values as ``avg_pool2d(x, 2 radius + 1, stride=1, padding=radius,
    count_include_pad=False)``, as two separable passes of shifted sums divided by the window's
    pixel count (several times faster on CPU for the operator grid's small maps).
    """
    if radius <= 0:
        return x
    h, w = x.shape[-2:]
    p = torch.nn.functional.pad(x, (radius, radius, radius, radius))
    rows = p[..., 0:h, :]
    for i in range(1, 2 * radius + 1):
        rows = rows + p[..., i:i + h, :]
    out = rows[..., 0:w]
    for j in range(1, 2 * radius + 1):
        out = out + rows[..., j:j + w]

    def count(n: int) -> torch.Tensor:   # pixels of each window inside 0..n-1
        i = torch.arange(n, device=x.device)
        return ((i + radius).clamp(max=n - 1) - (i - radius).clamp(min=0) + 1).to(x.dtype)

    return out / (count(h)[:, None] * count(w)[None, :])


def guard_highlights(offset: torch.Tensor, gain: torch.Tensor, low: torch.Tensor,
                     radius: int = 1, margin: float = 3.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Limit an operator's detail gain so the brightest input nearby does not clip.

    Written as ``out = base + gain * (x - low)`` with ``base = offset + gain * low`` (the output at
    the grid's mean input), a pixel as bright as the neighbourhood's maximum ``m`` (max over a
    ``(2 radius + 1)^2`` window of the grid, per channel) reaches ``base + gain * (m - low)``; the gain
    is lowered so that ``base + gain * margin * (m - low)`` stays <= 1 (``base`` itself is kept), so
    lamps and lit signs keep their shape instead of turning into flat white blobs. The grid sees
    area averages, whose peaks understate the full-resolution ones (hence ``margin``); a light much
    smaller than a grid cell can still clip.

    Args:
        offset: ``(B, 3, h, w)``; gain: ``(B, 1|3, h, w)`` >= 0; low: ``(B, 3, h, w)`` in [0, 1].
    Returns:
        ``(offset', gain')`` of the same shapes.
    """
    base = offset + gain * low
    peak = local_max(low, radius)
    room = (1.0 - base).clamp_min(0.0) / (margin * (peak - low)).clamp_min(1e-3)    # per channel
    limit = room.amin(dim=1, keepdim=True) if gain.shape[1] == 1 else room
    new_gain = torch.minimum(gain, limit)
    return base - new_gain * low, new_gain


class AffineOperatorModel(EnhancementModel):
    """Base class of families that predict ``(offset, gain)`` at low resolution (see module doc).

    :meth:`enhance` applies the operator at full resolution; the engine may instead call
    :meth:`predict_operator` itself and apply the operator with OpenCV (CPU) or fused (CUDA).
    """

    @abc.abstractmethod
    def predict_operator(self, low: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``low (B, 3, h, w)`` in [0, 1] -> ``(offset (B, 3, h', w'), gain (B, 1|3, h', w'))``.

        The grid ``(h', w')`` covers the whole frame (any size, e.g. ``h / 2``); the operator is
        applied to a frame of any resolution with :func:`apply_affine_operator`.
        """

    def output_cap(self, low: torch.Tensor) -> tuple[float, torch.Tensor] | None:
        """An optional per-pixel cap on the output's luma (:func:`cap_output_luma`): ``(floor, slope (B,))``
        for the frames of ``low`` ``(B, 3, h, w)`` in [0, 1], or ``None`` (the default: no cap)."""
        return None

    def enhance(self, full: torch.Tensor, low: torch.Tensor | None = None) -> torch.Tensor:
        """``full (B, 3, H, W)``, ``low (B, 3, h, w)`` in [0, 1] -> ``(B, 3, H, W)`` in [0, 1]."""
        low = full if low is None else low
        offset, gain = self.predict_operator(low)
        out = apply_affine_operator(full, offset, gain)
        cap = self.output_cap(low)
        return out if cap is None else cap_output_luma(out, full, *cap)
