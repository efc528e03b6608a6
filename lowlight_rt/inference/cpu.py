"""The CPU backend of the engine: float32, ``inference_mode``, channels_last; affine operators
applied with OpenCV at full resolution (RGB, or 4:2:0 planes on the YUV path)."""

from __future__ import annotations

import functools
import os
import threading
import warnings
from typing import Callable, Sequence

import cv2
import numpy as np
import torch

from ..config import DEFAULT_CPU_RUNTIME
from ..frames import YuvPlanes, rgb_to_yuv_matrix, yuv_to_rgb_matrix
from ..models.affine import AffineOperatorModel
from ..models.base import EnhancementModel
from .onnx_operator import OnnxOperator, load_onnx_operator, onnxruntime_available

__all__ = ["CpuBackend", "default_threads", "to_float_nchw", "to_uint8_hwc", "apply_operator_numpy", "frame_caps",
           "apply_operator_yuv", "Workspace"]


def default_threads() -> int:
    """Torch CPU threads when none are given: all cores but one (at least 1).

    Decoding and H.264 encoding run in their own threads at the same time; on a 2-core machine an
    OpenMP team of 2 stalls at every barrier when the other core is busy (measured: median network
    time 8x worse than with 1 thread under load), so one core is left to them.
    """
    return max(1, (os.cpu_count() or 1) - 1)

class Workspace:
    """Scratch arrays reused from frame to frame, one per name (reallocated when the shape changes).

    The full-size float planes of the operator's application (3.7 MB each at 720p) cost more to get
    from the allocator, fault in and return, every frame, than the arithmetic on them: measured,
    the 720p one-channel-gain application took 15-18 ms with fresh arrays and 5-6 ms with these.
    Only scratch goes here, never a result handed to another thread. Not thread-safe: one per
    inference thread (the CPU backend owns one).
    """

    def __init__(self) -> None:
        self._arrays: dict[str, np.ndarray] = {}

    def get(self, name: str, shape: tuple[int, ...], dtype: type = np.float32) -> np.ndarray:
        """An uninitialised array of ``shape`` and ``dtype``, the same one as last time if they match."""
        arr = self._arrays.get(name)
        if arr is None or arr.shape != tuple(shape) or arr.dtype != dtype:
            arr = self._arrays[name] = np.empty(shape, dtype)
        return arr

    def resized(self, name: str, x: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        """``x`` (``(h, w)`` or ``(h, w, c)`` float32) resized bilinearly to ``size = (W, H)`` into the
        scratch array ``name``; ``x`` itself when it already has that size."""
        if x.shape[:2] == (size[1], size[0]):
            return x
        dst = self.get(name, (size[1], size[0]) + x.shape[2:])
        return cv2.resize(x, size, dst=dst, interpolation=cv2.INTER_LINEAR)


def to_float_nchw(arrays: Sequence[np.ndarray]) -> torch.Tensor:
    """``(H, W, 3)`` uint8 arrays -> ``(B, 3, H, W)`` float32 in [0, 1], channels_last memory (one copy)."""
    batch = arrays[0][None] if len(arrays) == 1 else np.stack(arrays)
    return torch.from_numpy(batch).permute(0, 3, 1, 2).float().div_(255.0)


def to_uint8_hwc(x: torch.Tensor) -> list[np.ndarray]:
    """``(B, 3, H, W)`` float in [0, 1] -> list of ``(H, W, 3)`` uint8 arrays (rounded)."""
    u8 = x.mul(255.0).add_(0.5).clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1)
    return [np.ascontiguousarray(u8[b].numpy()) for b in range(u8.shape[0])]


