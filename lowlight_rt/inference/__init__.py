"""Inference: the Engine (settings, batching; engine.py), its CPU float32 and CUDA FP16 backends
(cpu.py, cuda.py) and the inference worker thread (worker.py) with its stats (stats.py)."""

from .cpu import apply_operator_numpy, apply_operator_yuv, default_threads
from .engine import Engine, PendingResult, resolve_device
from .stats import InferenceStats, StageTimer
from .worker import THREAD_NAME, InferenceWorker

__all__ = ["Engine", "PendingResult", "apply_operator_numpy", "apply_operator_yuv", "default_threads", "resolve_device",
           "InferenceStats", "StageTimer", "InferenceWorker", "THREAD_NAME"]
