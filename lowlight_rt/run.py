"""Building a run from a :class:`~lowlight_rt.config.RunConfig`: engine, source, sinks, pipeline.

The one place that turns settings into objects; the CLI's jobs, the viewer and the bench all go
through it::

    config = RunConfig(source="night.mp4", out="clean.mp4")
    check_output(config)                   # output errors before the model loads
    engine, model_name = load_engine(config)
    run = open_run(config, engine)         # source (the engine's shape rule) + sink + pipeline
    stats = run.pipeline.run()

Who owns what: the engine owns the processing shape (sources are handed ``engine.proc_shape`` and
ask it per frame); the config owns every default; the pipeline owns the threads.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from .codecs import CodecChoice, choose_codecs
from .config import RunConfig
from .inference import Engine
from .errors import OutputError, UsageError
from .pipeline import Pipeline
from .sinks import ImageFileSink, ImageFolderSink, VideoFileSink, check_output_path
from .sinks.base import Sink, same_path
from .sources import IMAGE_EXTENSIONS, is_image_path, open_source, source_kind
from .sources.base import Source

__all__ = ["Run", "open_run", "load_engine", "open_input", "open_output", "check_output", "check_output_kind",
           "codec_choice", "use_yuv_path", "model_label", "is_live_spec", "VIDEO_EXTENSIONS", "H264_CONTAINERS"]

VIDEO_EXTENSIONS = frozenset({".mp4", ".m4v", ".mov", ".mkv", ".avi", ".webm", ".ts", ".flv"})
"""Output names that mean a video file (refused for image inputs instead of becoming a folder)."""

H264_CONTAINERS = frozenset(VIDEO_EXTENSIONS - {".webm"})
"""Video outputs the H.264 sink can write (WebM holds only VP8/VP9/AV1)."""


# ----------------------------------------------------------------------------------- engine
def load_engine(config: RunConfig) -> tuple[Engine, str]:
    """Load ``config.model`` and build the engine with the config's settings; returns ``(engine, model name)``."""
    from .models.catalog import load_model

    model, info = load_model(config.model)
    engine = Engine(model, device=config.device, fp16=config.fp16, proc_size=config.proc_size,
                    strength=config.strength, threads=config.threads, compile=config.compile,
                    cpu_runtime=config.cpu_runtime, denoise=config.denoise)
    return engine, model_label(config.model, info)


def model_label(spec: str | None, info: Any) -> str:
    """The name a run shows for its model: the checkpoint's name, else the file's stem or the name given."""
    if isinstance(info, dict):
        for key in ("name", "label", "arch"):
            if info.get(key):
                return str(info[key])
    spec = "" if spec is None else str(spec)
    return Path(spec).stem if ("/" in spec or spec.endswith(".pt")) else spec


# ----------------------------------------------------------------------------------- checks
def is_live_spec(spec: Any) -> bool:
    """Cameras, streams, ``fake:`` sources and custom openers are live (no end; reconnected)."""
    if callable(spec) or isinstance(spec, int):
        return True
    try:
        return source_kind(spec) in ("camera", "stream", "fake")
    except Exception:  # noqa: BLE001 - an unsupported spec fails later, when opened
        return False


