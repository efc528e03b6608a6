"""A headless job: build the run (:func:`lowlight_rt.run.open_run`), run it with a progress bar, report.

Used by the CLI for files, image folders, and camera / stream recording with ``--no-gui``.
"""

from __future__ import annotations

import sys
from collections import deque
from pathlib import Path

from .config import RunConfig
from .inference import Engine
from .errors import EXIT_INTERRUPTED, EXIT_OK, EXIT_TERMINATED, LowlightError, PartialOutputError, Terminated
from .pipeline import PipelineStats
from .run import open_run
from .sources.base import Source


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


def run_job(config: RunConfig, engine: Engine, model_name: str = "") -> int:
    """Enhance ``config.source`` into ``config.out``; prints a progress bar and a summary unless ``config.quiet``.

    Returns the exit code: 0 on success, 130 when interrupted with Ctrl-C and 143 on SIGTERM
    (:class:`~lowlight_rt.errors.Terminated`); the output is finalised in both cases.
    Raises ``PartialOutputError`` when an error stopped processing after the output was started.
    """
    out_path = Path(config.out)
    existed = out_path.exists()
    try:
        run = open_run(config, engine)
    except BaseException:  # e.g. SIGTERM right now: the output was closed (nothing written: remove it)
        if not existed:
            _remove_empty_output(out_path)
        raise
    source, pipeline, sink = run.source, run.pipeline, run.sinks[0]
    try:
        bar = None if config.quiet else _progress_bar(source, out_path, config.max_frames)
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
        stats = pipeline.run(progress=progress, max_frames=config.max_frames)
    except KeyboardInterrupt as e:  # Ctrl-C or SIGTERM: the pipeline has finalised the output
        stats = pipeline.stats
        terminated = isinstance(e, Terminated)
        _finish(bar, stats, config, engine, model_name, out_path, "terminated" if terminated else "interrupted",
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
        _finish(bar, stats, config, engine, model_name, out_path, "failed", source, monitor)
        if stats.frames_out > 0:
            reason = str(e) if isinstance(e, LowlightError) else f"{type(e).__name__}: {e}"
            kept = getattr(sink, "frames_kept", None)
            frames = f"{stats.frames_out} frames" if kept is None else f"{kept} of {stats.frames_out} frames"
            raise PartialOutputError(f"{' '.join(reason.split())} -- partial output saved to {out_path} "
                                     f"({frames})") from e
        if not existed:
            _remove_empty_output(out_path)
        raise
    _finish(bar, stats, config, engine, model_name, out_path, "done", source, monitor)
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


def _progress_bar(source: Source, out: Path, max_frames: int | None = None) -> _Progress:
    """The bar's total is the frames this run will write: the source's count, capped by ``--max-frames``."""
    total = source.info.frame_count
    if max_frames is not None:
        total = max_frames if total is None else min(total, max_frames)
    return _Progress(total, desc=out.name)


def _finish(bar: _Progress | None, stats: PipelineStats, config: RunConfig, engine: Engine,
            model_name: str, out: Path, state: str, source: Source | None = None,
            monitor: OverloadMonitor | None = None) -> None:
    if bar is not None:
        bar.close()
    if config.quiet:
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
        f"  model           {model_name} on {engine.device_name} ({engine.precision}"
        f"{', onnxruntime' if engine.network_runtime == 'onnxruntime' else ''}), "
        f"processing size {engine.proc_size or 'full'}",
    ]
    if not engine.denoise:
        lines.append("  denoise         off")
    elif engine.denoiser.seen:
        lines.append(f"  denoise         {engine.denoiser.summary()}")
    lines += [
        f"  speed           end-to-end {stats.output_fps:.1f} FPS over {stats.elapsed_s:.1f} s; "
        f"capture {stats.capture_fps:.1f} FPS; inference {stats.inference_fps:.1f} FPS "
        f"({stats.infer_ms_per_frame:.1f} ms/frame); write {stats.write_ms_per_frame:.1f} ms/frame",
    ]
    lines += [f"  {label:<15s} {text}" for label, text in notes or ()]
    return "\n".join(lines)
