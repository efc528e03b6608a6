"""The inference engine: frames in, enhanced full-resolution frames out (CPU float32 or CUDA FP16).

The network runs at the processing size (``proc_size``: short side, ``None`` = the model's default,
``0`` = full resolution); the model family decides how its result reaches full resolution. For
:class:`~lowlight_rt.models.affine.AffineOperatorModel` families the engine calls
``predict_operator`` and applies ``offset + gain * frame`` itself (OpenCV on CPU, fused on CUDA),
with the strength blend folded into the operator; other families go through ``model.enhance``.
"""

from __future__ import annotations

import logging
import os
import threading
import warnings
from typing import Callable, Sequence

import cv2
import numpy as np
import torch

from ..errors import DeviceError
from ..frames import Frame, YuvPlanes, processing_shape, rgb_to_yuv_matrix, yuv_to_rgb_matrix
from ..models.affine import AffineOperatorModel
from ..models.base import EnhancementModel

log = logging.getLogger(__name__)

__all__ = ["Engine", "PendingResult", "default_threads", "resolve_device", "apply_operator_numpy",
           "apply_operator_yuv", "to_float_nchw"]

#: matrix of the YUV the engine writes (the video sink tags and expects BT.709, limited range)
OUTPUT_MATRIX = "bt709"


