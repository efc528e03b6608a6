"""The model catalog: which models exist, which one is the default, and a model spec
(``--model PATH|NAME``) resolved to a ready model. Nothing is downloaded.

A spec is ``None`` (the default model), a path to a checkpoint file, or a name: a checkpoint shipped
as ``assets/models/<name>.pt`` or a weight-free registry model such as ``classical``. A registry
architecture that needs weights is never built with random ones: it needs a checkpoint.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..assets import models_dir
from ..errors import ModelError
from .base import EnhancementModel
from .checkpoint import load_checkpoint
from .registry import create_model, get_model_class, list_models

CHECKPOINT_SUFFIXES = (".pt", ".pth")
#: the shipped real-time student; the default once ``assets/models/realtime.pt`` exists
SHIPPED_DEFAULT = "realtime"
#: weight-free fallback default (classical enhancer, no learning)
FALLBACK_DEFAULT = "classical"


def shipped_models() -> dict[str, Path]:
    """Checkpoints shipped in ``assets/models``: ``{name: path}``."""
    folder = models_dir()
    if not folder.is_dir():
        return {}
    return {p.stem: p for p in sorted(folder.iterdir()) if p.is_file() and p.suffix in CHECKPOINT_SUFFIXES}


def default_model_name() -> str:
    """``realtime`` when its trained weights ship in ``assets/models``, else ``classical``."""
    return SHIPPED_DEFAULT if SHIPPED_DEFAULT in shipped_models() else FALLBACK_DEFAULT


#: name of the default model, evaluated at import (``default_model_name()`` re-checks the disk)
DEFAULT_MODEL: str = default_model_name()


def _weight_free_models() -> list[str]:
    return [name for name in list_models() if not get_model_class(name).needs_weights]


def list_available_models() -> list[str]:
    """Names ``load_model`` accepts without a path: shipped checkpoints + weight-free models, default first."""
    names = sorted(set(shipped_models()) | set(_weight_free_models()))
    default = default_model_name()
    return [default] + [n for n in names if n != default] if default in names else names


def _looks_like_path(spec: str) -> bool:
    return spec.endswith(CHECKPOINT_SUFFIXES) or os.sep in spec or (os.altsep or os.sep) in spec


def load_model(spec: str | os.PathLike | None = None) -> tuple[EnhancementModel, dict[str, Any]]:
    """Resolve ``spec`` to ``(model in eval mode, info)``; ``ModelError`` with one line otherwise.

    ``info`` holds ``name``, ``arch``, ``source`` (``"checkpoint"`` or ``"builtin"``), ``path``
    (or ``None``), ``classical`` (True for a non-learned model), ``description`` and ``metadata``.
    """
    spec = default_model_name() if spec is None else os.fspath(spec)
    if not spec.strip():
        raise ModelError("empty model name")
    shipped = shipped_models()
    is_name = spec in shipped or spec in list_models()
    if _looks_like_path(spec) or (not is_name and Path(spec).expanduser().is_file()):
        path = Path(spec).expanduser()
        if not path.exists():
            raise ModelError(f"model checkpoint not found: {path}")
        return _from_checkpoint(path, name=path.stem)
    if spec in shipped:
        return _from_checkpoint(shipped[spec], name=spec)
    if spec in list_models():
        cls = get_model_class(spec)
        if cls.needs_weights:
            raise ModelError(f"model {spec!r} has no trained weights; pass a checkpoint path")
        model = create_model(spec).eval()
        info = {"name": spec, "arch": spec, "source": "builtin", "path": None, "classical": True,
                "description": (cls.__doc__ or spec).strip().splitlines()[0], "metadata": {}}
        return model, info
    raise ModelError(f"unknown model {spec!r}; available: {', '.join(list_available_models())} "
                     "or a path to a .pt checkpoint")


def _from_checkpoint(path: Path, name: str) -> tuple[EnhancementModel, dict[str, Any]]:
    model, metadata = load_checkpoint(path)
    desc = metadata.get("description") or f"{model.arch_name} checkpoint {path.name}"
    info = {"name": name, "arch": model.arch_name, "source": "checkpoint", "path": str(path),
            "classical": not type(model).needs_weights, "description": str(desc), "metadata": metadata}
    return model, info
