"""Physically-motivated low-light model: turn a well-lit sRGB picture into a dark, noisy capture.

The chain follows what a camera sensor does when it gets too little light:

1. sRGB -> linear light (the sRGB EOTF, via kornia);
2. scale by ``exposure`` (fraction of the light the dark capture collects, about 0.02-0.3) and by an
   optional per-channel sensitivity ``color_cast`` (a white-balance error);
3. photon shot noise: ``Poisson(signal * full_well) / full_well`` where ``full_well`` (``shot_noise``)
   is the number of photons that saturate a pixel -- fewer photons per full scale means more noise;
4. Gaussian read noise with standard deviation ``read_noise`` (fraction of full scale);
5. an analogue ``gain`` (ISO) that amplifies signal and noise alike, then clipping to [0, 1];
6. re-gamma: the sRGB OETF, or a plain power law ``x ** (1 / gamma)`` when ``gamma`` is given;
7. 8-bit quantisation and, optionally, JPEG compression (``cv2.imencode``);
8. optionally, what a night video camera adds: a small black-level and chroma bias in the Y'CbCr
   planes and an H.264 round trip (PyAV / libx264, 4:2:0, limited range, high CRF: crushed, blocky
   blacks), as in real compressed night footage.

The same function serves numpy ``(H, W, 3) uint8`` pictures (the demo clip) and torch
``(B, 3, H, W)`` / ``(3, H, W)`` float tensors in [0, 1] (training pairs). Both paths draw their
noise from the same torch generator, so with the same seed they produce identical pictures.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Union

import cv2
import numpy as np
import torch
from kornia.color import linear_rgb_to_rgb, rgb_to_linear_rgb

RngLike = Union[None, int, np.random.Generator, torch.Generator]

__all__ = [
    "LowLightModel",
    "LowLightParams",
    "sample_params",
    "simulate_low_light",
    "srgb_to_linear",
    "linear_to_srgb",
]


@dataclass(frozen=True)
class LowLightParams:
    """Parameters of one simulated low-light capture.

    Attributes:
        exposure: fraction of the reference exposure the dark capture receives, in (0, 1].
        shot_noise: photons (electrons) at full scale, the sensor's full well; smaller = noisier.
        read_noise: standard deviation of the Gaussian read noise, in fractions of full scale.
        gain: analogue amplification (ISO) after sensing; amplifies signal and noise alike.
        color_cast: per-channel sensitivity ``(r, g, b)``, 1.0 each for none.
        gamma: ``None`` for the sRGB OETF, else a plain power law ``x ** (1 / gamma)``.
        jpeg_quality: JPEG quality 1-100 applied to the 8-bit result, or ``None`` for none.
        video_crf: x264 CRF (0-51) of an H.264 4:2:0 round trip, or ``None`` for none.
        chroma_bias: ``(Cb, Cr)`` offsets in 8-bit codes added before the H.264 round trip.
        black_offset: 8-bit code offset of the luma plane before the H.264 round trip (negative
            crushes the blacks, positive lifts them); both biases need ``video_crf``.
    """

    exposure: float = 0.08
    shot_noise: float = 4000.0
    read_noise: float = 0.002
    gain: float = 1.0
    color_cast: tuple[float, float, float] = (1.0, 1.0, 1.0)
    gamma: float | None = None
    jpeg_quality: int | None = None
    video_crf: int | None = None
    chroma_bias: tuple[float, float] = (0.0, 0.0)
    black_offset: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 < self.exposure <= 1.0:
            raise ValueError(f"exposure must be in (0, 1], got {self.exposure}")
        if self.shot_noise <= 0.0:
            raise ValueError(f"shot_noise (full-well photons) must be > 0, got {self.shot_noise}")
        if self.read_noise < 0.0:
            raise ValueError(f"read_noise must be >= 0, got {self.read_noise}")
        if self.gain <= 0.0:
            raise ValueError(f"gain must be > 0, got {self.gain}")
        if len(self.color_cast) != 3 or min(self.color_cast) <= 0.0:
            raise ValueError(f"color_cast must be three positive gains, got {self.color_cast}")
        if self.gamma is not None and self.gamma <= 0.0:
            raise ValueError(f"gamma must be > 0 or None, got {self.gamma}")
        if self.jpeg_quality is not None and not 1 <= int(self.jpeg_quality) <= 100:
            raise ValueError(f"jpeg_quality must be in [1, 100] or None, got {self.jpeg_quality}")
        if self.video_crf is not None and not 0 <= int(self.video_crf) <= 51:
            raise ValueError(f"video_crf must be in [0, 51] or None, got {self.video_crf}")
        if len(self.chroma_bias) != 2:
            raise ValueError(f"chroma_bias must be (Cb, Cr), got {self.chroma_bias}")
        if (any(self.chroma_bias) or self.black_offset) and self.video_crf is None:
            raise ValueError("chroma_bias / black_offset are applied in the H.264 stage: set video_crf")

    def as_dict(self) -> dict:
        """Plain, JSON-able dict of the parameters."""
        d = dataclasses.asdict(self)
        d["color_cast"] = list(self.color_cast)
        d["chroma_bias"] = list(self.chroma_bias)
        return d


def srgb_to_linear(x: torch.Tensor) -> torch.Tensor:
    """sRGB EOTF. ``(*, 3, H, W)`` float in [0, 1] -> linear light in [0, 1]."""
    return rgb_to_linear_rgb(x.clamp(0.0, 1.0))


def linear_to_srgb(x: torch.Tensor) -> torch.Tensor:
    """sRGB OETF. ``(*, 3, H, W)`` linear light in [0, 1] -> sRGB float in [0, 1]."""
    return linear_rgb_to_rgb(x.clamp(0.0, 1.0)).clamp(0.0, 1.0)


def _torch_generator(rng: RngLike) -> torch.Generator:
    """A CPU torch generator from a seed, a numpy generator (one draw from it) or a torch generator."""
    if isinstance(rng, torch.Generator):
        return rng
    g = torch.Generator()
    if rng is None:
        g.seed()
    elif isinstance(rng, np.random.Generator):
        g.manual_seed(int(rng.integers(0, 2**63 - 1)))
    else:
        g.manual_seed(int(rng))
    return g


def _numpy_generator(rng: RngLike) -> np.random.Generator:
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, torch.Generator):
        return np.random.default_rng(int(torch.randint(0, 2**62, (1,), generator=rng).item()))
    return np.random.default_rng(rng)


def _jpeg_uint8(img: np.ndarray, quality: int) -> np.ndarray:
    """JPEG round trip of an ``(H, W, 3) uint8 RGB`` picture."""
    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(img[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise RuntimeError("cv2.imencode failed to encode JPEG")
    return np.ascontiguousarray(cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1])


def _h264_uint8(img: np.ndarray, crf: int, chroma_bias: tuple[float, float], black_offset: float) -> np.ndarray:
    """H.264 intra round trip of an ``(H, W, 3) uint8 RGB`` picture (4:2:0, BT.601 limited range), with
    ``black_offset`` added to Y' and ``chroma_bias`` to Cb/Cr (8-bit codes) before encoding."""
    import av

    h, w = img.shape[:2]
    ph, pw = h % 2, w % 2                      # 4:2:0 needs even sizes
    src = np.pad(img, ((0, ph), (0, pw), (0, 0)), mode="edge") if (ph or pw) else img
    H, W = src.shape[:2]
    yuv = av.VideoFrame.from_ndarray(np.ascontiguousarray(src), format="rgb24").reformat(format="yuv420p")
    planes = yuv.to_ndarray().astype(np.float32)   # (H * 3 / 2, W): Y, then U and V quarter planes
    planes[:H] += black_offset
    u = planes[H:].reshape(2, H // 2, W // 2)      # rows H..H*5/4 hold U, the rest V (each (H/2, W/2))
    u[0] += chroma_bias[0]
    u[1] += chroma_bias[1]
    planes[H:] = u.reshape(-1, W)
    planes[:H] = planes[:H].clip(16, 235)
    planes[H:] = planes[H:].clip(16, 240)
    frame = av.VideoFrame.from_ndarray(np.round(planes).astype(np.uint8), format="yuv420p")
    enc = av.CodecContext.create("libx264", "w")
    enc.width, enc.height, enc.pix_fmt = W, H, "yuv420p"
    enc.options = {"crf": str(int(crf)), "preset": "veryfast", "threads": "1"}
    packets = list(enc.encode(frame)) + list(enc.encode(None))
    dec = av.CodecContext.create("h264", "r")
    decoded = [f for pkt in packets for f in dec.decode(pkt)] + list(dec.decode(None))
    out = decoded[0].to_ndarray(format="rgb24")
    return np.ascontiguousarray(out[:h, :w])


def _simulate_tensor(x: torch.Tensor, p: LowLightParams, g: torch.Generator) -> torch.Tensor:
    """Core model on ``(B, 3, H, W)`` float in [0, 1]; returns the same shape, 8-bit quantised."""
    device = x.device
    lin = srgb_to_linear(x.float())
    cast = torch.tensor(p.color_cast, dtype=lin.dtype, device=device).view(1, 3, 1, 1)
    signal = (lin * (p.exposure * cast)).clamp(0.0, 1.0)
    # Noise is drawn on the CPU generator so results do not depend on the device.
    photons = torch.poisson((signal * p.shot_noise).cpu(), generator=g).to(device)
    electrons = photons / p.shot_noise
    if p.read_noise > 0.0:
        electrons = electrons + p.read_noise * torch.randn(signal.shape, generator=g).to(device)
    sensed = (electrons * p.gain).clamp(0.0, 1.0)
    if p.gamma is None:
        out = linear_to_srgb(sensed)
    else:
        out = sensed.pow(1.0 / p.gamma)
    out = torch.round(out * 255.0) / 255.0
    if p.jpeg_quality is not None:
        frames = (out * 255.0).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
        coded = np.stack([_jpeg_uint8(f, int(p.jpeg_quality)) for f in frames])
        out = torch.from_numpy(coded).to(device).permute(0, 3, 1, 2).float() / 255.0
    if p.video_crf is not None:
        frames = (out * 255.0).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
        coded = np.stack([_h264_uint8(f, int(p.video_crf), p.chroma_bias, p.black_offset) for f in frames])
        out = torch.from_numpy(coded).to(device).permute(0, 3, 1, 2).float() / 255.0
    return out


def simulate_low_light(
    img: np.ndarray | torch.Tensor,
    params: LowLightParams | None = None,
    *,
    exposure: float | None = None,
    read_noise: float | None = None,
    shot_noise: float | None = None,
    gain: float | None = None,
    color_cast: tuple[float, float, float] | None = None,
    gamma: float | None = None,
    jpeg_quality: int | None = None,
    video_crf: int | None = None,
    chroma_bias: tuple[float, float] | None = None,
    black_offset: float | None = None,
    rng: RngLike = None,
) -> np.ndarray | torch.Tensor:
    """Simulate a dark, noisy capture of a well-lit sRGB picture.

    Args:
        img: ``(H, W, 3) uint8`` RGB numpy array, or a float tensor ``(B, 3, H, W)`` / ``(3, H, W)``
            in [0, 1].
        params: base parameters (defaults: :class:`LowLightParams`); keyword arguments that are not
            ``None`` override them.
        rng: seed, ``numpy.random.Generator`` or ``torch.Generator``; the same seed gives the same
            result on both the numpy and the torch path.

    Returns:
        the same type and shape as ``img``: uint8 for numpy, float in [0, 1] (8-bit levels) for torch.
    """
    base = params if params is not None else LowLightParams()
    overrides = {
        k: v
        for k, v in dict(
            exposure=exposure, read_noise=read_noise, shot_noise=shot_noise, gain=gain,
            color_cast=None if color_cast is None else tuple(float(c) for c in color_cast),
            gamma=gamma, jpeg_quality=jpeg_quality, video_crf=video_crf,
            chroma_bias=None if chroma_bias is None else tuple(float(c) for c in chroma_bias),
            black_offset=black_offset,
        ).items()
        if v is not None
    }
    p = dataclasses.replace(base, **overrides)
    g = _torch_generator(rng)

    if isinstance(img, np.ndarray):
        if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
            raise ValueError(f"numpy input must be (H, W, 3) uint8, got {img.shape} {img.dtype}")
        x = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1).unsqueeze(0).float() / 255.0
        out = _simulate_tensor(x, p, g)
        return np.ascontiguousarray((out[0].permute(1, 2, 0) * 255.0).round().to(torch.uint8).numpy())

    if not isinstance(img, torch.Tensor):
        raise TypeError(f"expected a numpy array or a torch tensor, got {type(img).__name__}")
    if not img.is_floating_point() or img.ndim not in (3, 4) or img.shape[-3] != 3:
        raise ValueError(f"tensor input must be float (B, 3, H, W) or (3, H, W), got {tuple(img.shape)} {img.dtype}")
    if img.ndim == 3:
        return _simulate_tensor(img.unsqueeze(0), p, g)[0].to(img.dtype)
    return _simulate_tensor(img, p, g).to(img.dtype)


