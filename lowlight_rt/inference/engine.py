"""The inference engine: frames in, enhanced full-resolution frames out (CPU float32 or CUDA FP16).

The network runs at the processing size (``proc_size``: short side, ``None`` = the model's default,
``0`` = full resolution); the model family decides how its result reaches full resolution. For
:class:`~lowlight_rt.models.affine.AffineOperatorModel` families the engine calls
``predict_operator`` and applies ``offset + gain * frame`` itself (:mod:`.cpu`: OpenCV on CPU;
:mod:`.cuda`: fused on the GPU), with the strength blend folded into the operator; other families
go through ``model.enhance``. The engine owns the processing size: :meth:`Engine.proc_shape` is the
shape rule sources are handed.
"""

from __future__ import annotations

import logging
import threading
from typing import Callable, Sequence

import cv2
import numpy as np
import torch

from ..errors import DeviceError
from ..frames import Frame, processing_shape
from ..models.base import EnhancementModel
from ..config import CPU_RUNTIMES, DEFAULT_CPU_RUNTIME, DEFAULT_DENOISE
from .cpu import CpuBackend, default_threads
from .temporal_denoise import TemporalDenoiser

log = logging.getLogger(__name__)

__all__ = ["Engine", "PendingResult", "resolve_device"]


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



def _reset_temporal_state(*holders: object) -> None:
    """Reset the temporal state of every holder among ``holders`` (a model, a backend's ``model`` copy, the
    output's temporal denoiser): whatever has a ``reset_state``."""
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
        cpu_runtime: what computes the operator on the CPU: ``"onnxruntime"`` (the checkpoint's ONNX
            export of the operator grid, when it has one that matches the model; else torch) or ``"torch"``.
        cuda_graphs: capture the CUDA path in CUDA graphs for fixed shapes (stateless models only).
        denoise: temporal denoising of the output of video (:mod:`.temporal_denoise`; it turns itself
            off on clean video); never applied to still images.

    Setters (``strength``, ``denoise``, :meth:`set_proc_size`, :meth:`set_model`, :meth:`set_device`) are
    thread-safe and take effect at the next batch. :meth:`enhance` / :meth:`submit` are meant to be
    called from one thread (the inference worker); the CUDA stream is created in that thread.
    """

    def __init__(self, model: EnhancementModel, device: str = "auto", fp16: bool = True,
                 proc_size: int | None = None, strength: float = 1.0, threads: int | None = None,
                 compile: bool = False, cuda_graphs: bool = False, cpu_runtime: str = DEFAULT_CPU_RUNTIME,
                 denoise: bool = DEFAULT_DENOISE) -> None:
        if cpu_runtime not in CPU_RUNTIMES:
            raise ValueError(f"cpu_runtime must be one of {', '.join(CPU_RUNTIMES)}, got {cpu_runtime!r}")
        self._cpu_runtime = cpu_runtime
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
        self._denoise = bool(denoise)
        #: the temporal denoiser of the output (its state belongs to the stream being enhanced)
        self.denoiser = TemporalDenoiser()
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
    def denoise(self) -> bool:
        with self._lock:
            return self._denoise

    @denoise.setter
    def denoise(self, value: bool) -> None:
        with self._lock:
            self._denoise = bool(value)
        self.denoiser.reset_state()

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

    def accepts_yuv(self) -> bool:
        """Whether :meth:`submit` can enhance decoded 4:2:0 planes directly (the YUV path): the CPU
        backend with an affine-operator model. Elsewhere frames need RGB, best converted in the
        capture thread rather than on the inference thread."""
        from ..models.affine import AffineOperatorModel

        with self._lock:
            return self._device.type == "cpu" and isinstance(self._model, AffineOperatorModel)

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
        _reset_temporal_state(model, self.denoiser)
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
        """Reset the model's temporal state and the denoiser's (e.g. after a seek)."""
        _reset_temporal_state(self.model, self.denoiser)

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
    def cpu_runtime(self) -> str:
        """The runtime asked for on the CPU (``"onnxruntime"`` or ``"torch"``; see :attr:`network_runtime`)."""
        return self._cpu_runtime

    @property
    def network_runtime(self) -> str:
        """What computes the network and operator grid: ``"onnxruntime"`` or ``"torch"`` (on CUDA always
        torch; on the CPU known after the first batch, ``"torch"`` until then)."""
        backend = self._backend
        if backend is not None and self._backend_generation == self._generation:
            return getattr(backend, "network_runtime", "torch")
        return "torch"

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
                self._backend = CpuBackend(model, self._threads, self._compile, runtime=self._cpu_runtime)
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
        """Start enhancing ``frames``; on CUDA this returns before the GPU is done (double buffering). On
        the CPU the network has run when it returns, and an affine operator's full-resolution application
        is left to :meth:`PendingResult.result` (which the worker may call on another thread).

        ``yuv=True``: frames that carry 4:2:0 planes (``Frame.yuv``) are enhanced in YUV without a
        full-size RGB picture and come back as :class:`~lowlight_rt.frames.YuvPlanes` (in the input's matrix), when
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
            denoise = self._denoise
        if not frames:
            return PendingResult.ready([])
        if strength == 0.0:   # the input as it is, noise included
            self.denoiser.reset_state()
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
                _reset_temporal_state(model, backend, self.denoiser)
            lows_arg = None if lows[0] is None else lows  # a group shares one processing shape
            if in_yuv:
                if lows_arg is None:  # the network runs at full size: it needs the RGB picture
                    lows_arg = [frames[i].image for i in indices]
                parts.append((indices, backend.submit(None, lows_arg, strength, yuv=images)))
            else:
                parts.append((indices, backend.submit(images, lows_arg, strength)))
            if denoise and not still:
                parts[-1] = (indices, self._denoised(parts[-1][1]))
        return PendingResult(parts, len(frames))

    def _denoised(self, finish: Callable[[], list]) -> Callable[[], list]:
        """``finish`` followed by the temporal denoiser, frame by frame, on the thread that calls it."""
        return lambda: [self.denoiser(picture) for picture in finish()]

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
