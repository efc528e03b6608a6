"""Enhancement networks: registry, checkpoints and the built-in families."""

from .base import EnhancementModel, resize, transfer_to_full_res
from .registry import create_model, get_model_class, list_models, model_config, register_model
from .checkpoint import load_checkpoint, read_checkpoint, save_checkpoint

__all__ = [
    "EnhancementModel", "resize", "transfer_to_full_res",
    "create_model", "get_model_class", "list_models", "model_config", "register_model",
    "load_checkpoint", "read_checkpoint", "save_checkpoint",
]
