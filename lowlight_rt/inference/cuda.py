"""CUDA path of the engine: FP16 + channels_last on a dedicated stream with pinned, double-buffered I/O.

Per batch shape the backend keeps two *slots*, each with preallocated pinned host input buffers
(full and processing size) and device buffers. A batch is staged into its slot's pinned memory,
uploaded with a ``non_blocking`` copy on a copy stream, computed on the compute stream once the
upload's event has fired, and downloaded ``non_blocking`` into a pinned output buffer from PyTorch's
caching host allocator, whose arrays are handed out without another copy. While batch N computes,
batch N+1 is already uploading into the other slot (the worker submits N+1 before it collects N).

The first batch of every model is also run in FP32; if the FP16 result differs too much, is NaN or
is black where FP32 is not, the backend warns and runs FP32 from then on.
"""

from __future__ import annotations

import copy
import logging
import warnings
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from ..models.affine import AffineOperatorModel, cap_output_luma
from ..models.base import EnhancementModel, resize

log = logging.getLogger(__name__)

#: FP16 vs FP32 on the same input: largest allowed absolute difference of the [0, 1] output
FP16_MAX_ABS_DIFF = 0.08
#: ... and of the mean absolute difference
FP16_MEAN_ABS_DIFF = 0.01


def compare_outputs(out16: torch.Tensor, out32: torch.Tensor) -> str | None:
    """Why an FP16 result ``(B, 3, H, W)`` in [0, 1] is unusable next to FP32, or ``None`` if it is fine."""
    a, b = out16.float(), out32.float()
    if not torch.isfinite(a).all():
        return "FP16 output has NaN/Inf values"
    mean16, mean32 = float(a.mean()), float(b.mean())
    if mean32 > 0.02 and mean16 < 0.25 * mean32:
        return f"FP16 output is black (mean {mean16:.4f} vs FP32 {mean32:.4f})"
    diff = (a - b).abs()
    max_diff, mean_diff = float(diff.max()), float(diff.mean())
    if max_diff > FP16_MAX_ABS_DIFF or mean_diff > FP16_MEAN_ABS_DIFF:
        return f"FP16 differs from FP32 (max {max_diff:.4f}, mean {mean_diff:.4f})"
    return None


@dataclass
class _Slot:
    """Buffers for one in-flight batch of a fixed shape."""

    host_full: torch.Tensor            # (B, H, W, 3) uint8, pinned
    host_low: torch.Tensor | None      # (B, h, w, 3) uint8, pinned
    dev_full: torch.Tensor
    dev_low: torch.Tensor | None
    uploaded: torch.cuda.Event = field(default_factory=torch.cuda.Event)
    done: torch.cuda.Event = field(default_factory=torch.cuda.Event)
    uses: int = 0
    graph: torch.cuda.CUDAGraph | None = None
    graph_out: torch.Tensor | None = None
    outstanding: _Fetch | None = None


class _Fetch:
    """Waits for one batch and returns views of its pinned output buffer (no extra host copy).

    The buffer comes from PyTorch's caching pinned-memory allocator; the arrays keep it alive and it
    is recycled once they are dropped.
    """

    def __init__(self, slot: _Slot, host_out: torch.Tensor) -> None:
        self.slot, self.host_out = slot, host_out
        self.value: list[np.ndarray] | None = None

    def __call__(self) -> list[np.ndarray]:
        if self.value is None:
            self.slot.done.synchronize()
            host = self.host_out.numpy()
            self.value = [host[i] for i in range(host.shape[0])]
            self.slot.outstanding = None
        return self.value


