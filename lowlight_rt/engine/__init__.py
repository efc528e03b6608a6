"""Inference engine: CPU float32 / CUDA FP16 paths and the inference worker thread."""

from .core import Engine, PendingResult, apply_operator_numpy, resolve_device
from .stats import InferenceStats, StageTimer
from .worker import THREAD_NAME, InferenceWorker

__all__ = ["Engine", "PendingResult", "apply_operator_numpy", "resolve_device",
           "InferenceStats", "StageTimer", "InferenceWorker", "THREAD_NAME"]
