"""A model's stateless operator prediction run by onnxruntime on the CPU (~1.3x faster than eager torch).

The real-time student computes its operator grid from a 344x192 input with ~40 small convolutions and
~400 small elementwise steps (colour prior, keep gates, limits); eager PyTorch spends most of that
time dispatching operators one by one. The same computation exported to ONNX (by
``python -m training.export_student``, stored in the checkpoint: :func:`~lowlight_rt.models.checkpoint.save_checkpoint`)
takes two thirds of the CPU time under onnxruntime (docs/PERFORMANCE.md, section 9). The export is
``model.operator_grid`` with the checkpoint's settings; the temporal filter after it, the only step with
state, stays the model's own torch code.

:func:`load_onnx_operator` builds the session and checks it against the torch model on a probe
input before anything uses it: an export that does not match the weights or the settings (a stale or
foreign blob) is refused, and the engine runs torch instead.
"""

from __future__ import annotations

import importlib.util
from typing import Any

import numpy as np
import torch

__all__ = ["OnnxOperator", "load_onnx_operator", "onnxruntime_available", "MATCH_TOLERANCE", "INPUTS", "OUTPUTS"]

#: largest difference allowed between the export's and the torch model's outputs on the probe input,
#: relative to the output's largest magnitude (float32 arithmetic in another order differs by ~1e-6 here)
MATCH_TOLERANCE = 1e-3
#: the export's input and output names (see ``RealtimeStudent.operator_grid``)
INPUTS = ("low",)
OUTPUTS = ("offset", "gain", "x_half", "level")


def onnxruntime_available() -> bool:
    """Whether onnxruntime can be imported (a dependency of the package; absent only in odd installs)."""
    return importlib.util.find_spec("onnxruntime") is not None


class OnnxOperator:
    """``low -> (offset, gain, x_half, level)`` through onnxruntime: a stand-in for ``model.operator_grid``.

    Args:
        blob: the ONNX model (input ``low (B, 3, h, w)`` float in [0, 1], batch, height and width dynamic).
        threads: onnxruntime intra-op threads (the CPU engine's torch thread count).

    Tensors in and out are float32 CPU tensors; outputs share memory with onnxruntime's arrays (no copy).
    """

    def __init__(self, blob: bytes, threads: int = 1) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = max(1, int(threads))
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3   # errors only
        options.add_session_config_entry("session.set_denormal_as_zero", "1")   # subnormals: 3-60x slower
        # worker threads that spin while waiting steal the core the decoder and x264 need
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = ort.InferenceSession(blob, options, providers=["CPUExecutionProvider"])
        names = (tuple(i.name for i in self._session.get_inputs()), tuple(o.name for o in self._session.get_outputs()))
        if names != (INPUTS, OUTPUTS):
            raise ValueError(f"not an operator export: inputs {list(names[0])}, outputs {list(names[1])}")

    def __call__(self, low: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """``low (B, 3, h, w)`` float in [0, 1] -> ``offset``, ``gain``, ``x_half`` ``(B, C, ceil(h/2), ceil(w/2))``, ``level (B, 1, 1, 1)``."""
        feed = np.ascontiguousarray(low.detach().float().numpy())
        return tuple(torch.from_numpy(a) for a in self._session.run(None, {INPUTS[0]: feed}))


def probe_input() -> torch.Tensor:
    """A fixed probe ``(2, 3, 37, 53)`` (odd sides: the padding; two frames: the batch axis): a dark
    frame and a night scene with a black sky, textured shadows and a lit patch, so every step is used."""
    g = torch.Generator().manual_seed(0)
    texture = torch.rand(2, 3, 37, 53, generator=g)
    ramp = torch.linspace(0.0, 1.0, 53).view(1, 1, 1, 53)
    night = (0.02 + 0.25 * ramp) * texture[1:]
    night[..., 20:30, 35:50] = 0.5 + 0.3 * texture[1:, :, 20:30, 35:50]   # a lit window
    night[..., :8, :] *= 0.05                                             # black sky
    return torch.cat([0.04 * texture[:1], night]).clamp(0, 1)


def load_onnx_operator(model: Any, blob: bytes, threads: int = 1) -> OnnxOperator:
    """An :class:`OnnxOperator` of ``blob``, checked against ``model.operator_grid`` (torch, CPU).

    Raises ``ValueError`` (with the reason) when the blob cannot be loaded or its outputs differ from
    the model's by more than :data:`MATCH_TOLERANCE`, and ``ImportError`` without onnxruntime.
    """
    try:
        op = OnnxOperator(blob, threads)
    except ImportError:
        raise
    except Exception as e:  # noqa: BLE001 - onnxruntime raises its own exception types for bad models
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise ValueError(f"unreadable ONNX export ({type(e).__name__}{': ' + first[:200] if first else ''})") from e
    low = probe_input()
    with torch.inference_mode():
        ref = model.operator_grid(low)
        try:
            got = op(low)
        except Exception as e:  # noqa: BLE001
            raise ValueError(f"the ONNX export does not run ({type(e).__name__})") from e
    for name, a, b in zip(OUTPUTS, got, ref):
        if a.shape != b.shape:
            raise ValueError(f"the ONNX export's {name} has shape {tuple(a.shape)}, the model's {tuple(b.shape)}")
        b = b.float()
        diff = float((a - b).abs().max())
        if not diff <= MATCH_TOLERANCE * (1.0 + float(b.abs().max())):
            raise ValueError(f"the ONNX export does not match the model ({name} differs by {diff:.3g})")
    return op
