"""Model registry: ``create_model(name, **cfg)`` in the manner of timm."""

from __future__ import annotations

import inspect
from typing import Any, Callable, TypeVar

from ..errors import ModelError
from .base import EnhancementModel

_REGISTRY: dict[str, type[EnhancementModel]] = {}
T = TypeVar("T", bound=type[EnhancementModel])


def register_model(name: str) -> Callable[[T], T]:
    """Class decorator: make ``cls`` buildable as ``create_model(name, **cfg)``."""

    def wrap(cls: T) -> T:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"model name {name!r} registered twice")
        cls.arch_name = name
        _REGISTRY[name] = cls
        return cls

    return wrap


def list_models() -> list[str]:
    """Names of all registered architectures, sorted."""
    _import_builtin_models()
    return sorted(_REGISTRY)


def get_model_class(name: str) -> type[EnhancementModel]:
    _import_builtin_models()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ModelError(f"unknown model {name!r}; known: {', '.join(sorted(_REGISTRY))}") from None


def model_config(name: str) -> dict[str, Any]:
    """The default keyword arguments of architecture ``name`` (its self-description)."""
    cls = get_model_class(name)
    sig = inspect.signature(cls.__init__)
    return {k: p.default for k, p in sig.parameters.items()
            if k != "self" and p.default is not inspect.Parameter.empty}


def create_model(name: str, **cfg: Any) -> EnhancementModel:
    """Build architecture ``name`` with ``cfg`` overriding its defaults. Weights are NOT loaded."""
    cls = get_model_class(name)
    unknown = set(cfg) - set(model_config(name))
    if unknown:
        raise ModelError(f"model {name!r} has no option(s) {', '.join(sorted(unknown))}")
    return cls(**cfg)


def _import_builtin_models() -> None:
    # Importing the package registers every built-in family (see models/__init__.py).
    import importlib

    importlib.import_module("lowlight_rt.models")