def apply_operator_numpy(image: np.ndarray, offset: np.ndarray, gain: np.ndarray,
                         workspace: Workspace | None = None, cap: tuple[float, float] | None = None) -> np.ndarray:
    """``clip(up(offset) + up(gain) * image)`` with OpenCV (bilinear, half-pixel centres).

    Args:
        image: ``(H, W, 3)`` uint8.
        offset: ``(h, w, 3)`` float32 in 0..255 units.
        gain: ``(h, w, 1|3)`` float32.
        workspace: scratch arrays to reuse across calls (``None``: fresh ones).
        cap: ``(floor, slope)``: then no pixel's luma above ``floor + slope * box3(luma(image))`` (0..1
            units; the colours scaled together; :func:`~lowlight_rt.models.affine.cap_output_luma`).
    Returns:
        ``(H, W, 3)`` uint8 (rounded, saturated), a new array.
    """
    ws = workspace if workspace is not None else Workspace()
    h_full, w_full = image.shape[:2]
    if gain.shape[-1] == 1:
        g = gain[..., 0]
        gain = cv2.merge([g, g, g])
    size = (w_full, h_full)
    prod = cv2.multiply(image, ws.resized("gain_full", gain, size), dst=ws.get("product", (h_full, w_full, 3)),
                        dtype=cv2.CV_32F)
    out = cv2.add(prod, ws.resized("offset_full", offset, size), dtype=cv2.CV_8U)
    return out if cap is None else _cap_rgb(out, image, *cap, ws)


def _limit(luma: np.ndarray, slope: float, offset: float, ws: Workspace, lowest: int = 0) -> np.ndarray:
    """``offset + slope * box3(luma)``, uint8 from ``lowest`` (a 256-entry table on the rounded 3x3 mean);
    a workspace array."""
    table = np.clip(np.rint(offset + slope * np.arange(256.0)), lowest, 255).astype(np.uint8)
    blurred = cv2.blur(luma, (3, 3), dst=ws.get("cap_blur", luma.shape, np.uint8))
    return cv2.LUT(blurred, table, dst=ws.get("cap_limit", luma.shape, np.uint8))


def _cap_rgb(out: np.ndarray, image: np.ndarray, floor: float, slope: float, ws: Workspace) -> np.ndarray:
    """:func:`~lowlight_rt.models.affine.cap_output_luma` on uint8 RGB."""
    limit = _limit(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), slope, 255.0 * floor, ws)
    luma = cv2.cvtColor(out, cv2.COLOR_RGB2GRAY)
    if not cv2.countNonZero(cv2.compare(luma, limit, cv2.CMP_GT)):
        return out
    scale = cv2.min(cv2.divide(limit, cv2.max(luma, 1), dtype=cv2.CV_32F), 1.0)
    return cv2.multiply(out, cv2.merge([scale, scale, scale]), dtype=cv2.CV_8U)


def _cap_yuv(out: YuvPlanes, luma_in: np.ndarray, floor: float, slope: float, ws: Workspace) -> YuvPlanes:
    """:func:`~lowlight_rt.models.affine.cap_output_luma` on limited-range planes: luma capped at full
    resolution (the input's luma read as ``(Y - 16) / 219``). Chroma is left as the operator made it: scaling
    it too cost ~6 ms of CPU per 720p frame against ~1.5 ms for the luma, and made no visible difference
    on the night driving clip (the capped pixels are dark, where the operator's chroma is near grey already)."""
    limit = _limit(luma_in, slope, 16.0 + 219.0 * floor - 16.0 * slope, ws, lowest=16)
    return YuvPlanes(cv2.min(out.y, limit), out.u, out.v, out.matrix)