def check_output_kind(spec: str | int, out: str | os.PathLike, *, kind: str | None = None,
                      image_count: int | None = None) -> None:
    """Raise ``UsageError`` (exit 2) when ``out`` cannot hold what ``spec`` gives.

    Images give images (an image file, or a folder), anything else gives video (a video file):
    an image into ``.mp4``, a video into ``.png``, into a folder or into a name without a video
    extension are usage errors. ``kind`` (``source_kind``'s) and ``image_count`` (files of an image
    input, when known) refine the check; run before anything is loaded or written.
    """
    raw = os.fspath(out)
    path = Path(raw)
    suffix = path.suffix.lower()
    as_folder = raw.endswith(("/", os.sep)) or path.is_dir()
    kind = kind or source_kind(spec)
    if kind == "images":
        if suffix in VIDEO_EXTENSIONS and not as_folder:
            raise UsageError(f"{raw}: an image input gives images, not a video: write to an image file "
                             f"(e.g. out.png) or a folder")
        if suffix in IMAGE_EXTENSIONS and not as_folder and (image_count or 0) > 1:
            raise UsageError(f"{raw}: {image_count} input images need an output folder, not one image file")
        return
    if as_folder:
        raise UsageError(f"{raw}: a video input needs a video file output (e.g. out.mp4), not a folder")
    if suffix in IMAGE_EXTENSIONS:
        raise UsageError(f"{raw}: a video input needs a video file output (.mp4, .mkv, .mov), not an image")
    if suffix == ".webm":
        raise UsageError(f"{raw}: WebM cannot hold the H.264 video lowlight-rt writes: use .mp4, .mkv or .mov")
    if suffix not in H264_CONTAINERS:
        what = f"'{suffix}'" if suffix else "a name without extension"
        raise UsageError(f"{raw}: cannot tell a video format from {what}: use .mp4, .mkv or .mov")


def check_output(config: RunConfig) -> None:
    """Refuse ``config.out`` before anything is loaded: the input itself (``OutputError``, exit 4), or
    a format that cannot hold the input (``UsageError``, exit 2)."""
    spec, out = config.source, config.out
    if out is None or spec is None or callable(spec):
        return
    if isinstance(spec, str) and "://" not in spec and same_path(spec, out):
        what = "folder" if Path(spec).is_dir() else "file"
        raise OutputError(f"output {out} is the input {what}; refusing to overwrite it")
    kind = source_kind(spec)
    check_output_kind(spec, out, kind=kind, image_count=_image_count(spec) if kind == "images" else None)


def _image_count(spec: str | int) -> int | None:
    """How many image files an image input holds (1 for a file), ``None`` if it cannot be listed."""
    path = Path(str(spec))
    if not path.is_dir():
        return 1
    try:
        return sum(1 for p in path.iterdir() if p.is_file() and is_image_path(p))
    except OSError:
        return None


# ----------------------------------------------------------------------------------- codecs
def codec_choice(config: RunConfig, engine: Engine, source_codec: str | None = "h264") -> CodecChoice:
    """The decoder / encoder of a file job (GPU codecs only considered when the engine is on CUDA)."""
    use_gpu = config.gpu_codecs if config.gpu_codecs is not None else engine.device_type == "cuda"
    return choose_codecs(use_gpu, crf=config.crf, preset=config.preset, tune=config.tune,
                         source_codec=source_codec)


def use_yuv_path(sink: Sink, config: RunConfig, engine: Engine | None = None) -> bool:
    """Whether a job takes the YUV path: asked for, the output is the H.264 sink writing the
    enhanced picture alone (side by side needs the input in RGB anyway), and the engine can work on
    4:2:0 planes (:meth:`Engine.accepts_yuv`: not on CUDA, not for models that need RGB)."""
    return (bool(config.yuv) and isinstance(sink, VideoFileSink) and not config.side_by_side
            and (engine is None or engine.accepts_yuv()))


# ----------------------------------------------------------------------------------- source, sink
def open_input(config: RunConfig, engine: Engine, *, realtime: bool = False, decoder: str | None = None) -> Source:
    """Open ``config.source`` (not started), handed the engine's shape rule: frames are downsampled in
    the capture thread to exactly what the engine runs at, whatever model or size it switches to.
    ``decoder``: files only, an FFmpeg decoder to try first (see :func:`codec_choice`)."""
    spec = config.source
    if spec is None:
        raise UsageError("no input given")
    if callable(spec):  # a custom opener (tests, benchmarks)
        return spec(proc_shape=engine.proc_shape)
    return open_source(spec, proc_shape=engine.proc_shape, realtime=realtime, loop=config.loop,
                       camera_options=config.camera_options(), stream_options=config.stream_options(),
                       decoder=decoder)


