"""Enhancement networks: registry, checkpoints, model specs and the built-in families."""

import importlib as _importlib

from .base import EnhancementModel, resize, transfer_to_full_res
from .affine import AffineOperatorModel, apply_affine_operator
from .registry import create_model, get_model_class, list_models, model_config, register_model
from .checkpoint import load_checkpoint, read_checkpoint, save_checkpoint

# Built-in families register themselves on import. A family module that is not present in this
# tree is skipped; an error INSIDE a present module is raised.
_BUILTIN_FAMILIES = (
    "classical",
    "realtime",
    "zero_dce",
    "unet",
    "gradient_guided",
    "compact_clarity",
)
for _name in _BUILTIN_FAMILIES:
    try:
        _importlib.import_module(f"{__name__}.{_name}")
    except ModuleNotFoundError as _e:
        if _e.name != f"{__name__}.{_name}":
            raise

from .catalog import DEFAULT_MODEL, default_model_name, list_available_models, load_model  # noqa: E402

__all__ = [
    "EnhancementModel", "resize", "transfer_to_full_res",
    "AffineOperatorModel", "apply_affine_operator",
    "create_model", "get_model_class", "list_models", "model_config", "register_model",
    "load_checkpoint", "read_checkpoint", "save_checkpoint",
    "DEFAULT_MODEL", "default_model_name", "list_available_models", "load_model",
]