def apply_operator_yuv(planes: YuvPlanes, offset: np.ndarray, gain: np.ndarray,
                       out_matrix: str | None = None, workspace: Workspace | None = None,
                       cap: tuple[float, float] | None = None) -> YuvPlanes:
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

    A one-channel gain (the student's) takes a faster, more exact route that needs no RGB at all
    (:func:`_apply_scalar_gain_yuv`: ``B diag(g) A = g B A``).

    Exact up to the interpolation of chroma (bilinear here, swscale's in the RGB path) and the
    clipping of luma (input luma below 16 is read as 16, output luma is clipped to 16..235; the RGB path clips
    each channel, which differs only out of gamut). ``lowlight-rt
    bench`` measures the written video against the RGB path's frames (PSNR).

    Args:
        planes: input picture, ``(H, W)`` / ``(H/2, W/2)`` uint8 planes.
        offset: ``(h, w, 3)`` float32 RGB offset in 0..255 units (the operator grid).
        gain: ``(h, w, 1|3)`` float32 RGB gain.
        out_matrix: matrix of the output planes; ``None``: the input's (no matrix change: the
            cheapest route, and what a file job does, its output tagged with the input's matrix).
        workspace: scratch arrays to reuse across calls (``None``: fresh ones).
        cap: ``(floor, slope)`` as in :func:`apply_operator_numpy` (the input's luma read as ``(Y - 16) / 219``).
    Returns:
        New :class:`YuvPlanes` in ``out_matrix`` (full size, limited range; never workspace arrays).
    """
    ws = workspace if workspace is not None else Workspace()
    planes = _luma_from_black(planes, ws)
    out = _apply_operator_yuv(planes, offset, gain, out_matrix or planes.matrix, ws)
    return out if cap is None else _cap_yuv(out, planes.y, *cap, ws)


def _luma_from_black(planes: YuvPlanes, ws: Workspace) -> YuvPlanes:
    """The planes with luma below limited-range black (16) read as black, as the RGB path's conversion
    clips it (to RGB 0). Noisy dark video has many such samples (a third of a night clip's with sensor noise
    of 4 codes): without this the gain lifts their noise below black into the picture, darker and far noisier
    than the RGB path (28 against 44 dB between the two paths, docs/PERFORMANCE.md section 11). The luma is a
    workspace array."""
    y = cv2.max(planes.y, 16.0, dst=ws.get("luma_in", planes.y.shape, np.uint8))
    return YuvPlanes(y, planes.u, planes.v, planes.matrix)


def _apply_operator_yuv(planes: YuvPlanes, offset: np.ndarray, gain: np.ndarray, out_matrix: str,
                        ws: Workspace) -> YuvPlanes:
    """:func:`apply_operator_yuv` without the cap."""
    h_full, w_full = planes.height, planes.width
    half = (w_full // 2, h_full // 2)
    a = yuv_to_rgb_matrix(planes.matrix).astype(np.float32)
    b = rgb_to_yuv_matrix(out_matrix).astype(np.float32)
    if gain.shape[-1] == 1:
        return _apply_scalar_gain_yuv(planes, offset, gain[..., 0], b @ a, b, out_matrix, ws)
    # per-channel contiguous planes (arithmetic on interleaved channels, numpy matmul and cv2.split
    # were each several ms per frame on the 2-core machine; single-plane resizes are ~0.2 ms)
    o_grid = [np.ascontiguousarray(offset[..., c], dtype=np.float32) for c in range(3)]
    gains = [np.ascontiguousarray(gain[..., c], dtype=np.float32) for c in range(gain.shape[-1])]
    g_grid = [gains[min(c, len(gains) - 1)] for c in range(3)]   # a one-channel gain serves all three
    g_yy = b[0, 0] * a[0, 0] * g_grid[0] + b[0, 1] * a[1, 0] * g_grid[1] + b[0, 2] * a[2, 0] * g_grid[2]

    def up(x: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        return x if x.shape[::-1] == size else cv2.resize(x, size, interpolation=cv2.INTER_LINEAR)

    yc = cv2.resize(planes.y, half, interpolation=cv2.INTER_AREA).astype(np.float32) - 16.0
    uc = planes.u.astype(np.float32) - 128.0
    vc = planes.v.astype(np.float32) - 128.0
    out_rgb = []
    k_half = 16.0 - 16.0 * up(g_yy, half)  # luma: constant part + chroma cross terms, at chroma resolution
    g_half = [up(g, half) for g in gains]   # resized once per distinct gain plane
    for c in range(3):
        o_c, g_c = up(o_grid[c], half), g_half[min(c, len(g_half) - 1)]
        chroma_c = a[c, 1] * uc + a[c, 2] * vc
        k_half += b[0, c] * (o_c + g_c * chroma_c)
        out_rgb.append(np.clip(o_c + g_c * (a[c, 0] * yc + chroma_c), 0.0, 255.0))
    full = (w_full, h_full)   # the full-size planes are scratch, reused
    product = cv2.multiply(planes.y, ws.resized("gain_full", g_yy, full), dst=ws.get("product", (h_full, w_full)),
                           dtype=cv2.CV_32F)
    y = cv2.add(product, ws.resized("luma_const", k_half, full), dtype=cv2.CV_8U)
    np.clip(y, 16, 235, out=y)
    chroma = []
    for row in (1, 2):
        plane = 128.5 + b[row, 0] * out_rgb[0] + b[row, 1] * out_rgb[1] + b[row, 2] * out_rgb[2]
        chroma.append(np.clip(plane, 16, 240).astype(np.uint8))
    return YuvPlanes(y, chroma[0], chroma[1], out_matrix)


def _apply_scalar_gain_yuv(planes: YuvPlanes, offset: np.ndarray, gain: np.ndarray, m: np.ndarray,
                           b: np.ndarray, out_matrix: str, ws: Workspace) -> YuvPlanes:
    """:func:`apply_operator_yuv` for a one-channel gain ``g``.

    Then ``B diag(g) A = g M`` with ``M = B A`` (the identity when the input is already in
    ``out_matrix``; otherwise luma gains small chroma terms, ``M``'s first column is ``(1, 0, 0)``)::

        P' = c_P + (B o)_P + g * sum_j M_Pj (P_j - c_j)        (c = 16 for luma, 128 for chroma)

    Luma is one multiply-add per sample with the operator grid resized straight to full size (plus
    the chroma terms, at chroma resolution, for a matrix change); chroma is computed at its own
    resolution. Exact except that RGB is not clipped per channel: luma is clipped to 16..235 and chroma
    to 16..240, as the encoder takes them (they differ only out of gamut). Intermediates live in
    ``ws``; the returned planes are new arrays.

    Args:
        planes: input ``(H, W)`` / ``(H/2, W/2)`` uint8 planes.
        offset: ``(h, w, 3)`` float32 RGB offset, 0..255 units; gain: ``(h, w)`` float32.
        m: ``(3, 3)`` ``B A``; b: ``(3, 3)`` RGB -> YUV matrix of the output.
        ws: scratch arrays.
    """
    full, half = (planes.width, planes.height), (planes.u.shape[1], planes.u.shape[0])
    full_hw, half_hw = full[::-1], half[::-1]
    o = [np.ascontiguousarray(offset[..., c], dtype=np.float32) for c in range(3)]
    gain = np.ascontiguousarray(gain, dtype=np.float32)

    def bo(row: int, centre: float) -> np.ndarray:   # c_P + (B o)_P - c_P g on the operator grid
        return b[row, 0] * o[0] + b[row, 1] * o[1] + b[row, 2] * o[2] + centre * (1.0 - gain)

    g_half = ws.resized("gain_half", gain, half)
    same = planes.matrix == out_matrix   # then M is the identity
    y_const = ws.resized("luma_const", bo(0, 16.0), full)
    if not same:    # luma's chroma terms, at chroma resolution
        uc = cv2.subtract(planes.u, 128.0, dst=ws.get("u_centred", half_hw), dtype=cv2.CV_32F)
        vc = cv2.subtract(planes.v, 128.0, dst=ws.get("v_centred", half_hw), dtype=cv2.CV_32F)
        terms = cv2.multiply(cv2.addWeighted(uc, m[0, 1], vc, m[0, 2], 0.0, dst=ws.get("mixed", half_hw)),
                             g_half, dst=ws.get("mixed", half_hw))
        y_const = cv2.add(y_const, ws.resized("luma_terms", terms, full), dst=y_const)
    product = cv2.multiply(planes.y, ws.resized("gain_full", gain, full), dst=ws.get("product", full_hw), dtype=cv2.CV_32F)
    y = cv2.add(product, y_const, dtype=cv2.CV_8U)
    np.clip(y, 16, 235, out=y)
    chroma = []
    for row in (1, 2):
        const = ws.resized("chroma_const", bo(row, 128.0), half)
        if same:
            plane = getattr(planes, "uv"[row - 1])
            product = cv2.multiply(plane, g_half, dst=ws.get("product_half", half_hw), dtype=cv2.CV_32F)
        else:
            mixed = cv2.addWeighted(uc, m[row, 1], vc, m[row, 2], 0.0, dst=ws.get("mixed", half_hw))
            product = cv2.multiply(mixed, g_half, dst=ws.get("product_half", half_hw))
            const = cv2.scaleAdd(g_half, 128.0, const, dst=const)
        c = cv2.add(product, const, dtype=cv2.CV_8U)
        np.clip(c, 16, 240, out=c)
        chroma.append(c)
    return YuvPlanes(y, chroma[0], chroma[1], out_matrix)


def frame_caps(model: AffineOperatorModel, low: torch.Tensor, strength: float = 1.0) -> list[tuple[float, float] | None]:
    """The model's output cap (:meth:`~lowlight_rt.models.affine.AffineOperatorModel.output_cap`) per frame
    of ``low`` ``(B, 3, h, w)``, as ``(floor, slope)`` floats, eased with the strength ``s``: the floor is
    raised by ``1 - s`` (at ``s = 0`` nothing is capped and the input comes back exactly). ``None`` entries:
    no cap."""
    cap = model.output_cap(low)
    if cap is None or strength <= 0:
        return [None] * low.shape[0]
    floor, slope = cap
    return [(floor + 1.0 - float(strength), float(k)) for k in slope.float().cpu()]


class CpuBackend:
    """float32, ``inference_mode``, channels_last; operators applied with OpenCV."""

    def __init__(self, model: EnhancementModel, threads: int | None, compile: bool,
                 runtime: str = DEFAULT_CPU_RUNTIME) -> None:
        self.model = model.to("cpu").float().eval().requires_grad_(False).to(memory_format=torch.channels_last)
        self.threads = threads or default_threads()
        self.precision = "fp32"
        self.device_name = "cpu"
        self._onnx = self._onnx_operator() if runtime == "onnxruntime" else None
        #: what computes the operator grid: "onnxruntime" or "torch"
        self.network_runtime = "torch" if self._onnx is None else "onnxruntime"
        self._fn: Callable = self._eager()
        self._compile = compile
        self._compiled = False
        self._configured_thread: int | None = None
        self._workspace = Workspace()   # scratch of the operator's application, one application at a time
        self._apply_lock = threading.Lock()

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

    def _onnx_operator(self) -> OnnxOperator | None:
        """The checkpoint's ONNX export of the model's operator grid, checked against the model; ``None``
        (torch runs it) when the model has none, or with a one-line warning when it cannot be used."""
        blob = getattr(self.model, "onnx_operator", None)
        if blob is None or not callable(getattr(self.model, "operator_grid", None)):
            return None
        if not onnxruntime_available():
            warnings.warn("onnxruntime is not installed: the model runs in torch (slower on the CPU)", stacklevel=3)
            return None
        try:
            return load_onnx_operator(self.model, blob, self.threads)
        except ValueError as e:
            warnings.warn(f"{e}: the model runs in torch", stacklevel=3)
            return None

    def _eager(self) -> Callable:
        if not isinstance(self.model, AffineOperatorModel):
            return self.model.enhance
        if self._onnx is not None:
            return functools.partial(self.model.predict_operator, operator_grid=self._grid)
        return self.model.predict_operator

    def _grid(self, low: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The operator grid through onnxruntime; torch from the first failure on (one warning; the grid
        has no state, so the frame is recomputed as it would have been)."""
        if self._onnx is not None:
            try:
                return self._onnx(low)
            except Exception as e:  # noqa: BLE001 - onnxruntime raises its own exception types
                first = str(e).strip().splitlines()[0][:200] if str(e).strip() else ""
                warnings.warn(f"onnxruntime failed ({type(e).__name__}{': ' + first if first else ''}); "
                              "the model runs in torch from now on", stacklevel=2)
                self._onnx, self.network_runtime = None, "torch"
        return self.model.operator_grid(low)

    def _call(self, *args: torch.Tensor):
        if not self._compiled:
            return self._fn(*args)
        try:
            return self._fn(*args)
        except Exception as e:
            warnings.warn(f"compiled model failed ({type(e).__name__}: {e}); running eager", stacklevel=3)
            self._fn, self._compiled = self._eager(), False
            return self._fn(*args)

    def predict_operator(self, low: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The affine model's operator for ``low (B, 3, h, w)`` in [0, 1] as the engine computes it
        (this backend's runtime and threads): ``offset (B, 3, h', w')``, ``gain (B, 1|3, h', w')``."""
        self._configure_thread()
        with torch.inference_mode():
            return self._call(low)

    def _prepare(self, images: list[np.ndarray] | None, lows: list[np.ndarray] | None, strength: float,
                 yuv: list[YuvPlanes] | None = None) -> Callable[[], list[np.ndarray | YuvPlanes]]:
        """Run the network now (this thread: torch's settings and the model's temporal state live here);
        returns the rest of the work: for affine models the operator's full-resolution application,
        which needs no torch and can run on another thread."""
        self._configure_thread()
        with torch.inference_mode():
            if not isinstance(self.model, AffineOperatorModel):
                full = to_float_nchw(images)
                low = full if lows is None else to_float_nchw(lows)
                enhanced = self._call(full, low).float()
                if strength != 1.0:
                    enhanced = torch.lerp(full, enhanced, strength)
                out = to_uint8_hwc(enhanced)
                return lambda: out
            low = to_float_nchw(lows if lows is not None else images)
            offset, gain = self._call(low)
            offset, gain = offset.float(), gain.float()
            if strength != 1.0:
                offset = offset * strength
                gain = torch.lerp(torch.ones_like(gain), gain, strength)
            offset_np = offset.mul(255.0).permute(0, 2, 3, 1).contiguous().numpy()
            gain_np = gain.permute(0, 2, 3, 1).contiguous().numpy()
            caps = frame_caps(self.model, low, strength)
        ws = self._workspace

        def apply() -> list[np.ndarray | YuvPlanes]:
            if yuv is not None:
                return [apply_operator_yuv(planes, offset_np[b], gain_np[b], workspace=ws, cap=caps[b])
                        for b, planes in enumerate(yuv)]
            return [apply_operator_numpy(img, offset_np[b], gain_np[b], workspace=ws, cap=caps[b])
                    for b, img in enumerate(images)]
        return apply

    def run(self, images: list[np.ndarray] | None, lows: list[np.ndarray] | None, strength: float,
            yuv: list[YuvPlanes] | None = None) -> list[np.ndarray | YuvPlanes]:
        """Enhance ``images`` (``(H, W, 3)`` uint8 RGB), or with ``yuv`` (affine models only) the
        4:2:0 planes, returning :class:`YuvPlanes` (in the input's matrix) instead of RGB arrays; all on this thread."""
        return self.submit(images, lows, strength, yuv)()

    def submit(self, images: list[np.ndarray] | None, lows: list[np.ndarray] | None, strength: float,
               yuv: list[YuvPlanes] | None = None) -> Callable[[], list]:
        """:meth:`run` in two steps: the network now, the operator's full-resolution application when
        the returned callable is called, on the caller's thread (the inference worker's finishing thread,
        while the network runs on the next batch; docs/PERFORMANCE.md section 7)."""
        apply = self._prepare(images, lows, strength, yuv)

        def finish() -> list[np.ndarray | YuvPlanes]:
            with self._apply_lock:   # the workspace serves one application at a time
                return apply()
        return finish

    def accepts_yuv(self) -> bool:
        """Whether :meth:`run` can work on 4:2:0 planes (affine operator models)."""
        return isinstance(self.model, AffineOperatorModel)

    def close(self) -> None:
        """Nothing to release on the CPU."""