def sample_params(rng: RngLike = None, *, exposure_range: tuple[float, float] = (0.02, 0.3),
                  video_share: float = 0.0) -> LowLightParams:
    """Draw realistic random capture parameters.

    Exposure and full well are log-uniform (exposure in ``exposure_range``, full well 500-20000
    photons), read noise log-uniform in 0.0005-0.01 of full scale, analogue gain 1-4 in half the
    draws (capped so the capture stays under-exposed), a colour cast of +-15 % per channel in half,
    a camera power-law gamma 1.8-2.4 instead of sRGB in a fifth, JPEG quality 60-95 in 30 %.
    In ``video_share`` of the draws (instead of JPEG) an H.264 round trip at CRF 24-40 with a black
    offset of -3..+3 codes and a Cb/Cr bias of up to 3 codes each, like compressed night video.
    """
    r = _numpy_generator(rng)
    lo, hi = exposure_range
    exposure = float(np.exp(r.uniform(np.log(lo), np.log(hi))))
    full_well = float(np.exp(r.uniform(np.log(500.0), np.log(20000.0))))
    read_noise = float(np.exp(r.uniform(np.log(5e-4), np.log(1e-2))))
    gain = float(r.uniform(1.0, 4.0)) if r.random() < 0.5 else 1.0
    gain = min(gain, max(1.0, 0.35 / exposure))
    if r.random() < 0.5:
        cast = r.uniform(0.85, 1.15, size=3)
        cast = cast / cast.mean()
        color_cast = (float(cast[0]), float(cast[1]), float(cast[2]))
    else:
        color_cast = (1.0, 1.0, 1.0)
    gamma = float(r.uniform(1.8, 2.4)) if r.random() < 0.2 else None
    jpeg_quality = int(r.integers(60, 96)) if r.random() < 0.3 else None
    video: dict = {}
    if video_share > 0 and r.random() < video_share:
        jpeg_quality = None
        video = dict(video_crf=int(r.integers(24, 41)), black_offset=float(r.uniform(-3.0, 3.0)),
                     chroma_bias=(float(r.uniform(-3.0, 3.0)), float(r.uniform(-3.0, 3.0))))
    return LowLightParams(
        exposure=exposure, shot_noise=full_well, read_noise=read_noise, gain=gain,
        color_cast=color_cast, gamma=gamma, jpeg_quality=jpeg_quality, **video,
    )


