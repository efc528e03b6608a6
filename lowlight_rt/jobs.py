"""A headless job: open the input, open the output, run the pipeline, report.

Used by the CLI for files, image folders, and camera / stream recording with ``--no-gui``.
"""

from __future__ import annotations

import os
import sys
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .codecs import X264_CRF, X264_PRESET, X264_TUNE, CodecChoice, choose_codecs
from .engine import Engine
from .errors import (EXIT_INTERRUPTED, EXIT_OK, EXIT_TERMINATED, LowlightError, PartialOutputError,
                     Terminated, UsageError)
from .pipeline import Pipeline, PipelineStats
from .sinks import ImageFileSink, ImageFolderSink, VideoFileSink, check_output_path
from .sources import IMAGE_EXTENSIONS, open_source, source_kind
from .sources.base import Source

VIDEO_EXTENSIONS = frozenset({".mp4", ".m4v", ".mov", ".mkv", ".avi", ".webm", ".ts", ".flv"})
"""Output names that mean a video file (refused for image inputs instead of becoming a folder)."""

H264_CONTAINERS = frozenset(VIDEO_EXTENSIONS - {".webm"})
"""Video outputs the H.264 sink can write (WebM holds only VP8/VP9/AV1)."""


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

@dataclass
class JobOptions:
    """Output and run options of a headless job (see ``lowlight-rt --help``)."""

    side_by_side: bool = False
    crf: int = X264_CRF
    preset: str = X264_PRESET
    tune: str | None = X264_TUNE
    batch_size: int | None = None
    max_frames: int | None = None
    quiet: bool = False
    loop: bool = False
    camera_options: dict[str, Any] | None = None
    stream_options: dict[str, Any] | None = None
    #: the YUV path (decoded planes enhanced without full-size RGB) where the model and output allow
    yuv: bool = True
    #: NVDEC / NVENC: ``None`` = when the engine runs on CUDA and they open (see ``choose_codecs``)
    gpu_codecs: bool | None = None


def codec_choice(engine: Engine, options: JobOptions, source_codec: str | None = "h264") -> CodecChoice:
    """The decoder / encoder of a file job (GPU codecs only considered when the engine is on CUDA)."""
    use_gpu = options.gpu_codecs if options.gpu_codecs is not None else engine.device_type == "cuda"
    return choose_codecs(use_gpu, crf=options.crf, preset=options.preset, tune=options.tune,
                         source_codec=source_codec)


def open_input(spec: str | int, engine: Engine, *, realtime: bool = False, loop: bool = False,
               camera_options: dict[str, Any] | None = None,
               stream_options: dict[str, Any] | None = None, decoder: str | None = None) -> Source:
    """Open ``spec`` with the processing size the engine wants (frames downsampled in the capture thread)."""
    return open_source(spec, proc_size=engine.proc_size, size_multiple=engine.size_multiple,
                       realtime=realtime, loop=loop, camera_options=camera_options,
                       stream_options=stream_options, decoder=decoder)


def open_output(out: str | os.PathLike, source: Source, options: JobOptions, codecs: CodecChoice | None = None):
    """The sink for ``out``: an image folder / image file for image inputs, else an H.264 MP4.

    A live input (camera, live stream) is recorded crash-safe (fragmented MP4: SIGKILL, a power
    cut or a full disk lose at most the last ~2 s); a file gives a normal MP4, index first.

    Raises ``UsageError`` when ``out`` cannot hold the input (:func:`check_output_kind`).
    """
    info = source.info
    images = info.kind == "images"
    check_output_kind(info.path or "", out, kind="images" if images else "video",
                      image_count=info.frame_count if images else None)
    raw, out = os.fspath(out), Path(out)
    if images:
        if out.suffix.lower() in IMAGE_EXTENSIONS and not out.is_dir() and not raw.endswith(("/", os.sep)):
            return ImageFileSink(out, input_path=info.path)
        return ImageFolderSink(out, input_dir=info.path)
    check_output_path(out, info.path)
    audio_from = info.path if (info.audio_stream_indices and info.path and not info.is_live) else None
    return VideoFileSink(out, info.width, info.height, time_base=info.time_base, fps=info.fps,
                         audio_from=audio_from, crf=options.crf, preset=options.preset, tune=options.tune,
                         side_by_side=options.side_by_side, metadata=info.metadata,
                         rotation=info.rotation, fragmented=info.is_live,
                         **({"codec": codecs.encoder, "codec_options": codecs.options} if codecs else {}))


