"""Reference-free measures of enhanced night video and photos: casts, block grid, flicker, clipping.

Real night footage has no normal-light reference, so a model is judged on what a viewer sees go
wrong. All measures work on 8-bit RGB frames (``(H, W, 3) uint8``) and BT.601 full-range YCbCr
(``Y = 0.299 R + 0.587 G + 0.114 B``, ``Cb``/``Cr`` centred on 128):

- ``dark_cast``: mean ``|Cb - 128| + |Cr - 128|`` of the OUTPUT over the pixels whose INPUT luma is
  below 20: colour painted into near-black areas (purple skies, green lawns) where the source
  carried none.
- ``block``: mean ``|Y[x+1] - Y[x]|`` of the output across the 8-px block columns of the codec grid
  minus the same mean inside the blocks: how visible the H.264 block grid has become.
- ``flicker``: mean ``|Y_t - Y_{t-1}|`` of the output (luma at 1/4 size) over the pixels whose input
  changed by less than 2 codes: brightness pumping and boiling noise in a static scene.
- ``clip``: share of output pixels with a channel at 255 minus the input's share (blown highlights).
- ``luma``: mean output luma (the picture must still be bright).

:func:`enhance_video` runs a model the way the runtime does (network on the frame downsampled with
``INTER_AREA`` to the processing size, the affine operator applied to the full frame in 8 bits, then the
runtime's temporal denoiser, which stays off on clean video);
:func:`video_measures` reduces a clip to the numbers above.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np
import torch

from lowlight_rt.config import DEFAULT_DENOISE
from lowlight_rt.errors import InputError
from lowlight_rt.frames import processing_shape
from lowlight_rt.inference.temporal_denoise import TemporalDenoiser
from lowlight_rt.models import EnhancementModel
from lowlight_rt.models.affine import AffineOperatorModel

__all__ = ["VideoMeasures", "luma", "chroma_deviation", "dark_cast", "block_grid", "clip_share",
           "read_frames", "enhance_frame", "enhance_video", "video_measures"]

_Y = np.array([0.299, 0.587, 0.114], np.float32)
_CB = np.array([-0.168736, -0.331264, 0.5], np.float32)
_CR = np.array([0.5, -0.418688, -0.081312], np.float32)


def luma(rgb: np.ndarray) -> np.ndarray:
    """BT.601 luma of ``(..., 3) uint8`` RGB -> ``(...)`` float32 in 0..255."""
    return rgb.astype(np.float32) @ _Y


def chroma_deviation(rgb: np.ndarray) -> np.ndarray:
    """``|Cb - 128| + |Cr - 128|`` of ``(..., 3) uint8`` RGB -> ``(...)`` float32 (0 = neutral grey)."""
    f = rgb.astype(np.float32)
    return np.abs(f @ _CB) + np.abs(f @ _CR)


def dark_cast(inp: np.ndarray, out: np.ndarray, threshold: float = 20.0) -> float:
    """Mean output chroma deviation over pixels whose input luma is below ``threshold`` (nan if none)."""
    mask = luma(inp) < threshold
    if not mask.any():
        return float("nan")
    return float(chroma_deviation(out)[mask].mean())


def block_grid(rgb: np.ndarray, block: int = 8) -> float:
    """Mean horizontal luma step across ``block``-px column boundaries minus the mean step inside blocks."""
    y = luma(rgb)
    step = np.abs(np.diff(y, axis=1))          # step[:, x] = |y[:, x+1] - y[:, x]|
    at_edge = (np.arange(step.shape[1]) + 1) % block == 0
    if not at_edge.any() or at_edge.all():
        return float("nan")
    return float(step[:, at_edge].mean() - step[:, ~at_edge].mean())


def clip_share(rgb: np.ndarray) -> float:
    """Share of pixels (0..1) with at least one channel at 255."""
    return float((rgb >= 255).any(axis=-1).mean())


def read_frames(path: str | Path, max_frames: int = 240) -> Iterator[np.ndarray]:
    """The first ``max_frames`` frames of a video as ``(H, W, 3) uint8`` RGB (PyAV)."""
    import av

    try:
        container = av.open(str(path))
    except (OSError, av.FFmpegError) as e:
        raise InputError(f"cannot open video {path} ({e})") from None
    with container:
        for i, frame in enumerate(container.decode(video=0)):
            if i >= max_frames:
                break
            yield frame.to_ndarray(format="rgb24")


@torch.inference_mode()
def enhance_frame(model: EnhancementModel, rgb: np.ndarray, proc_size: int | None, *,
                  still: bool = False) -> np.ndarray:
    """Enhance one ``(H, W, 3) uint8`` frame the runtime way; returns ``(H, W, 3) uint8``.

    ``proc_size`` is the network's short side (``None``: the model's default). ``still``: a photo,
    not the next frame of a video: the model's temporal state is reset first, as the runtime does
    for image inputs.
    """
    reset = getattr(model, "reset_state", None)
    if still and callable(reset):
        reset()
    h, w = rgb.shape[:2]
    size = model.default_proc_size if proc_size is None else proc_size
    pw, ph = processing_shape(w, h, size, max(1, model.size_multiple))
    low = rgb if (pw, ph) == (w, h) else cv2.resize(rgb, (pw, ph), interpolation=cv2.INTER_AREA)
    low_t = torch.from_numpy(np.ascontiguousarray(low)).permute(2, 0, 1)[None].float() / 255.0
    if isinstance(model, AffineOperatorModel):
        from lowlight_rt.inference.cpu import apply_operator_numpy, frame_caps

        offset, gain = model.predict_operator(low_t)
        off = np.ascontiguousarray(offset[0].permute(1, 2, 0).float().numpy() * 255.0)
        g = np.ascontiguousarray(gain[0].permute(1, 2, 0).float().numpy())
        return apply_operator_numpy(rgb, off, g, cap=frame_caps(model, low_t)[0])
    full_t = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None].float() / 255.0
    out = model.enhance(full_t, low_t).clamp(0, 1)
    return (out[0].permute(1, 2, 0).numpy() * 255.0 + 0.5).astype(np.uint8)


def enhance_video(model: EnhancementModel, path: str | Path, proc_size: int | None = None,
                  max_frames: int = 240, denoise: bool = DEFAULT_DENOISE) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """``(input, output)`` uint8 frame pairs of the first ``max_frames`` frames (model state reset first);
    ``denoise``: the runtime's temporal denoiser on the outputs, as the engine runs it by default."""
    reset = getattr(model, "reset_state", None)
    if callable(reset):
        reset()
    denoiser = TemporalDenoiser() if denoise else None
    for rgb in read_frames(path, max_frames):
        out = enhance_frame(model, rgb, proc_size)
        yield rgb, (denoiser(out) if denoiser is not None else out)