class LowLightModel:
    """Callable low-light simulator: fixed parameters, or fresh random ones per call.

    ``LowLightModel(params)`` always uses ``params``; ``LowLightModel()`` (``params=None``) draws
    :func:`sample_params` for each call from its own seeded generator, so a sequence of calls is
    reproducible from ``seed``.

    Example:
        >>> model = LowLightModel(LowLightParams(exposure=0.05), seed=0)
        >>> dark = model(torch.rand(1, 3, 32, 32))  # (1, 3, 32, 32) float in [0, 1]
    """

    def __init__(self, params: LowLightParams | None = None, *, seed: int | None = None,
                 exposure_range: tuple[float, float] = (0.02, 0.3)) -> None:
        self.params = params
        self.exposure_range = exposure_range
        self._rng = np.random.default_rng(seed)

    def sample(self) -> LowLightParams:
        """The parameters for the next call (fixed ones, or a fresh random draw)."""
        if self.params is not None:
            return self.params
        return sample_params(self._rng, exposure_range=self.exposure_range)

    def __call__(self, img: np.ndarray | torch.Tensor, params: LowLightParams | None = None):
        """Darken ``img`` (see :func:`simulate_low_light`); returns the same type and shape."""
        p = params if params is not None else self.sample()
        return simulate_low_light(img, p, rng=self._rng)

    def with_params(self, img: np.ndarray | torch.Tensor) -> tuple[np.ndarray | torch.Tensor, LowLightParams]:
        """Like ``__call__`` but also returns the parameters used."""
        p = self.sample()
        return simulate_low_light(img, p, rng=self._rng), p