class OverloadMonitor:
    """Says once when the writer cannot keep up with a live source (like OBS's "encoding overloaded").

    A live source never waits: when the stages after it are slower than its frame rate, the
    newest frame replaces the unread one and the rest are dropped (memory stays bounded). Fed the
    pipeline's stats every progress tick, this compares the writer's time per frame over the last
    ``window_s`` seconds with the source's frame interval; when writing alone takes longer and
    frames were dropped in that window, :meth:`update` returns the one-line warning, once.
    """

    def __init__(self, fps: float | None, window_s: float = 2.0) -> None:
        self.interval_ms = 1000.0 / fps if fps and fps > 0 else None
        self.window_s = window_s
        self.message: str | None = None
        self._ticks: deque[tuple[float, int, float, int]] = deque()

    def update(self, stats: PipelineStats) -> str | None:
        """The warning the first time the writer is overloaded, else ``None``."""
        if self.message is not None or self.interval_ms is None:
            return None
        tick = (stats.elapsed_s, stats.frames_out, stats.write_ms_per_frame * stats.frames_out, stats.dropped)
        self._ticks.append(tick)
        while len(self._ticks) > 2 and tick[0] - self._ticks[1][0] >= self.window_s:
            self._ticks.popleft()
        t0, n0, w0, d0 = self._ticks[0]
        frames = tick[1] - n0
        if tick[0] - t0 < self.window_s or frames < 5:
            return None
        write_ms = (tick[2] - w0) / frames
        dropped = tick[3] - d0
        if write_ms > 1.05 * self.interval_ms and dropped > 0:
            self.message = (f"encoding overloaded: writing a frame takes {write_ms:.0f} ms, the source delivers "
                            f"one every {self.interval_ms:.0f} ms, so frames are dropped ({stats.dropped} so far); "
                            f"try --preset ultrafast, a higher --crf, or a smaller capture size")
            return self.message
        return None


def use_yuv_path(sink: Any, options: JobOptions) -> bool:
    """Whether a job takes the YUV path: asked for, and the output is the H.264 sink writing the
    enhanced picture alone (side by side needs the input in RGB anyway)."""
    return bool(options.yuv) and isinstance(sink, VideoFileSink) and not options.side_by_side