@dataclass
class VideoMeasures:
    """The measures of one model on one clip (see module doc)."""

    frames: int
    luma_in: float
    luma_out: float
    dark_cast_in: float
    dark_cast: float
    block_in: float
    block: float
    flicker_in: float
    flicker: float
    clip_added: float           # percentage points of pixels at 255 added by the model

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def _quarter_luma(rgb: np.ndarray) -> np.ndarray:
    y = luma(rgb)
    h, w = y.shape
    return cv2.resize(y, (max(1, w // 4), max(1, h // 4)), interpolation=cv2.INTER_AREA)


def video_measures(pairs: Iterator[tuple[np.ndarray, np.ndarray]], keep: list | None = None,
                   keep_every: int = 60) -> VideoMeasures:
    """Reduce ``(input, output)`` frame pairs to :class:`VideoMeasures`.

    ``keep``: when given, every ``keep_every``-th ``(input, output)`` pair is appended to it (for grids).
    """
    acc = {k: [] for k in ("luma_in", "luma_out", "dark_cast_in", "dark_cast", "block_in", "block",
                           "clip_in", "clip_out")}
    flick_in, flick_out = [], []
    prev = None
    n = 0
    for i, (inp, out) in enumerate(pairs):
        n += 1
        acc["luma_in"].append(float(luma(inp).mean()))
        acc["luma_out"].append(float(luma(out).mean()))
        acc["dark_cast_in"].append(dark_cast(inp, inp))
        acc["dark_cast"].append(dark_cast(inp, out))
        acc["block_in"].append(block_grid(inp))
        acc["block"].append(block_grid(out))
        acc["clip_in"].append(clip_share(inp))
        acc["clip_out"].append(clip_share(out))
        yi, yo = _quarter_luma(inp), _quarter_luma(out)
        if prev is not None:
            static = np.abs(yi - prev[0]) < 2.0
            if static.any():
                flick_in.append(float(np.abs(yi - prev[0])[static].mean()))
                flick_out.append(float(np.abs(yo - prev[1])[static].mean()))
        prev = (yi, yo)
        if keep is not None and i % keep_every == 0:
            keep.append((inp, out))
    if n == 0:
        raise InputError("the video has no frames")
    m = {k: float(np.nanmean(v)) if np.isfinite(v).any() else float("nan") for k, v in acc.items()}
    return VideoMeasures(
        frames=n, luma_in=m["luma_in"], luma_out=m["luma_out"], dark_cast_in=m["dark_cast_in"],
        dark_cast=m["dark_cast"], block_in=m["block_in"], block=m["block"],
        flicker_in=float(np.mean(flick_in)) if flick_in else float("nan"),
        flicker=float(np.mean(flick_out)) if flick_out else float("nan"),
        clip_added=100.0 * (m["clip_out"] - m["clip_in"]))
