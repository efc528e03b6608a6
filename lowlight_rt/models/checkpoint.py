"""Self-describing checkpoints: architecture name + config + weights + metadata.

A checkpoint is a ``torch.save``d dict of plain types, loadable with ``weights_only=True``::

    {"format": "lowlight-rt-checkpoint", "format_version": 1, "arch": "realtime",
     "config": {...}, "state_dict": {...}, "metadata": {...},
     "onnx_operator": uint8 tensor}     # optional, see below

``onnx_operator`` (written by ``python -m training.export_student``) holds the model's stateless
operator prediction (``model.operator_grid``: the trained layers and the operator steps with this
config) exported to ONNX; :func:`load_checkpoint` puts it on ``model.onnx_operator`` and the CPU engine
runs it through onnxruntime after checking it against the model
(:mod:`lowlight_rt.inference.onnx_operator`). Readers that do not know the key ignore it.
"""

from __future__ import annotations

import datetime as _dt
import os
import pickle
import subprocess
import zipfile
from pathlib import Path
from typing import Any

import torch

from ..errors import ModelError
from .base import EnhancementModel
from .registry import create_model

FORMAT = "lowlight-rt-checkpoint"
FORMAT_VERSION = 1


def git_revision(cwd: str | os.PathLike | None = None) -> str | None:
    """Current git commit of ``cwd`` (default: this source tree), or ``None`` outside a checkout."""
    cwd = cwd or Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def flush_denormals(t: torch.Tensor) -> torch.Tensor:
    """Zero out subnormal floats: they make CPU inference many times slower."""
    if not t.is_floating_point():
        return t
    tiny = torch.finfo(t.dtype).tiny
    return torch.where(t.abs() < tiny, torch.zeros_like(t), t)


def _plain(value: Any, where: str) -> Any:
    """Check that metadata/config values are plain types (loadable with weights_only=True)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v, where) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v, where) for k, v in value.items()}
    raise TypeError(f"{where} holds a {type(value).__name__}; only plain JSON-like values are allowed")


def save_checkpoint(path: str | os.PathLike, model: EnhancementModel, metadata: dict[str, Any] | None = None,
                    onnx_operator: bytes | None = None) -> Path:
    """Write ``model`` to ``path`` atomically (temp file + rename). Returns the path.

    ``metadata`` should describe training data, metrics, etc.; ``date``, ``git_revision``,
    ``num_parameters`` and ``lowlight_rt_version`` are filled in when absent. ``onnx_operator``: the
    model's operator grid exported to ONNX from these very weights and config (never taken from
    ``model.onnx_operator``, which may predate a change of either).
    """
    from .. import __version__

    if not model.arch_name:
        raise ValueError(f"{type(model).__name__} is not a registered model")
    meta = dict(metadata or {})
    meta.setdefault("date", _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
    meta.setdefault("git_revision", git_revision())
    meta.setdefault("num_parameters", model.num_parameters())
    meta.setdefault("lowlight_rt_version", __version__)
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "arch": model.arch_name,
        "config": _plain(model.config, "config"),
        "state_dict": {k: flush_denormals(v.detach().cpu().float() if v.is_floating_point() else v.detach().cpu())
                       for k, v in model.state_dict().items()},
        "metadata": _plain(meta, "metadata"),
    }
    if onnx_operator is not None:
        payload["onnx_operator"] = torch.frombuffer(bytearray(onnx_operator), dtype=torch.uint8)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)
    return path


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Load and validate the raw checkpoint dict; ``ModelError`` with one clear line otherwise."""
    path = Path(path)
    if not path.exists():
        raise ModelError(f"checkpoint not found: {path}")
    if path.is_dir():
        raise ModelError(f"checkpoint path is a directory: {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, zipfile.BadZipFile, EOFError, RuntimeError, ValueError, OSError,
            AttributeError, TypeError, KeyError, IndexError) as e:
        raise ModelError(f"{path} is not a readable lowlight-rt checkpoint ({type(e).__name__})") from e
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ModelError(f"{path} is not a lowlight-rt checkpoint (no '{FORMAT}' header)")
    if payload.get("format_version") != FORMAT_VERSION:
        raise ModelError(f"{path}: unsupported checkpoint format version {payload.get('format_version')!r}")
    for key, kind in (("arch", str), ("config", dict), ("state_dict", dict), ("metadata", dict)):
        if not isinstance(payload.get(key), kind):
            raise ModelError(f"{path}: checkpoint field {key!r} is missing or malformed")
    blob = payload.get("onnx_operator")
    if blob is not None and not (isinstance(blob, torch.Tensor) and blob.dtype == torch.uint8 and blob.dim() == 1):
        raise ModelError(f"{path}: checkpoint field 'onnx_operator' is malformed")
    return payload


def read_foreign_state_dict(path: str | os.PathLike, what: str) -> dict[str, torch.Tensor]:
    """Read a third-party weights file (e.g. an official release) as a plain state dict.

    Accepts a bare state dict or one under ``params`` / ``params_ema`` / ``state_dict`` (BasicSR,
    PyTorch conventions), strips a DataParallel ``module.`` prefix and flushes subnormal floats to
    zero (the official Zero-DCE file holds ~19k of them: CPU inference ran ~30x slower).
    ``what`` names the model in the one-line ``ModelError`` raised for anything else.
    """
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ModelError(f"{what} checkpoint not found: {path}") from None
    except Exception as e:  # noqa: BLE001 - any unreadable file is a user error here
        raise ModelError(f"{path} is not a readable {what} checkpoint ({type(e).__name__})") from e
    if isinstance(raw, dict):
        for key in ("params", "params_ema", "state_dict"):
            if isinstance(raw.get(key), dict):
                raw = raw[key]
                break
    if not isinstance(raw, dict) or not raw or not all(isinstance(v, torch.Tensor) for v in raw.values()):
        raise ModelError(f"{path} is not a {what} state dict")
    return {(k[len("module."):] if k.startswith("module.") else k): flush_denormals(v) for k, v in raw.items()}


def load_checkpoint(path: str | os.PathLike) -> tuple[EnhancementModel, dict[str, Any]]:
    """Build the model a checkpoint describes and load its weights. Returns ``(model.eval(), metadata)``."""
    payload = read_checkpoint(path)
    model = create_model(payload["arch"], **payload["config"])
    try:
        model.load_state_dict({k: flush_denormals(v) for k, v in payload["state_dict"].items()}, strict=True)
    except RuntimeError as e:
        first = str(e).strip().splitlines()[0]
        raise ModelError(f"{path}: weights do not match architecture {payload['arch']!r} ({first})") from e
    blob = payload.get("onnx_operator")
    model.onnx_operator = None if blob is None else blob.numpy().tobytes()
    return model.eval(), payload["metadata"]
