"""One run's settings, each with its single default: :class:`RunConfig`.

The CLI, the viewer and ``lowlight-rt bench`` all fill a ``RunConfig`` and hand it to
:func:`lowlight_rt.run.open_run`, which builds the engine, the source, the sinks and the pipeline.
A default changed here changes it everywhere (argparse defaults and help texts read it too).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable, Union

# the x264 defaults are the codec module's (the measurements behind them: docs/PERFORMANCE.md)
from .codecs import X264_CRF, X264_PRESET, X264_TUNE

__all__ = ["RunConfig", "SourceSpec", "X264_CRF", "X264_PRESET", "X264_TUNE", "X264_PRESETS", "STREAM_TIMEOUT_S",
           "STREAM_RETRIES", "DEFAULT_BATCH", "MIN_PROC_SIZE", "CPU_RUNTIMES", "DEFAULT_CPU_RUNTIME", "DEFAULT_DENOISE"]

#: x264's presets, fastest first
X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower",
                "veryslow", "placebo")
#: network inputs: open / read timeout in seconds
STREAM_TIMEOUT_S = 10.0
#: network inputs: reconnect attempts of a live stream after it drops
STREAM_RETRIES = 5
#: frames per inference batch when none is given, by device type (live sources always use 1)
DEFAULT_BATCH = {"cpu": 1, "cuda": 4}
#: what computes a model's operator on the CPU: onnxruntime (the checkpoint's ONNX export of the student's
#: operator grid, checked against the model when it loads; torch when it has none) or always torch.
#: onnxruntime takes three quarters of eager torch's CPU time for the shipped student (16.7 -> 12.7 ms
#: per 720p frame) and a real night clip's file job 52 instead of 61 ms (docs/PERFORMANCE.md, section 9)
CPU_RUNTIMES = ("onnxruntime", "torch")
DEFAULT_CPU_RUNTIME = "onnxruntime"
#: temporal denoising of the enhanced video (lowlight_rt/inference/temporal_denoise.py): it averages static,
#: noisy areas over frames and turns itself off on clean video (docs/PERFORMANCE.md, section 11)
DEFAULT_DENOISE = True
#: smallest processing short side that still leaves the network something to see
MIN_PROC_SIZE = 64

#: what a run reads: a path, a URL, a camera index, ``"fake:WxH@FPS"``, or a callable
#: ``opener(proc_shape) -> Source`` (tests, benchmarks) that builds the source with the engine's shape rule
SourceSpec = Union[str, int, Callable[..., Any]]


@dataclass(frozen=True)
class RunConfig:
    """Every setting of one run (see ``lowlight-rt --help``), immutable; :meth:`replace` makes a changed copy.

    Attributes:
        source: what to read (``None``: nothing yet, e.g. an empty viewer window).
        out: output ``.mp4``, image file or folder (``None``: no output; in the viewer: start
            recording to it).
        loop: start a file (or a URL serving one) over at its end.
        model: checkpoint path or model name (``None``: the default model).
        device: ``"auto"``, ``"cpu"`` or ``"cuda[:N]"``; ``fp16``: half precision on CUDA.
        proc_size: short side the network runs at: ``None`` = the model's default, ``0`` = full
            resolution. Only the engine interprets it; sources ask the engine for the shape.
        strength: blend in [0, 1] between input (0) and full enhancement (1).
        threads: CPU threads for inference (``None``: all cores but one).
        batch: frames per inference batch for files (``None``: :data:`DEFAULT_BATCH` of the device).
        compile: ``torch.compile`` the model (CUDA; falls back to eager with a warning).
        cpu_runtime: what computes the model's operator on the CPU: ``"onnxruntime"`` (when the
            checkpoint carries a matching ONNX export of it, as the shipped student does; else torch)
            or ``"torch"``.
        denoise: temporal denoising of the enhanced video (static noisy areas averaged over frames;
            off by itself on clean video; never on still images).
        side_by_side: write ``input | enhanced``.
        crf, preset, tune: x264 settings of every MP4 written (files, recordings).
        yuv: file jobs take the YUV path (decoded 4:2:0 planes enhanced without a full-size RGB
            picture) where the model and the output allow (not side by side).
        gpu_codecs: NVDEC / NVENC for file jobs: ``None`` = when the engine runs on CUDA and they
            open here (:func:`lowlight_rt.codecs.choose_codecs`), ``False`` = never.
        max_frames: stop after this many frames.
        camera_size, camera_fps, pixel_format: camera capture options.
        timeout, retries: network inputs: open/read timeout (s) and reconnect attempts.
        quiet: no progress bar or summary.
    """

    source: SourceSpec | None = None
    out: str | None = None
    loop: bool = False
    model: str | None = None
    device: str = "auto"
    fp16: bool = True
    proc_size: int | None = None
    strength: float = 1.0
    threads: int | None = None
    batch: int | None = None
    compile: bool = False
    cpu_runtime: str = DEFAULT_CPU_RUNTIME
    denoise: bool = DEFAULT_DENOISE
    side_by_side: bool = False
    crf: int = X264_CRF
    preset: str = X264_PRESET
    tune: str | None = X264_TUNE
    yuv: bool = True
    gpu_codecs: bool | None = None
    max_frames: int | None = None
    camera_size: tuple[int, int] | None = None
    camera_fps: float | None = None
    pixel_format: str | None = None
    timeout: float = STREAM_TIMEOUT_S
    retries: int = STREAM_RETRIES
    quiet: bool = False

    def __post_init__(self) -> None:
        if self.proc_size is not None and int(self.proc_size) < 0:
            raise ValueError("proc_size must be >= 0 (0 = full resolution) or None (the model's default)")
        strength = float(self.strength)
        if strength != strength:  # NaN
            raise ValueError("strength must be a number in [0, 1]")
        object.__setattr__(self, "strength", min(1.0, max(0.0, strength)))

    def replace(self, **changes: Any) -> RunConfig:
        """A copy with ``changes`` (unknown names raise ``TypeError``)."""
        return dataclasses.replace(self, **changes)

    @classmethod
    def field_names(cls) -> frozenset[str]:
        return frozenset(f.name for f in dataclasses.fields(cls))

    def camera_options(self) -> dict[str, Any] | None:
        """:class:`~lowlight_rt.sources.CameraSource` keywords of the camera options (``None``: none)."""
        opts: dict[str, Any] = {}
        if self.camera_size:
            opts["width"], opts["height"] = self.camera_size
        if self.camera_fps:
            opts["fps"] = self.camera_fps
        if self.pixel_format:
            opts["pixel_format"] = self.pixel_format
        return opts or None

    def stream_options(self) -> dict[str, Any]:
        """:class:`~lowlight_rt.sources.StreamSource` keywords of ``timeout`` / ``retries``."""
        return {"open_timeout": self.timeout, "read_timeout": self.timeout, "max_retries": max(0, self.retries)}

    def batch_size(self, device_type: str, *, realtime: bool = False) -> int:
        """Frames per inference batch on ``device_type`` (``"cpu"`` / ``"cuda"``); played in real time
        (the viewer) 1 unless ``batch`` was given: a batch would add its frames to the latency."""
        if self.batch:
            return self.batch
        return 1 if realtime else DEFAULT_BATCH.get(device_type, 1)