def default_threads() -> int:
    """Torch CPU threads when none are given: all cores but one (at least 1).

    Decoding and H.264 encoding run in their own threads at the same time; on a 2-core machine an
    OpenMP team of 2 stalls at every barrier when the other core is busy (measured: median network
    time 8x worse than with 1 thread under load), so one core is left to them.
    """
    return max(1, (os.cpu_count() or 1) - 1)


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``"auto"`` -> CUDA if available else CPU; ``"cuda"``/``"cuda:N"`` must exist (``DeviceError``)."""
    name = "auto" if device is None else str(device).strip().lower()
    if name == "auto":
        return torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() else torch.device("cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise DeviceError(f"unknown device {device!r}; use auto, cpu or cuda[:N]") from None
    if dev.type == "cpu":
        return dev
    if dev.type != "cuda":
        raise DeviceError(f"unsupported device {device!r}; use auto, cpu or cuda[:N]")
    if not torch.cuda.is_available():
        raise DeviceError("CUDA was requested but no CUDA device is available (use --device cpu)")
    index = 0 if dev.index is None else dev.index
    if index >= torch.cuda.device_count():
        raise DeviceError(f"CUDA device {index} does not exist ({torch.cuda.device_count()} available)")
    return torch.device("cuda", index)


def to_float_nchw(arrays: Sequence[np.ndarray]) -> torch.Tensor:
    """``(H, W, 3)`` uint8 arrays -> ``(B, 3, H, W)`` float32 in [0, 1], channels_last memory (one copy)."""
    batch = arrays[0][None] if len(arrays) == 1 else np.stack(arrays)
    return torch.from_numpy(batch).permute(0, 3, 1, 2).float().div_(255.0)


def to_uint8_hwc(x: torch.Tensor) -> list[np.ndarray]:
    """``(B, 3, H, W)`` float in [0, 1] -> list of ``(H, W, 3)`` uint8 arrays (rounded)."""
    u8 = x.mul(255.0).add_(0.5).clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1)
    return [np.ascontiguousarray(u8[b].numpy()) for b in range(u8.shape[0])]


def apply_operator_numpy(image: np.ndarray, offset: np.ndarray, gain: np.ndarray) -> np.ndarray:
    """``clip(up(offset) + up(gain) * image)`` with OpenCV (bilinear, half-pixel centres).

    Args:
        image: ``(H, W, 3)`` uint8.
        offset: ``(h, w, 3)`` float32 in 0..255 units.
        gain: ``(h, w, 1|3)`` float32.
    Returns:
        ``(H, W, 3)`` uint8 (rounded, saturated).
    """
    h_full, w_full = image.shape[:2]
    if gain.shape[-1] == 1:
        g = gain[..., 0]
        gain = cv2.merge([g, g, g])
    size = (w_full, h_full)
    up_offset = offset if offset.shape[:2] == (h_full, w_full) else cv2.resize(offset, size, interpolation=cv2.INTER_LINEAR)
    up_gain = gain if gain.shape[:2] == (h_full, w_full) else cv2.resize(gain, size, interpolation=cv2.INTER_LINEAR)
    prod = cv2.multiply(image, up_gain, dtype=cv2.CV_32F)
    return cv2.add(prod, up_offset, dtype=cv2.CV_8U)


def apply_operator_yuv(planes: YuvPlanes, offset: np.ndarray, gain: np.ndarray,
                       out_matrix: str = OUTPUT_MATRIX) -> YuvPlanes:
    """The affine operator of :func:`apply_operator_numpy`, applied to 4:2:0 planes without a
    full-resolution RGB picture.

    With ``A`` the input's YUV -> RGB matrix and ``B`` the output's RGB -> YUV matrix (limited
    range, centred at 16 / 128) the RGB operator ``out_c = o_c + g_c * rgb_c`` is, per pixel,

    * luma, full resolution: ``Y' = 16 + sum_c B_yc o_c + gYY (Y - 16) + sum_c B_yc g_c (A_c1 Uc + A_c2 Vc)``
      with ``gYY = sum_c B_yc g_c A_c0`` (``A_c0`` is the same for every channel, so ``gYY`` is the
      luma-weighted gain). The last term (zero when the gain is one channel and ``A``, ``B`` are the
      same matrix) is computed at chroma resolution and upsampled bilinearly with the constant part;
    * chroma, half resolution: RGB at chroma resolution (luma area-averaged), the operator applied
      and clipped to 0..255 per channel as in the RGB path, then ``B``'s chroma rows.

    Exact up to the interpolation of chroma (bilinear here, swscale's in the RGB path) and the
    clipping of luma (Y is clipped to 16..235; the RGB path clips each channel before the encoder's
    conversion, which differs only where the operator drives a colour out of gamut). ``lowlight-rt
    bench`` measures the written video against the RGB path's frames (PSNR).

    Args:
        planes: input picture, ``(H, W)`` / ``(H/2, W/2)`` uint8 planes.
        offset: ``(h, w, 3)`` float32 RGB offset in 0..255 units (the operator grid).
        gain: ``(h, w, 1|3)`` float32 RGB gain.
        out_matrix: matrix of the output planes.
    Returns:
        New :class:`YuvPlanes` in ``out_matrix`` (full size, limited range).
    """
    h_full, w_full = planes.height, planes.width
    half = (w_full // 2, h_full // 2)
    a = yuv_to_rgb_matrix(planes.matrix).astype(np.float32)
    b = rgb_to_yuv_matrix(out_matrix).astype(np.float32)
    # per-channel contiguous planes (arithmetic on interleaved channels, numpy matmul and cv2.split
    # were each several ms per frame on the 2-core machine; single-plane resizes are ~0.2 ms)
    o_grid = [np.ascontiguousarray(offset[..., c], dtype=np.float32) for c in range(3)]
    g_grid = [np.ascontiguousarray(gain[..., min(c, gain.shape[-1] - 1)], dtype=np.float32) for c in range(3)]
    g_yy = b[0, 0] * a[0, 0] * g_grid[0] + b[0, 1] * a[1, 0] * g_grid[1] + b[0, 2] * a[2, 0] * g_grid[2]

    def up(x: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        return x if x.shape[::-1] == size else cv2.resize(x, size, interpolation=cv2.INTER_LINEAR)

    yc = cv2.resize(planes.y, half, interpolation=cv2.INTER_AREA).astype(np.float32) - 16.0
    uc = planes.u.astype(np.float32) - 128.0
    vc = planes.v.astype(np.float32) - 128.0
    out_rgb = []
    k_half = 16.0 - 16.0 * up(g_yy, half)  # luma: constant part + chroma cross terms, at chroma resolution
    for c in range(3):
        o_c, g_c = up(o_grid[c], half), up(g_grid[c], half)
        chroma_c = a[c, 1] * uc + a[c, 2] * vc
        k_half += b[0, c] * (o_c + g_c * chroma_c)
        out_rgb.append(np.clip(o_c + g_c * (a[c, 0] * yc + chroma_c), 0.0, 255.0))
    y = cv2.add(cv2.multiply(planes.y, up(g_yy, (w_full, h_full)), dtype=cv2.CV_32F),
                up(k_half, (w_full, h_full)), dtype=cv2.CV_8U)
    np.clip(y, 16, 235, out=y)
    chroma = []
    for row in (1, 2):
        plane = 128.5 + b[row, 0] * out_rgb[0] + b[row, 1] * out_rgb[1] + b[row, 2] * out_rgb[2]
        chroma.append(np.clip(plane, 16, 240).astype(np.uint8))
    return YuvPlanes(y, chroma[0], chroma[1], out_matrix)


class PendingResult:
    """The outcome of :meth:`Engine.submit`; :meth:`result` blocks until the frames are ready."""

    def __init__(self, parts: list[tuple[list[int], Callable[[], list[np.ndarray]]]], count: int) -> None:
        self._parts = parts
        self._count = count
        self._value: list[np.ndarray] | None = None

    @classmethod
    def ready(cls, arrays: list[np.ndarray]) -> PendingResult:
        pending = cls([], len(arrays))
        pending._value = arrays
        return pending

    def result(self) -> list[np.ndarray]:
        """``(H, W, 3)`` uint8 RGB per submitted frame, in submission order."""
        if self._value is None:
            out: list[np.ndarray | None] = [None] * self._count
            for indices, fetch in self._parts:
                for i, arr in zip(indices, fetch()):
                    out[i] = arr
            self._value = out  # type: ignore[assignment]
            self._parts = []
        return self._value  # type: ignore[return-value]


class _CpuBackend:
    """float32, ``inference_mode``, channels_last; operators applied with OpenCV."""

    def __init__(self, model: EnhancementModel, threads: int | None, compile: bool) -> None:
        self.model = model.to("cpu").float().eval().requires_grad_(False).to(memory_format=torch.channels_last)
        self.threads = threads or default_threads()
        self.precision = "fp32"
        self.device_name = "cpu"
        self._fn: Callable = self._eager()
        self._compile = compile
        self._compiled = False
        self._configured_thread: int | None = None

    def _configure_thread(self) -> None:
        ident = threading.get_ident()
        if self._configured_thread != ident:
            torch.set_num_threads(self.threads)
            torch.set_flush_denormal(True)
            self._configured_thread = ident
        if self._compile:
            self._compile = False
            try:
                self._fn = torch.compile(self._fn, dynamic=True)
                self._compiled = True
            except Exception as e:  # compile is optional: keep eager
                warnings.warn(f"torch.compile unavailable ({type(e).__name__}); running eager", stacklevel=3)

    def _eager(self) -> Callable:
        return self.model.predict_operator if isinstance(self.model, AffineOperatorModel) else self.model.enhance

    def _call(self, *args: torch.Tensor):
        if not self._compiled:
            return self._fn(*args)
        try:
            return self._fn(*args)
        except Exception as e:
            warnings.warn(f"compiled model failed ({type(e).__name__}: {e}); running eager", stacklevel=3)
            self._fn, self._compiled = self._eager(), False
            return self._fn(*args)

    def run(self, images: list[np.ndarray] | None, lows: list[np.ndarray] | None, strength: float,
            yuv: list[YuvPlanes] | None = None) -> list[np.ndarray | YuvPlanes]:
        """Enhance ``images`` (``(H, W, 3)`` uint8 RGB), or with ``yuv`` (affine models only) the
        4:2:0 planes, returning :class:`YuvPlanes` (BT.709) instead of RGB arrays."""
        self._configure_thread()
        with torch.inference_mode():
            if isinstance(self.model, AffineOperatorModel):
                low = to_float_nchw(lows if lows is not None else images)
                offset, gain = self._call(low)
                offset, gain = offset.float(), gain.float()
                if strength != 1.0:
                    offset = offset * strength
                    gain = torch.lerp(torch.ones_like(gain), gain, strength)
                offset_np = offset.mul(255.0).permute(0, 2, 3, 1).contiguous().numpy()
                gain_np = gain.permute(0, 2, 3, 1).contiguous().numpy()
                if yuv is not None:
                    out = [apply_operator_yuv(planes, offset_np[b], gain_np[b]) for b, planes in enumerate(yuv)]
                else:
                    out = [apply_operator_numpy(img, offset_np[b], gain_np[b]) for b, img in enumerate(images)]
            else:
                full = to_float_nchw(images)
                low = full if lows is None else to_float_nchw(lows)
                enhanced = self._call(full, low).float()
                if strength != 1.0:
                    enhanced = torch.lerp(full, enhanced, strength)
                out = to_uint8_hwc(enhanced)
        return out

    def submit(self, images: list[np.ndarray] | None, lows: list[np.ndarray] | None, strength: float,
               yuv: list[YuvPlanes] | None = None) -> Callable[[], list]:
        out = self.run(images, lows, strength, yuv)
        return lambda: out

    def accepts_yuv(self) -> bool:
        """Whether :meth:`run` can work on 4:2:0 planes (affine operator models)."""
        return isinstance(self.model, AffineOperatorModel)

    def close(self) -> None:
        """Nothing to release on the CPU."""



def _reset_temporal_state(*holders: object) -> None:
    """Reset the temporal state of every model among ``holders`` (a model, or a backend's ``model`` copy)."""
    for h in holders:
        for m in (h, getattr(h, "model", None)):
            reset = getattr(m, "reset_state", None)
            if callable(reset):
                reset()

class Engine:
    """Enhances batches of :class:`~lowlight_rt.frames.Frame` at full resolution.

    Args:
        model: an :class:`~lowlight_rt.models.base.EnhancementModel` (the engine moves it to its device).
        device: ``"auto"``, ``"cpu"`` or ``"cuda[:N]"`` (``DeviceError`` if unavailable).
        fp16: half precision on CUDA (checked against FP32 on first use; falls back if it fails).
        proc_size: short side the network runs at; ``None`` = the model's default, ``0`` = full res.
        strength: blend ``in + s * (enhanced - in)``, clamped to [0, 1].
        threads: CPU threads for torch (default :func:`default_threads`: all cores but one, at least 1).
        compile: ``torch.compile`` the model (optional; falls back to eager with a warning).
        cuda_graphs: capture the CUDA path in CUDA graphs for fixed shapes (stateless models only).

    Setters (``strength``, :meth:`set_proc_size`, :meth:`set_model`, :meth:`set_device`) are
    thread-safe and take effect at the next batch. :meth:`enhance` / :meth:`submit` are meant to be
    called from one thread (the inference worker); the CUDA stream is created in that thread.
    """

    def __init__(self, model: EnhancementModel, device: str = "auto", fp16: bool = True,
                 proc_size: int | None = None, strength: float = 1.0, threads: int | None = None,
                 compile: bool = False, cuda_graphs: bool = False) -> None:
        self._lock = threading.RLock()
        self._device = resolve_device(device)
        self._fp16 = bool(fp16)
        self._threads = threads
        self._compile = bool(compile)
        self._cuda_graphs = bool(cuda_graphs)
        self._model = model
        self._proc_size = proc_size
        self._strength = self._clamp(strength)
        self._generation = 0
        self._backend = None
        self._backend_generation = -1
        if self._device.type == "cpu":
            torch.set_num_threads(threads or default_threads())
            torch.set_flush_denormal(True)

    # -- settings (thread-safe) ------------------------------------------------------------------
    @staticmethod
    def _clamp(value: float) -> float:
        value = float(value)
        if value != value:  # NaN
            raise ValueError("strength must be a number in [0, 1]")
        return min(1.0, max(0.0, value))

    @property
    def strength(self) -> float:
        with self._lock:
            return self._strength

    @strength.setter
    def strength(self, value: float) -> None:
        value = self._clamp(value)
        with self._lock:
            self._strength = value

    @property
    def requested_proc_size(self) -> int | None:
        """The setting as given: ``None`` = the model's default, ``0`` = full resolution."""
        with self._lock:
            return self._proc_size

    @staticmethod
    def _effective(model: EnhancementModel, requested: int | None) -> int | None:
        """The short side to downsample to (``processing_shape``'s argument; ``None``: do not)."""
        if requested is None:
            return model.default_proc_size
        return None if requested == 0 else requested

    @property
    def proc_size(self) -> int:
        """Effective processing short side in pixels, ``0`` = full resolution (the model's default
        resolved). Sources do not use it: they ask :meth:`proc_shape` per frame."""
        with self._lock:
            return self._effective(self._model, self._proc_size) or 0

    @property
    def size_multiple(self) -> int:
        """Processing sizes are rounded to this multiple (the model's ``size_multiple``)."""
        return int(self.model.size_multiple)

    @property
    def device_type(self) -> str:
        """``"cpu"`` or ``"cuda"``."""
        return self.device.type

    def set_proc_size(self, proc_size: int | None) -> None:
        if proc_size is not None and int(proc_size) < 0:
            raise ValueError("proc_size must be >= 0 or None")
        with self._lock:
            self._proc_size = None if proc_size is None else int(proc_size)

    @property
    def model(self) -> EnhancementModel:
        with self._lock:
            return self._model

    def set_model(self, model: EnhancementModel) -> None:
        """Swap the model; the next batch uses it (its temporal state is reset)."""
        reset = getattr(model, "reset_state", None)
        if callable(reset):
            reset()
        with self._lock:
            self._model = model
            self._generation += 1

    @property
    def device(self) -> torch.device:
        with self._lock:
            return self._device

    def set_device(self, device: str, fp16: bool | None = None) -> None:
        """Move to another device at the next batch (``DeviceError`` if it is unavailable)."""
        dev = resolve_device(device)
        with self._lock:
            self._device = dev
            if fp16 is not None:
                self._fp16 = bool(fp16)
            self._generation += 1
        if dev.type == "cpu":
            torch.set_num_threads(self._threads or default_threads())

    def reset_state(self) -> None:
        """Reset the model's temporal state (e.g. after a seek)."""
        reset = getattr(self.model, "reset_state", None)
        if callable(reset):
            reset()

    @property
    def device_name(self) -> str:
        backend = self._backend
        if backend is not None and self._backend_generation == self._generation:
            return backend.device_name
        dev = self.device
        if dev.type == "cuda":
            return f"cuda:{dev.index} ({torch.cuda.get_device_name(dev)})"
        return "cpu"

    @property
    def precision(self) -> str:
        """``"fp16"`` or ``"fp32"`` (after the first CUDA batch, what actually runs)."""
        backend = self._backend
        if backend is not None and self._backend_generation == self._generation:
            return backend.precision
        return "fp16" if self.device.type == "cuda" and self._fp16 else "fp32"

    def proc_shape(self, width: int, height: int) -> tuple[int, int]:
        """``(w, h)`` the network runs at for a ``width x height`` frame: the shape rule sources are
        handed (:data:`~lowlight_rt.frames.ShapeRule`) and ask per frame, so the ``Frame.proc`` they
        make is exactly what the current model and processing size want."""
        with self._lock:
            return processing_shape(width, height, self._effective(self._model, self._proc_size),
                                    self._model.size_multiple)

    # -- inference -------------------------------------------------------------------------------
    def _get_backend(self, generation: int, device: torch.device, model: EnhancementModel, fp16: bool):
        if self._backend is None or self._backend_generation != generation:
            if self._backend is not None:
                self._backend.close()
                self._backend = None
            if device.type == "cuda":
                from .cuda import CudaBackend

                self._backend = CudaBackend(model, device, fp16=fp16, compile=self._compile,
                                            cuda_graphs=self._cuda_graphs)
            else:
                self._backend = _CpuBackend(model, self._threads, self._compile)
            self._backend_generation = generation
        return self._backend

    def _low(self, frame: Frame, pw: int, ph: int) -> np.ndarray | None:
        if (pw, ph) == (frame.width, frame.height):
            return None
        proc = frame.proc
        if proc is not None and proc.shape[0] == ph and proc.shape[1] == pw:
            return proc
        return cv2.resize(frame.image, (pw, ph), interpolation=cv2.INTER_AREA)

    def submit(self, frames: Sequence[Frame], yuv: bool = False) -> PendingResult:
        """Start enhancing ``frames``; on CUDA this returns before the GPU is done (double buffering).

        ``yuv=True``: frames that carry 4:2:0 planes (``Frame.yuv``) are enhanced in YUV without a
        full-size RGB picture and come back as :class:`~lowlight_rt.frames.YuvPlanes` (BT.709), when
        the backend can (CPU, affine operator models); everything else comes back as RGB arrays.
        """
        frames = list(frames)
        for f in frames:
            if f.yuv is not None and not f.has_rgb:
                continue
            if f.image.ndim != 3 or f.image.shape[2] != 3 or f.image.dtype != np.uint8:
                raise ValueError(f"frame {f.index}: expected (H, W, 3) uint8 RGB, got {f.image.shape} {f.image.dtype}")
        with self._lock:  # one consistent snapshot of the settings for the whole batch
            strength, generation, device, model = self._strength, self._generation, self._device, self._model
            fp16, proc_size = self._fp16, self._effective(self._model, self._proc_size)
        if not frames:
            return PendingResult.ready([])
        if strength == 0.0:
            return PendingResult.ready([f.image.copy() for f in frames])
        backend = self._get_backend(generation, device, model, fp16)
        use_yuv = yuv and getattr(backend, "accepts_yuv", lambda: False)()
        # group consecutive frames of the same (full, processing) size and domain into batches
        groups: list[tuple[list[int], list, list[np.ndarray | None], bool]] = []
        stills: list[bool] = []
        last_key = None
        for i, f in enumerate(frames):
            # full resolution (proc_size None or not below the input) gives the input's own size
            pw, ph = processing_shape(f.width, f.height, proc_size, model.size_multiple)
            # a still image (image sources name their frames) is its own group: no temporal state
            # (exposure or operator averaging) may carry over from one photo to the next
            still = f.name is not None
            in_yuv = use_yuv and f.yuv is not None
            key = (f.width, f.height, pw, ph, in_yuv, i if still else None)
            if in_yuv:
                img = f.yuv
            else:
                img = f.image if f.image.flags.c_contiguous else np.ascontiguousarray(f.image)
            low = self._low(f, pw, ph)
            if key != last_key or still:
                groups.append(([], [], [], in_yuv))
                stills.append(still)
                last_key = key
            groups[-1][0].append(i)
            groups[-1][1].append(img)
            groups[-1][2].append(low)
        parts = []
        for (indices, images, lows, in_yuv), still in zip(groups, stills):
            if still:
                _reset_temporal_state(model, backend)
            lows_arg = None if lows[0] is None else lows  # a group shares one processing shape
            if in_yuv:
                if lows_arg is None:  # the network runs at full size: it needs the RGB picture
                    lows_arg = [frames[i].image for i in indices]
                parts.append((indices, backend.submit(None, lows_arg, strength, yuv=images)))
            else:
                parts.append((indices, backend.submit(images, lows_arg, strength)))
        return PendingResult(parts, len(frames))

    def enhance(self, frames: Sequence[Frame], yuv: bool = False) -> list:
        """Enhance ``frames``; returns one ``(H, W, 3)`` uint8 RGB array per frame, full size, same
        order (with ``yuv=True``: :class:`~lowlight_rt.frames.YuvPlanes` where :meth:`submit` says)."""
        return self.submit(frames, yuv=yuv).result()

    def close(self) -> None:
        """Release the device backend (buffers, streams)."""
        if self._backend is not None:
            self._backend.close()
            self._backend = None

    def __repr__(self) -> str:
        return (f"Engine(model={type(self.model).__name__}, device={self.device_name}, precision={self.precision}, "
                f"proc_size={self.proc_size}, strength={self.strength})")