def open_output(config: RunConfig, source: Source, out: str | os.PathLike | None = None,
                codecs: CodecChoice | None = None) -> Sink:
    """The sink for ``out`` (default ``config.out``): an image folder / image file for image inputs,
    else an H.264 MP4 with the config's x264 settings (or ``codecs``' encoder), in the input's YUV
    matrix (BT.601 or BT.709; BT.709 when the input has none the YUV path reads).

    A live input (camera, live stream) is recorded crash-safe (fragmented MP4: SIGKILL, a power
    cut or a full disk lose at most the last ~2 s); a file gives a normal MP4, index first.
    Raises ``UsageError`` when ``out`` cannot hold the input (:func:`check_output_kind`).
    """
    out = config.out if out is None else out
    if out is None:
        raise UsageError("no output given")
    info = source.info
    images = info.kind == "images"
    check_output_kind(info.path or "", out, kind="images" if images else "video",
                      image_count=info.frame_count if images else None)
    raw, path = os.fspath(out), Path(out)
    if images:
        if path.suffix.lower() in IMAGE_EXTENSIONS and not path.is_dir() and not raw.endswith(("/", os.sep)):
            return ImageFileSink(path, input_path=info.path)
        return ImageFolderSink(path, input_dir=info.path)
    check_output_path(path, info.path)
    audio_from = info.path if (info.audio_stream_indices and info.path and not info.is_live) else None
    return VideoFileSink(path, info.width, info.height, time_base=info.time_base, fps=info.fps,
                         audio_from=audio_from, crf=config.crf, preset=config.preset, tune=config.tune,
                         side_by_side=config.side_by_side, metadata=info.metadata,
                         rotation=info.rotation, fragmented=info.is_live, matrix=info.yuv_matrix,
                         **({"codec": codecs.encoder, "codec_options": codecs.options} if codecs else {}))


# ----------------------------------------------------------------------------------- the run
@dataclass
class Run:
    """What :func:`open_run` built: run it with ``pipeline.run()`` (blocking) or ``pipeline.start()``."""

    config: RunConfig
    engine: Engine
    source: Source
    pipeline: Pipeline
    sinks: list[Sink] = field(default_factory=list)

    def stop(self) -> None:
        """Stop the pipeline (finalises the sinks) and the source."""
        self.pipeline.stop()


def open_run(config: RunConfig, engine: Engine, *, realtime: bool = False, write_output: bool = True,
             codecs: CodecChoice | None = None, extra_sinks: Sequence[Sink] = ()) -> Run:
    """Open the source, the output (``config.out``, when ``write_output``) and the pipeline.

    ``codecs``: the decoder / encoder (default: :func:`codec_choice` when the engine runs on CUDA or
    ``config.gpu_codecs``, else FFmpeg's decoder and libx264). ``extra_sinks`` get the pairs too
    (after the output). The YUV path is taken when :func:`use_yuv_path` allows it for the output.
    Nothing runs yet. On any error (or Ctrl-C / SIGTERM) in between, what was opened is closed again
    (an output is closed as partial) and the error propagates.
    """
    writes = write_output and config.out is not None
    if codecs is None and writes and not realtime and (engine.device_type == "cuda" or config.gpu_codecs):
        codecs = codec_choice(config, engine)
    source = open_input(config, engine, realtime=realtime, decoder=codecs.decoder if codecs else None)
    sinks: list[Sink] = []
    try:
        if writes:
            sinks.append(open_output(config, source, codecs=codecs))
        yuv = bool(sinks) and use_yuv_path(sinks[0], config, engine)
        pipeline = Pipeline(source, engine, [*sinks, *extra_sinks],
                            batch_size=config.batch_size(engine.device_type, realtime=realtime), yuv=yuv)
    except BaseException:
        source.stop()
        for sink in sinks:
            sink.close(partial=True)
        raise
    return Run(config=config, engine=engine, source=source, pipeline=pipeline, sinks=sinks)