def run_job(spec: str | int, out: str | os.PathLike, engine: Engine, options: JobOptions,
            model_name: str = "") -> int:
    """Enhance ``spec`` into ``out``; prints a progress bar and a summary unless ``options.quiet``.

    Returns the exit code: 0 on success, 130 when interrupted with Ctrl-C and 143 on SIGTERM
    (:class:`~lowlight_rt.errors.Terminated`); the output is finalised in both cases.
    Raises ``PartialOutputError`` when an error stopped processing after the output was started.
    """
    out_path = Path(out)
    existed = out_path.exists()
    codecs = codec_choice(engine, options) if engine.device_type == "cuda" or options.gpu_codecs else None
    source = open_input(spec, engine, loop=options.loop, camera_options=options.camera_options,
                        stream_options=options.stream_options, decoder=codecs.decoder if codecs else None)
    try:
        sink = open_output(out, source, options, codecs)
    except BaseException:
        source.stop()
        raise
    try:
        batch = options.batch_size or (4 if engine.device_type == "cuda" else 1)
        pipeline = Pipeline(source, engine, [sink], batch_size=batch, yuv=use_yuv_path(sink, options))
        bar = None if options.quiet else _progress_bar(source, out_path)
        monitor = OverloadMonitor(source.info.fps) if source.info.is_live else None
        progress = _progress_callback(bar, monitor)
    except BaseException:  # e.g. SIGTERM right now: close the output (nothing written: remove it)
        source.stop()
        try:
            sink.close(partial=True)
        finally:
            if not existed:
                _remove_empty_output(out_path)
        raise
    try:
        stats = pipeline.run(progress=progress, max_frames=options.max_frames)
    except KeyboardInterrupt as e:  # Ctrl-C or SIGTERM: the pipeline has finalised the output
        stats = pipeline.stats
        terminated = isinstance(e, Terminated)
        _finish(bar, stats, options, engine, model_name, out_path, "terminated" if terminated else "interrupted",
                source, monitor)
        what = "recording" if source.info.is_live else "partial output"
        if terminated:
            print(f"lowlight-rt: terminated (SIGTERM): {what} saved to {out_path} "
                  f"({stats.frames_out} frames)", file=sys.stderr)
            return EXIT_TERMINATED
        if source.info.is_live:
            return EXIT_OK  # Ctrl-C is how a live recording ends; the file is complete
        print(f"lowlight-rt: interrupted: {what} saved to {out_path} "
              f"({stats.frames_out} frames)", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as e:
        stats = pipeline.stats
        _finish(bar, stats, options, engine, model_name, out_path, "failed", source, monitor)
        if stats.frames_out > 0:
            reason = str(e) if isinstance(e, LowlightError) else f"{type(e).__name__}: {e}"
            kept = getattr(sink, "frames_kept", None)
            frames = f"{stats.frames_out} frames" if kept is None else f"{kept} of {stats.frames_out} frames"
            raise PartialOutputError(f"{' '.join(reason.split())} -- partial output saved to {out_path} "
                                     f"({frames})") from e
        if not existed:
            _remove_empty_output(out_path)
        raise
    _finish(bar, stats, options, engine, model_name, out_path, "done", source, monitor)
    return EXIT_OK


def _progress_callback(bar: _Progress | None, monitor: OverloadMonitor | None):
    """The pipeline's progress callback: the bar, and the overload warning (printed once, above the bar)."""
    if bar is None and monitor is None:
        return None

    def progress(stats: PipelineStats) -> None:
        if bar is not None:
            bar.update_stats(stats)
        if monitor is not None:
            message = monitor.update(stats)
            if message is not None and bar is not None:
                bar.write(f"lowlight-rt: warning: {message}")

    return progress


def _remove_empty_output(out: Path) -> None:
    """Delete what a run that wrote no frame left at ``out`` (an empty video or folder it created)."""
    try:
        if out.is_dir():
            out.rmdir()  # only succeeds when empty
        elif out.is_file():
            out.unlink()
    except OSError:
        pass


class _Progress:
    """tqdm bar showing frames, FPS and ETA, fed from the pipeline's stats."""

    def __init__(self, total: int | None, desc: str) -> None:
        from tqdm import tqdm

        self.bar = tqdm(total=total, desc=desc, unit="frame", dynamic_ncols=True, file=sys.stderr,
                        leave=True, smoothing=0.1)

    def update_stats(self, stats: PipelineStats) -> None:
        delta = stats.frames_out - self.bar.n
        if delta > 0:
            self.bar.update(delta)
        postfix = {"fps": f"{stats.output_fps:.1f}"}
        if stats.dropped:
            postfix["dropped"] = stats.dropped
        if stats.decode_errors:
            postfix["decode_err"] = stats.decode_errors
        self.bar.set_postfix(postfix, refresh=False)

    def write(self, line: str) -> None:
        """Print ``line`` on stderr without breaking the bar."""
        self.bar.write(line, file=sys.stderr)

    def close(self) -> None:
        self.bar.close()


def _progress_bar(source: Source, out: Path) -> _Progress:
    return _Progress(source.info.frame_count, desc=out.name)


def _finish(bar: _Progress | None, stats: PipelineStats, options: JobOptions, engine: Engine,
            model_name: str, out: Path, state: str, source: Source | None = None,
            monitor: OverloadMonitor | None = None) -> None:
    if bar is not None:
        bar.close()
    if options.quiet:
        return
    notes = _source_notes(source)
    if monitor is not None and monitor.message is not None:
        notes.append(("warning", monitor.message))
    print(summary_text(stats, engine, model_name, out, state, notes=notes), file=sys.stderr)


def _source_notes(source: Source | None) -> list[tuple[str, str]]:
    if source is None:
        return []
    try:
        return list(source.summary_notes())
    except Exception:  # noqa: BLE001 - the summary never fails a run that succeeded
        return []


def summary_text(stats: PipelineStats, engine: Engine, model_name: str, out: Path, state: str,
                 notes: list[tuple[str, str]] | None = None) -> str:
    """The end-of-run summary: frames in/out, dropped, decode errors, per-stage speed, and the
    source's ``notes`` (``(label, text)``: skipped files, where a truncated input ended...)."""
    lines = [
        f"{state}: {out}",
        f"  frames in/out   {stats.frames_in} / {stats.frames_out}   dropped {stats.dropped}   "
        f"decode errors {stats.decode_errors}" + (f"   reconnects {stats.reconnects}" if stats.reconnects else ""),
        f"  model           {model_name} on {engine.device_name} ({engine.precision}), "
        f"processing size {engine.proc_size or 'full'}",
        f"  speed           end-to-end {stats.output_fps:.1f} FPS over {stats.elapsed_s:.1f} s; "
        f"capture {stats.capture_fps:.1f} FPS; inference {stats.inference_fps:.1f} FPS "
        f"({stats.infer_ms_per_frame:.1f} ms/frame); write {stats.write_ms_per_frame:.1f} ms/frame",
    ]
    lines += [f"  {label:<15s} {text}" for label, text in notes or ()]
    return "\n".join(lines)
