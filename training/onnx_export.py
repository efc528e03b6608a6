"""Export a model's stateless operator prediction (``model.operator_grid``) to ONNX for the CPU engine.

Needs the ``onnx`` and ``onnxscript`` packages (the ``train`` extra): ``torch.onnx.export`` with the
torch.export-based exporter. The export holds the trained layers and every operator step with the
model's current config (the temporal filter, which has state, stays in torch); batch, height and width
are dynamic. It is checked against the torch model with onnxruntime before it is returned.
``python -m training.export_student`` stores it in the runtime checkpoint it writes (about a minute).
"""

from __future__ import annotations

import copy
import logging
import tempfile
import warnings
from pathlib import Path

import torch
from torch import nn

from lowlight_rt.errors import ModelError
from lowlight_rt.inference.onnx_operator import INPUTS, OUTPUTS, load_onnx_operator
from lowlight_rt.models import EnhancementModel

__all__ = ["export_operator_onnx", "has_operator_grid"]

#: largest processing side the export accepts (pixels)
MAX_SIDE = 8192


def has_operator_grid(model: EnhancementModel) -> bool:
    """Whether ``model`` computes its operator in a stateless ``operator_grid(low)`` that can be exported."""
    return callable(getattr(model, "operator_grid", None))


class _OperatorGrid(nn.Module):
    """``model.operator_grid`` as a module's ``forward`` (what the exporter traces)."""

    def __init__(self, model: EnhancementModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, low: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.model.operator_grid(low)


def export_operator_onnx(model: EnhancementModel) -> bytes:
    """``model.operator_grid`` -> ONNX bytes (input ``low``; outputs ``offset``, ``gain``, ``x_half``, ``level``).

    Raises ``ModelError`` when the model has no operator grid, the exporter is missing, or the export
    does not reproduce the torch model (checked with onnxruntime on a probe of another size).
    """
    if not has_operator_grid(model):
        raise ModelError(f"{model.arch_name or type(model).__name__} has no operator grid to export to ONNX")
    module = _OperatorGrid(copy.deepcopy(model).float().eval().to(memory_format=torch.contiguous_format))
    low = torch.rand(1, 3, 192, 341) * 0.3
    batch = torch.export.Dim("batch", min=1, max=256)
    height = torch.export.Dim("height", min=8, max=MAX_SIDE)
    width = torch.export.Dim("width", min=8, max=MAX_SIDE)
    quiet = logging.getLogger("torch.onnx")
    previous = quiet.level
    quiet.setLevel(logging.ERROR)   # notes about optional torchvision ops, renamed axes
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(module, (low,), dynamo=True, input_names=list(INPUTS),
                                        output_names=list(OUTPUTS), verbose=False,
                                        dynamic_shapes={"low": {0: batch, 2: height, 3: width}})
    except ImportError as e:
        raise ModelError(f"exporting to ONNX needs the onnx and onnxscript packages ({e}); "
                         "pip install -e '.[train]'") from None
    finally:
        quiet.setLevel(previous)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "operator.onnx"
        program.save(str(path))
        blob = path.read_bytes()
    try:
        load_onnx_operator(module.model, blob)
    except (ValueError, ImportError) as e:
        raise ModelError(f"the ONNX export of {model.arch_name} failed its check: {e}") from None
    return blob