class CudaBackend:
    """Runs a model on one CUDA device; create it in the thread that will call :meth:`submit`."""

    def __init__(self, model: EnhancementModel, device: torch.device, fp16: bool = True,
                 compile: bool = False, cuda_graphs: bool = False) -> None:
        self.device = device
        torch.cuda.set_device(device)
        torch.backends.cudnn.benchmark = True
        self.stream = torch.cuda.Stream(device)       # compute
        self.copy_stream = torch.cuda.Stream(device)  # host -> device uploads
        model = model.eval().requires_grad_(False)
        self._ref: EnhancementModel | None = None
        if fp16:
            self._ref = copy.deepcopy(model).float().to(device).to(memory_format=torch.channels_last)
        self.dtype = torch.float16 if fp16 else torch.float32
        self.model = model.to(device=device, dtype=self.dtype).to(memory_format=torch.channels_last)
        self.is_operator = isinstance(self.model, AffineOperatorModel)
        self.device_name = f"cuda:{device.index} ({torch.cuda.get_device_name(device)})"
        self._strength = torch.ones((), device=device, dtype=torch.float32)
        self._slots: dict[tuple, list[_Slot]] = {}
        self._turn: dict[tuple, int] = {}
        stateful = callable(getattr(self.model, "reset_state", None))
        if cuda_graphs and stateful:
            warnings.warn("CUDA graphs disabled: the model keeps temporal state", stacklevel=3)
        self._use_graphs = cuda_graphs and not stateful
        self._fn: Callable = self._model_fn(self.model)
        if compile:
            try:
                self._fn = torch.compile(self._fn, dynamic=False)
            except Exception as e:
                warnings.warn(f"torch.compile unavailable ({type(e).__name__}); running eager", stacklevel=3)
        self._compiled = compile

    @property
    def precision(self) -> str:
        return "fp16" if self.dtype == torch.float16 else "fp32"

    # -- computation -----------------------------------------------------------------------------
    @staticmethod
    def _model_fn(model: EnhancementModel) -> Callable:
        return model.predict_operator if isinstance(model, AffineOperatorModel) else model.enhance

    def _compute(self, fn: Callable, dtype: torch.dtype, full_u8: torch.Tensor, low_u8: torch.Tensor | None,
                 as_uint8: bool = True) -> torch.Tensor:
        """``(B, H, W, 3)`` uint8 on the device -> ``(B, H, W, 3)`` uint8 (or ``(B, 3, H, W)`` float)."""
        scale = 1.0 / 255.0
        full = full_u8.permute(0, 3, 1, 2).to(dtype).mul_(scale)  # channels_last memory
        low = full if low_u8 is None else low_u8.permute(0, 3, 1, 2).to(dtype).mul_(scale)
        s = self._strength.to(dtype)
        if self.is_operator:
            offset, gain = fn(low)
            size = tuple(full.shape[-2:])
            offset = resize(offset.to(dtype) * s, size)
            gain = resize(torch.lerp(torch.ones_like(gain), gain, s.to(gain.dtype)).to(dtype), size)
            out = torch.addcmul(offset, gain, full).clamp_(0, 1)
            cap = self.model.output_cap(low)
            if cap is not None:   # eased with the strength like the operator (see cpu.frame_caps)
                floor, slope = cap
                out = cap_output_luma(out, full, floor + (1 - s), slope)
        else:
            out = torch.lerp(full, fn(full, low).to(dtype), s)
        if not as_uint8:
            return out
        # scale in float32: FP16 has a 1/8 step near 255, which would misround some pixels
        return out.float().mul_(255.0).add_(0.5).clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1)

    def _check_fp16(self, full_u8: torch.Tensor, low_u8: torch.Tensor | None) -> None:
        """Compare the first FP16 batch with FP32; switch to FP32 with a warning if it fails."""
        ref, self._ref = self._ref, None
        if ref is None:
            return
        with torch.inference_mode():
            # both copies start from the same temporal state (the copy was made before any frame)
            out16 = self._compute(self._fn, torch.float16, full_u8, low_u8, as_uint8=False)
            out32 = self._compute(self._model_fn(ref), torch.float32, full_u8, low_u8, as_uint8=False)
        problem = compare_outputs(out16, out32)
        if problem is None:
            log.info("FP16 check passed")
            return
        warnings.warn(f"{problem}; falling back to FP32", stacklevel=4)
        self.model, self.dtype = ref, torch.float32
        self._fn = self._model_fn(ref)
        reset = getattr(self.model, "reset_state", None)
        if callable(reset):
            reset()

    # -- buffers ---------------------------------------------------------------------------------
    def _slot(self, images: list[np.ndarray], lows: list[np.ndarray] | None) -> _Slot:
        b = len(images)
        h, w = images[0].shape[:2]
        lh, lw = (lows[0].shape[:2] if lows is not None else (0, 0))
        key = (b, h, w, lh, lw)
        slots = self._slots.get(key)
        if slots is None:
            slots = []
            for _ in range(2):
                host_low = torch.empty((b, lh, lw, 3), dtype=torch.uint8, pin_memory=True) if lows is not None else None
                slots.append(_Slot(
                    host_full=torch.empty((b, h, w, 3), dtype=torch.uint8, pin_memory=True),
                    host_low=host_low,
                    dev_full=torch.empty((b, h, w, 3), dtype=torch.uint8, device=self.device),
                    dev_low=torch.empty((b, lh, lw, 3), dtype=torch.uint8, device=self.device) if lows is not None else None,
                ))
            self._slots[key] = slots
            self._turn[key] = 0
        slot = slots[self._turn[key]]
        self._turn[key] ^= 1
        return slot

    def _try_capture(self, slot: _Slot) -> None:
        """Capture the slot's compute in a CUDA graph (after eager warm-up uses)."""
        try:
            graph = torch.cuda.CUDAGraph()
            with torch.inference_mode(), torch.cuda.graph(graph, stream=self.stream,
                                                          capture_error_mode="thread_local"):
                out = self._compute(self._fn, self.dtype, slot.dev_full, slot.dev_low)
            slot.graph, slot.graph_out = graph, out
        except Exception as e:
            warnings.warn(f"CUDA graph capture failed ({type(e).__name__}: {e}); running without graphs", stacklevel=4)
            self._use_graphs = False

    # -- public ----------------------------------------------------------------------------------
    def submit(self, images: list[np.ndarray], lows: list[np.ndarray] | None, strength: float) -> Callable[[], list[np.ndarray]]:
        """Stage, upload and launch a batch; returns a callable that waits for and returns the output."""
        slot = self._slot(images, lows)
        if slot.outstanding is not None:  # its previous output was never collected: collect it now
            slot.outstanding()
        slot.uploaded.synchronize()  # the previous upload from these pinned buffers has finished
        host_full = slot.host_full.numpy()
        for i, img in enumerate(images):
            np.copyto(host_full[i], img)
        if lows is not None and slot.host_low is not None:
            host_low = slot.host_low.numpy()
            for i, low in enumerate(lows):
                np.copyto(host_low[i], low)
        with torch.cuda.stream(self.copy_stream):
            self.copy_stream.wait_event(slot.done)  # the device buffers are free again
            slot.dev_full.copy_(slot.host_full, non_blocking=True)
            if slot.dev_low is not None:
                slot.dev_low.copy_(slot.host_low, non_blocking=True)
            slot.uploaded.record(self.copy_stream)
        with torch.cuda.stream(self.stream), torch.inference_mode():
            self.stream.wait_event(slot.uploaded)
            self._strength.fill_(float(strength))
            if self._ref is not None:
                self._check_fp16(slot.dev_full, slot.dev_low)
            slot.uses += 1
            if self._use_graphs and slot.graph is None and slot.uses > 2:
                self._try_capture(slot)
            if slot.graph is not None and self._use_graphs:
                slot.graph.replay()
                out = slot.graph_out
            else:
                out = self._compute(self._fn, self.dtype, slot.dev_full, slot.dev_low)
            host_out = torch.empty((len(images), *images[0].shape), dtype=torch.uint8, pin_memory=True)
            host_out.copy_(out, non_blocking=True)
            slot.done.record(self.stream)
        fetch = _Fetch(slot, host_out)
        slot.outstanding = fetch
        return fetch

    def close(self) -> None:
        """Wait for queued work and drop the buffers."""
        try:
            self.stream.synchronize()
            self.copy_stream.synchronize()
        finally:
            self._slots.clear()
