"""Teacher networks for distillation: ``create_teacher(name, **cfg)`` and ``load_teacher(spec)``.

Teachers are ordinary registered :class:`~lowlight_rt.models.EnhancementModel` s (so their
checkpoints are self-describing); the teacher presets differ from the student ones in width/depth:

=================  ===============================================  ================================
name               architecture                                     default teacher config
=================  ===============================================  ================================
``mirnet_v2``      MIRNet-v2 (:mod:`training.teachers.mirnet_v2`)    published enhancement config
``zero_dce``       DCE-Net (:mod:`lowlight_rt.models.zero_dce`)      7 x 32, 8 iterations
``gradient_guided``  gradient-guided FA network                     ``GG_TEACHER_CFG`` (6 x 96)
``unet``           attention-gated residual U-Net                   ``UNET_TEACHER_CFG``
``cpga_net_plus``  CPGA-Net+ (:mod:`training.teachers.cpga_net`)    published LOL-v1 size, 60,378 params
``cpga_net_plusplus``  CPGA-Net++ (IAAF masking, ConvNeXt blocks)    published LOL-v1 size, 62,304 params
``iat``            IAT (:mod:`training.teachers.iat`), LOL-v1       ``type="lol"``, 91,154 params
``iat_exposure``   IAT, exposure-correction weights (same network)  ``type="exp"``, 91,154 params
``lyt_net``        LYT-Net ONNX exports via onnxruntime             3 fixed sizes; resized, full-res detail
                   (:mod:`training.teachers.lyt_net`)
=================  ===============================================  ================================
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from lowlight_rt.errors import ModelError
from lowlight_rt.models import EnhancementModel, create_model, load_checkpoint, read_checkpoint
from lowlight_rt.models.gradient_guided import GG_TEACHER_CFG
from lowlight_rt.models.unet import UNET_TEACHER_CFG
from lowlight_rt.models.zero_dce import load_official_zero_dce

from .cpga_net import CPGANetPlus, CPGANetPlusPlus, is_cpga_state_dict, load_official_cpga_net
from .iat import IAT, is_iat_state_dict, load_official_iat
from .lyt_net import LYTNetONNX, load_lyt_net
from .mirnet_v2 import MIRNetV2, load_official_mirnet_v2

__all__ = ["TEACHER_CONFIGS", "MIRNetV2", "create_teacher", "list_teachers", "load_teacher",
           "official_weights_path", "load_official_mirnet_v2", "load_official_zero_dce",
           "CPGANetPlus", "CPGANetPlusPlus", "load_official_cpga_net",
           "IAT", "load_official_iat",
           "LYTNetONNX", "load_lyt_net"]

#: default (teacher-sized) configuration of every teacher architecture
TEACHER_CONFIGS: dict[str, dict[str, Any]] = {
    "mirnet_v2": {},
    "zero_dce": {},
    "gradient_guided": dict(GG_TEACHER_CFG),
    "unet": dict(UNET_TEACHER_CFG),
    "iat": {},
    "iat_exposure": {"type": "exp"},
    "cpga_net_plus": {},
    "cpga_net_plusplus": {},
    "lyt_net": {},
}

#: teacher names that are a preset of another registered architecture (teacher -> architecture)
_TEACHER_ARCH = {"iat_exposure": "iat"}

#: official weights known by name, relative to the shared folder next to the checkout
_OFFICIAL_WEIGHTS = {"zero_dce": Path("weights/zero-dce/Epoch99.pth")}
_OFFICIAL_WEIGHTS["iat"] = Path("weights/iat/iat_lol_v1.pth")
_OFFICIAL_WEIGHTS["iat_exposure"] = Path("weights/iat/iat_exposure.pth")
_OFFICIAL_WEIGHTS["cpga_net_plus"] = Path("weights/cpga-net-plus/cpga_net_plus_lolv1.pkl")
_OFFICIAL_WEIGHTS["cpga_net_plusplus"] = Path("weights/cpga-net-plus/cpga_net_plusplus_lolv1.pkl")
_OFFICIAL_WEIGHTS["lyt_net"] = Path("weights/lyt-net-onnx")  # a folder: one ONNX export per input size


def list_teachers() -> list[str]:
    """Names accepted by :func:`create_teacher`."""
    return sorted(TEACHER_CONFIGS)


def create_teacher(name: str, **cfg: Any) -> EnhancementModel:
    """Build teacher ``name`` with its teacher config, ``cfg`` overriding it. Weights are NOT loaded."""
    if name not in TEACHER_CONFIGS:
        raise ModelError(f"unknown teacher {name!r}; known: {', '.join(list_teachers())}")
    return create_model(_TEACHER_ARCH.get(name, name), **{**TEACHER_CONFIGS[name], **cfg})


def official_weights_path(name: str) -> Path | None:
    """Where the official weights of teacher ``name`` live (``$LOWLIGHT_SHARED`` or ``../shared``
    next to the checkout; a folder for ``lyt_net``), or ``None`` if this teacher has none or they are absent."""
    rel = _OFFICIAL_WEIGHTS.get(name)
    if rel is None:
        return None
    roots = [Path(os.environ["LOWLIGHT_SHARED"])] if os.environ.get("LOWLIGHT_SHARED") else []
    roots.append(Path(__file__).resolve().parents[2] / ".." / "shared")
    for root in roots:
        if (root / rel).is_file() or (root / rel).is_dir():
            return (root / rel).resolve()
    return None


def _load_path(path: Path, cfg: dict[str, Any]) -> EnhancementModel:
    """A lowlight-rt checkpoint, an official Zero-DCE state dict, an official MIRNet-v2 file or a
    published CPGA-Net+ / CPGA-Net++ or IAT file (told apart by their keys), or LYT-Net ONNX export(s)
    (a ``.onnx`` file or a folder of them)."""
    if path.is_dir() or path.suffix.lower() == ".onnx":
        if set(cfg) - {"size", "detail_gain", "threads"}:
            raise ModelError(f"{path} is LYT-Net ONNX; only size / detail_gain / threads may be passed with it")
        return load_lyt_net(path, **cfg)
    try:
        read_checkpoint(path)
        is_ours = True
    except ModelError:
        is_ours = False
    if is_ours:
        if cfg:
            raise ModelError(f"{path} is a self-describing checkpoint; do not pass a config with it")
        return load_checkpoint(path)[0]
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unreadable file is a user error here
        raise ModelError(f"{path} is not a readable checkpoint ({type(e).__name__})") from e
    keys = raw.get("params", raw.get("params_ema", raw)) if isinstance(raw, dict) else {}
    names = {k.removeprefix("module.") for k in keys} if isinstance(keys, dict) else set()
    if "e_conv1.weight" in names:
        return load_official_zero_dce(path)
    if "conv_in.weight" in names and any(k.startswith("body.0.body.0.dau_top") for k in names):
        return load_official_mirnet_v2(path, **cfg)
    if is_iat_state_dict(names):
        if set(cfg) - {"type"}:
            raise ModelError(f"{path} is an IAT file; only 'type' (lol / exp) may be passed with it")
        return load_official_iat(path, type=cfg.get("type"))
    wrapped = raw.get("state_dict") if isinstance(raw, dict) else None  # CPGA files: {"epoch", "state_dict", ...}
    if is_cpga_state_dict(names) or (isinstance(wrapped, dict) and is_cpga_state_dict(wrapped)):
        if cfg:
            raise ModelError(f"{path} is a CPGA-Net+ / ++ file; its size is read from the file, do not pass a config")
        return load_official_cpga_net(path)
    raise ModelError(f"{path} is neither a lowlight-rt checkpoint nor an official Zero-DCE / MIRNet-v2 / CPGA-Net+ / IAT file")


def load_teacher(name_or_path: str | os.PathLike, *, frozen: bool = True, **cfg: Any) -> EnhancementModel:
    """Load a teacher with weights.

    ``name_or_path`` is a checkpoint path (lowlight-rt format, official Zero-DCE ``Epoch99.pth``, or an
    official MIRNet-v2 file; ``cfg`` overrides MIRNet-v2's published config) or a teacher name whose
    official weights are in the shared folder (``zero_dce``, ``cpga_net_plus``, ``cpga_net_plusplus``,
    ``iat``, ``iat_exposure``, ``lyt_net``). A ``.onnx`` file or a folder of them is LYT-Net, run
    through onnxruntime (``cfg``: ``size``, ``detail_gain``, ``threads``).
    Returns the model in eval mode, with ``requires_grad`` off when ``frozen``. ``ModelError`` with one
    line otherwise.
    """
    spec = str(name_or_path)
    path = Path(spec).expanduser()
    if path.is_file():
        model = _load_path(path, cfg)
    elif path.is_dir() and spec not in TEACHER_CONFIGS:  # a folder of LYT-Net ONNX exports
        model = _load_path(path, cfg)
    elif spec in TEACHER_CONFIGS:
        weights = official_weights_path(spec)
        if weights is None:
            raise ModelError(f"no official weights for teacher {spec!r} on disk; train it "
                             f"(python -m training.teacher) and pass the checkpoint path")
        model = _load_path(weights, cfg)
    else:
        raise ModelError(f"teacher {spec!r} is neither a file nor a teacher with shared weights "
                         f"({', '.join(sorted(_OFFICIAL_WEIGHTS))})")
    model.eval()
    if frozen:
        model.requires_grad_(False)
    return model
