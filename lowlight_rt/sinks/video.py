"""H.264 MP4 sink: input pts kept or rebased (VFR survives), audio copied packet for packet, always finalised."""

from __future__ import annotations

import os
import threading
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from lowlight_rt.codecs import SOFTWARE_ENCODER, X264_CRF, X264_PRESET, X264_TUNE, x264_options
from lowlight_rt.errors import OutputError, UsageError
from lowlight_rt.frames import FALLBACK_MATRIX, MATRIX_AV_COLORSPACE, SWS_FROM_RGB, SWS_MATRIX, Frame, YuvPlanes
from lowlight_rt.sinks.base import same_path

__all__ = ["VideoFileSink", "check_output_path", "trim_fragmented_mp4"]

# Keys describing the OLD file's container; the muxer writes fresh ones.
_TECHNICAL_METADATA = frozenset({"major_brand", "minor_version", "compatible_brands", "encoder"})
# ITU-R BT.709 primaries and transfer, limited ("tv") range: what the file is tagged with; the matrix is the sink's.
_BT709 = 1
_RANGE_TV = 1
# Crash-safe (fragmented) MP4 for live recordings: a fragment (moof + mdat) is cut every
# _FRAGMENT_S of media time whatever the keyframe interval (measured: no size cost, unlike a
# shorter GOP), each packet is pushed to the kernel at once, and the file is fsync'ed every
# _FSYNC_S of wall time: SIGKILL, a power cut or a full disk lose at most the open fragment plus
# the encoder's look-ahead (well under 2 s at 30 fps).
_FRAGMENT_S = 0.5
_FSYNC_S = 1.0
_FRAGMENTED_MOVFLAGS = "frag_keyframe+empty_moov+delay_moov+default_base_moof"
_MP4_FAMILY = (".mp4", ".mov", ".m4v")
# Opening / reading the audio of an input given as a URL (a finite file served over http).
_URL_TIMEOUT_S = 10.0
# How far before the recording's start the audio input is seeked (packets before the start are then
# dropped one by one): covers demuxers that land a little late on a seek.
_AUDIO_SEEK_MARGIN_S = 0.25


def check_output_path(path: str | os.PathLike, input_path: str | os.PathLike | None = None) -> Path:
    """Raise ``OutputError`` (one line) unless a file can be created at ``path``.

    Checks: not the input, not a directory, the folder exists and is writable, and the file can
    really be opened for writing (a new file is created and removed again: permission bits say
    nothing to root, nor about ``/proc`` or a read-only mount), so a run never decodes and enhances
    frames it cannot write.
    """
    p = Path(path)
    if input_path is not None and Path(input_path).exists() and p.exists() and same_path(p, input_path):
        raise OutputError(f"output path is the input file: {path}")
    if p.is_dir():
        raise OutputError(f"output path is a directory: {path}")
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.exists():
        raise OutputError(f"output folder does not exist: {parent}")
    if not parent.is_dir():
        raise OutputError(f"output folder is not a directory: {parent}")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"output folder is not writable: {parent}")
    if p.exists() and not os.access(p, os.W_OK):
        raise OutputError(f"output file is not writable: {path}")
    existed = p.exists()
    try:
        with open(p, "ab"):
            pass
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None
    if not existed:
        p.unlink(missing_ok=True)
    return p


class VideoFileSink:
    """Encodes enhanced frames to H.264 (libx264, yuv420p, limited range) in an MP4 / MKV / MOV.

    * Colour: the stream is tagged with ``matrix`` (``"bt601"`` or ``"bt709"``; ``None``: BT.709, the
      ``FALLBACK_MATRIX``; a file job passes its input's, :attr:`~lowlight_rt.sources.base.SourceInfo.yuv_matrix`) and BT.709 primaries
      and transfer. :class:`YuvPlanes` in that matrix are encoded as they are; RGB is converted to it.

    * Time: the video stream uses ``time_base`` (the input's) and each frame's own ``pts``, so a
      variable frame rate survives; frames without pts get ``index / fps``. Non-increasing pts
      are bumped by one tick (counted in ``pts_fixed``).
    * Recording from the middle of an input (the viewer's record button): ``start_time``
      (seconds on the input's timeline) or ``rebase=True`` (start = the first written frame's
      time) shifts every video and audio timestamp back by the start, so the recording starts at
      0 with A/V in sync and VFR kept. Frames before ``start_time`` are skipped (counted in
      ``frames_skipped``). The audio input is seeked to just before the start; an audio packet
      that begins before the start (it would get a negative timestamp) is dropped, not trimmed,
      so the audio starts at the first packet at or after the start: at most one audio frame
      (AAC: 1024 samples, ~21 ms at 48 kHz) of silence, which the MP4 edit list keeps in sync.
      Without either option (the default, and the CLI) the input's pts are kept exactly.
    * Audio: every audio stream of ``audio_from`` is copied packet for packet (demux only, no
      decode), interleaved by time as video is written; ``close()`` copies the rest, or, when
      ``partial=True``, only the audio up to the end of the last written frame.
    * Metadata: container metadata of ``audio_from`` plus ``metadata`` (both minus the old
      file's brand / encoder keys, which the muxer writes afresh).
    * Odd sizes: yuv420p needs even dimensions and H.264 cannot signal a 1-pixel crop in 4:2:0,
      so by default (``odd_size="pad"``) the picture is padded by one replicated edge row /
      column (853x481 -> 854x482): no input pixel is lost and every player can decode it.
      ``odd_size="crop"`` drops that last row / column instead.
    * ``side_by_side=True`` writes ``input | enhanced`` (width doubled).
    * Display rotation (phone videos) and pixel aspect ratio: ``rotation`` (degrees
      counter-clockwise, as ``av.VideoFrame.rotation``) is stored as the display matrix, so
      players show the output upright like the input; ``None`` takes rotation and sample aspect
      ratio from ``audio_from``'s video stream. Pixels are written as decoded (not rotated).
    * Encoder: ``codec`` (default libx264 with ``crf`` / ``preset`` / ``tune``, defaults in
      :mod:`lowlight_rt.codecs`) or e.g. ``h264_nvenc`` with ``codec_options``
      (:func:`lowlight_rt.codecs.choose_codecs` picks at run time).
    * ``close()`` always flushes the encoder and writes the trailer, so a file cut short by
      Ctrl-C or an error is playable. A normal MP4/MOV gets its index at the front (faststart).
    * ``fragmented=True`` (live recordings: camera, stream, the viewer's record button) writes a
      fragmented MP4/MOV instead: an index-free header first, then a self-contained fragment
      every second, each handed to the kernel as it is written and fsync'ed about once a second.
      A process killed with SIGKILL, a power cut or a full disk leaves a playable file missing
      at most the last ~1-2 s. Other containers (.mkv, .ts) are written packet by packet,
      flushed the same way.

    Raises:
        OutputError: the path cannot be written or equals ``audio_from``.
        UsageError: the container cannot hold one of the audio codecs (use .mkv).
    """

    def __init__(self, path: str | os.PathLike, width: int, height: int, *, time_base: Fraction | None,
                 fps: float | None, audio_from: str | os.PathLike | None = None, crf: int = X264_CRF,
                 preset: str = X264_PRESET, side_by_side: bool = False, tune: str | None = X264_TUNE,
                 codec: str = SOFTWARE_ENCODER, codec_options: dict[str, str] | None = None,
                 metadata: dict[str, str] | None = None, threads: int = 0,
                 odd_size: str = "pad", rotation: int | None = None,
                 start_time: float | None = None, rebase: bool = False,
                 fragmented: bool = False, matrix: str | None = None) -> None:
        if odd_size not in ("pad", "crop"):
            raise ValueError("odd_size must be 'pad' or 'crop'")
        matrix = matrix or FALLBACK_MATRIX
        if matrix not in MATRIX_AV_COLORSPACE:
            raise ValueError(f"matrix must be one of {sorted(MATRIX_AV_COLORSPACE)}")
        #: the YUV matrix the video is written (and tagged) in
        self.matrix = matrix
        if start_time is not None and not start_time >= 0:
            raise ValueError("start_time must be >= 0 seconds")
        self.path = os.fspath(path)
        self.codec = codec
        self._codec_options = dict(codec_options) if codec_options is not None else x264_options(crf, preset, tune)
        self.width, self.height = int(width), int(height)
        self.side_by_side = side_by_side
        self.odd_size = odd_size
        self.fps = float(fps) if fps else None
        self.time_base = Fraction(time_base) if time_base else Fraction(1, 90000)
        self.frames_written = 0
        self.audio_packets = 0
        self.pts_fixed = 0
        self.frames_skipped = 0
        self.closed = False
        self.fragmented = bool(fragmented)
        self._sync_fd: int | None = None
        self._write_failed = False  # a write failed (disk full): the file may end mid-fragment
        #: frames the file holds after a failed write was cleaned up (``None``: as many as were written)
        self.frames_kept: int | None = None
        self._next_sync = 0.0
        # start of the recording on the input's timeline (seconds, exact); None: not known yet
        # (rebase: the first frame decides) or not rebasing
        self._rebase = rebase or start_time is not None
        self.start_time: Fraction | None = Fraction(start_time) if start_time is not None else None
        self._video_offset = round(self.start_time / self.time_base) if start_time is not None else 0
        self._audio_offsets: dict[int, int] = {}
        self._lock = threading.Lock()
        self._last_pts: int | None = None
        self._last_end_s = 0.0
        self._in: av.container.InputContainer | None = None
        self._audio_iter = None
        self._audio_next: av.Packet | None = None
        self._audio_map: dict[int, av.stream.Stream] = {}

        p = check_output_path(self.path, audio_from)
        existed = p.exists()
        cw = self.width * (2 if side_by_side else 1)
        ch = self.height
        if odd_size == "pad":
            self.out_width, self.out_height = cw + cw % 2, ch + ch % 2
        else:
            self.out_width, self.out_height = max(2, cw - cw % 2), max(2, ch - ch % 2)
        options = _container_options(p.suffix.lower(), self.time_base, self.fragmented)
        try:
            self._out = av.open(self.path, "w", options=options)
        except (av.error.FFmpegError, OSError, ValueError) as exc:
            raise OutputError(f"cannot write {self.path}: {_reason(exc)}") from None
        if self.fragmented:
            try:  # fsync through a second descriptor: FFmpeg's own is not reachable from here
                self._sync_fd = os.open(self.path, os.O_RDONLY)
            except OSError:
                self._sync_fd = None
        try:
            self._setup(audio_from, crf, preset, metadata, threads, rotation)
        except BaseException:
            self._abort(remove=not existed)
            raise

    # -- set-up ----------------------------------------------------------------------------
    def _setup(self, audio_from, crf: int, preset: str, metadata, threads: int,
               rotation: int | None) -> None:
        rate = Fraction(self.fps).limit_denominator(1001) if self.fps else Fraction(30)
        vs = self._out.add_stream(self.codec, rate=rate)
        vs.width, vs.height = self.out_width, self.out_height
        vs.pix_fmt = "yuv420p"
        vs.time_base = self.time_base
        cc = vs.codec_context
        cc.time_base = self.time_base
        cc.framerate = rate
        cc.thread_count = int(threads)
        cc.colorspace = MATRIX_AV_COLORSPACE[self.matrix]
        cc.color_primaries = _BT709
        cc.color_trc = _BT709
        cc.color_range = _RANGE_TV
        vs.options = dict(self._codec_options)
        self._video = vs

        meta: dict[str, str] = {}
        if audio_from is not None:
            try:
                self._in = av.open(os.fspath(audio_from), "r", **_open_kwargs(audio_from))
            except (av.error.FFmpegError, OSError, ValueError) as exc:
                raise OutputError(f"cannot read audio from {audio_from}: {_reason(exc)}") from None
            meta.update({k: v for k, v in self._in.metadata.items() if k not in _TECHNICAL_METADATA})
            if self._in.streams.video:
                iv = self._in.streams.video[0]
                if "language" in iv.metadata:
                    vs.metadata["language"] = iv.metadata["language"]
                if iv.sample_aspect_ratio and iv.sample_aspect_ratio != 1 and not self.side_by_side:
                    cc.sample_aspect_ratio = iv.sample_aspect_ratio
                if rotation is None:
                    rotation = _first_frame_rotation(os.fspath(audio_from))
            supported = self._out.supported_codecs
            for a in self._in.streams.audio:
                name = a.codec_context.name
                if name not in supported:  # the chosen format cannot hold the input: a usage error
                    raise UsageError(f"audio codec {name} cannot be stored in "
                                     f"{Path(self.path).suffix or 'this container'}; use .mkv")
                o = self._out.add_stream_from_template(a)
                for k, v in a.metadata.items():
                    if k not in ("handler_name", "vendor_id"):
                        o.metadata[k] = v
                self._audio_map[a.index] = o
            if not self._audio_map:
                self._close_input()
            elif not self._rebase:
                self._start_audio(None)
            elif self.start_time is not None:
                self._start_audio(self.start_time)
            # else: rebase=True, the first written frame gives the start (and starts the audio)
        meta.update({k: v for k, v in (metadata or {}).items() if k not in _TECHNICAL_METADATA})
        self._out.metadata.update(meta)
        self.rotation = int(rotation or 0)
        if self.rotation % 360:
            vs.set_display_rotation(self.rotation)

    # -- writing ---------------------------------------------------------------------------
    accepts_yuv = True

    def write(self, frame: Frame, enhanced: np.ndarray | YuvPlanes) -> None:
        """Encode ``enhanced`` ``(H, W, 3)`` uint8 RGB (same size as ``frame.image``) at ``frame``'s pts.

        :class:`YuvPlanes` in the sink's :attr:`matrix` at the output size are encoded as they are (no
        colour conversion); other planes are converted to RGB first.
        """
        if isinstance(enhanced, YuvPlanes):
            direct = (enhanced.matrix == self.matrix and not self.side_by_side
                      and (enhanced.width, enhanced.height) == (self.out_width, self.out_height))
            if direct:
                self._write_yuv(frame, enhanced)
                return
            enhanced = enhanced.to_rgb()
        if enhanced.shape != (self.height, self.width, 3) or enhanced.dtype != np.uint8:
            raise ValueError(f"enhanced frame is {enhanced.shape} {enhanced.dtype}, expected "
                             f"({self.height}, {self.width}, 3) uint8")
        with self._lock:
            if self.closed:
                raise OutputError(f"{self.path} is already closed")
            picture = enhanced
            if self.side_by_side:
                picture = np.concatenate([frame.image, enhanced], axis=1)
            picture = self._fit(picture)
            pts = self._pts_for(frame)
            if pts is None:
                self.frames_skipped += 1
                return
            vf = av.VideoFrame.from_ndarray(picture, format="rgb24")
            vf = vf.reformat(format="yuv420p", dst_colorspace=SWS_MATRIX[self.matrix], dst_color_range="MPEG",
                             threads=1, interpolation=SWS_FROM_RGB)
            self._encode(vf, pts)

    def _write_yuv(self, frame: Frame, planes: YuvPlanes) -> None:
        with self._lock:
            if self.closed:
                raise OutputError(f"{self.path} is already closed")
            pts = self._pts_for(frame)
            if pts is None:
                self.frames_skipped += 1
                return
            self._encode(planes.to_av(), pts)

    def _encode(self, vf, pts: int) -> None:
        """Encode the yuv420p ``vf`` at ``pts`` (copying audio up to its time first)."""
        vf.pts = pts
        vf.time_base = self.time_base
        t = float((pts + self._video_offset) * self.time_base)  # on the input's timeline
        step = 1.0 / self.fps if self.fps else 0.0
        self._last_end_s = max(self._last_end_s, t + step)
        self._copy_audio_until(t)
        self._mux(self._video.encode(vf))
        self.frames_written += 1
        self._maybe_sync()

    def _maybe_sync(self, force: bool = False) -> None:
        """fsync a fragmented recording about once a second (a power cut keeps what was synced)."""
        if self._sync_fd is None:
            return
        now = time.monotonic()
        if force or now >= self._next_sync:
            self._next_sync = now + _FSYNC_S
            try:
                os.fsync(self._sync_fd)
            except OSError:
                pass  # a full disk shows up as the next write's error

    def _fit(self, picture: np.ndarray) -> np.ndarray:
        h, w = picture.shape[:2]
        if (w, h) == (self.out_width, self.out_height):
            return picture
        if self.odd_size == "pad":
            return np.pad(picture, ((0, self.out_height - h), (0, self.out_width - w), (0, 0)), mode="edge")
        return np.ascontiguousarray(picture[: self.out_height, : self.out_width])

    def _pts_for(self, frame: Frame) -> int | None:
        """Output pts of ``frame`` (input pts minus the start offset); ``None``: before the start."""
        if frame.pts is not None:
            if frame.time_base is not None and Fraction(frame.time_base) != self.time_base:
                pts = int(round(Fraction(frame.pts) * Fraction(frame.time_base) / self.time_base))
            else:
                pts = int(frame.pts)
        else:
            fps = self.fps or 30.0
            pts = int(round(Fraction(frame.index) / Fraction(fps).limit_denominator(1001) / self.time_base))
        if self._rebase:
            if self.start_time is None:  # rebase: the first frame written is t = 0
                self.start_time = pts * self.time_base
                self._video_offset = pts
                self._start_audio(self.start_time)
            pts -= self._video_offset
            if pts < 0:
                return None
        if self._last_pts is not None and pts <= self._last_pts:
            pts = self._last_pts + 1
            self.pts_fixed += 1
        self._last_pts = pts
        return pts

    def _mux(self, packets) -> None:
        try:
            self._out.mux(packets)
        except (av.error.FFmpegError, OSError) as exc:
            self._write_failed = True
            raise OutputError(f"cannot write {self.path}: {_reason(exc)}") from None

    # -- audio copy ------------------------------------------------------------------------
    def _start_audio(self, start: Fraction | None) -> None:
        """Begin demuxing the audio input: from its start, or seeked to just before ``start``."""
        if self._in is None:
            return
        streams = list(self._in.streams.audio)
        if start is not None:
            self._audio_offsets = {a.index: round(start / a.time_base) for a in streams}
            first = streams[0]
            target = max(Fraction(0), start - Fraction(_AUDIO_SEEK_MARGIN_S))
            try:
                self._in.seek(int(target / first.time_base), stream=first, backward=True, any_frame=False)
            except (av.error.FFmpegError, OSError, ValueError):
                pass  # not seekable: demux from the beginning, packets before the start are dropped
        self._audio_iter = self._in.demux(*streams)
        self._advance_audio()

    def _advance_audio(self) -> None:
        self._audio_next = None
        if self._audio_iter is None:
            return
        while True:
            try:
                pkt = next(self._audio_iter)
            except StopIteration:
                self._audio_iter = None
                return
            except (av.error.FFmpegError, OSError):
                # damaged / truncated input: keep the audio copied so far
                self._audio_iter = None
                return
            if pkt.dts is None or pkt.size == 0:
                continue
            if self._audio_offsets:
                # rebased recording: shift to the recording's timeline; drop what starts before it
                off = self._audio_offsets[pkt.stream.index]
                if pkt.dts < off or (pkt.pts is not None and pkt.pts < off):
                    continue
                pkt.dts -= off
                if pkt.pts is not None:
                    pkt.pts -= off
            self._audio_next = pkt
            return

    def _packet_time(self, pkt: av.Packet) -> float:
        """Start of ``pkt`` on the input's timeline (seconds)."""
        ts = pkt.pts if pkt.pts is not None else pkt.dts
        return float((ts + self._audio_offsets.get(pkt.stream.index, 0)) * pkt.time_base)

    def _copy_audio_until(self, t: float | None) -> None:
        while self._audio_next is not None and (t is None or self._packet_time(self._audio_next) <= t):
            pkt = self._audio_next
            pkt.stream = self._audio_map[pkt.stream.index]
            self._mux(pkt)
            self.audio_packets += 1
            self._advance_audio()

    # -- closing ---------------------------------------------------------------------------
    def close(self, partial: bool = False) -> None:
        """Flush the encoder, copy the remaining audio (up to the last frame if ``partial``) and
        write the trailer. Idempotent; the file is playable afterwards."""
        with self._lock:
            if self.closed:
                return
            self.closed = True
            error: BaseException | None = None
            for step in (self._flush_video, lambda: self._copy_audio_until(self._last_end_s if partial else None)):
                try:
                    step()
                except BaseException as exc:  # noqa: BLE001 - keep finalising, re-raise below
                    error = error or exc
            try:
                self._out.close()
            except (av.error.FFmpegError, OSError) as exc:
                error = error or OutputError(f"cannot finalise {self.path}: {_reason(exc)}")
            self._close_input()
            if self._write_failed and self.fragmented and Path(self.path).suffix.lower() in _MP4_FAMILY:
                trim_fragmented_mp4(self.path)
                self.frames_kept = _count_video_packets(self.path)
            self._close_sync(sync=True)
            if error is not None:
                raise error

    def _flush_video(self) -> None:
        self._mux(self._video.encode(None))

    def _close_sync(self, sync: bool) -> None:
        if self._sync_fd is None:
            return
        if sync:
            self._maybe_sync(force=True)
        fd, self._sync_fd = self._sync_fd, None
        os.close(fd)

    def _close_input(self) -> None:
        c, self._in = self._in, None
        self._audio_iter = None
        self._audio_next = None
        if c is not None:
            c.close()

    def _abort(self, remove: bool) -> None:
        try:
            self._out.close()
        except Exception:  # noqa: BLE001 - construction already failed; report that error
            pass
        self._close_input()
        self._close_sync(sync=False)
        self.closed = True
        if remove:
            try:
                os.remove(self.path)
            except OSError:
                pass

    def __enter__(self) -> VideoFileSink:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(partial=exc_type is not None)


def trim_fragmented_mp4(path: str | os.PathLike) -> int:
    """Cut a fragmented MP4 after its last complete fragment (a moof followed by its whole mdat).

    A write that failed half-way (disk full) leaves a torn fragment at the end, which decoders
    report as damaged data. Returns the new size (the file is left alone when it is whole or
    not a fragmented MP4)."""
    size = os.path.getsize(path)
    good = 0  # end of the last box after which the file is complete
    in_fragment = False
    with open(path, "rb") as f:
        offset = 0
        while offset + 8 <= size:
            f.seek(offset)
            head = f.read(16)
            box_size, kind = int.from_bytes(head[:4], "big"), head[4:8]
            if box_size == 1 and len(head) >= 16:
                box_size = int.from_bytes(head[8:16], "big")
            elif box_size == 0:
                box_size = size - offset
            if box_size < 8 or offset + box_size > size:
                break  # torn box
            offset += box_size
            if kind == b"moof":
                in_fragment = True
            elif kind == b"mdat" or not in_fragment:
                in_fragment = False
                good = offset
    if good and good < size:
        try:
            os.truncate(path, good)
        except OSError:
            return size
        return good
    return size


def _count_video_packets(path: str) -> int | None:
    """Video frames stored in ``path`` (demuxed, not decoded), ``None`` if it cannot be read."""
    try:
        with av.open(path, "r") as c:
            return sum(1 for p in c.demux(video=0) if p.size)
    except (av.error.FFmpegError, OSError, ValueError, IndexError):
        return None


def _container_options(suffix: str, time_base: Fraction, fragmented: bool) -> dict[str, str]:
    """Muxer options: faststart (index first) for a normal MP4/MOV, fragments for a live recording."""
    options: dict[str, str] = {}
    if fragmented:
        options["flush_packets"] = "1"  # every packet reaches the kernel at once (SIGKILL-safe)
    if suffix not in _MP4_FAMILY:
        return options
    if time_base.numerator == 1:
        # edit lists (start offsets) are stored in the movie timescale (default 1/1000 s):
        # use the video time base so a non-zero start time survives exactly
        options["movie_timescale"] = str(time_base.denominator)
    if fragmented:
        options["movflags"] = _FRAGMENTED_MOVFLAGS
        options["frag_duration"] = str(int(_FRAGMENT_S * 1_000_000))
    else:
        options["movflags"] = "faststart"
    return options


def _open_kwargs(path: str | os.PathLike) -> dict:
    """``av.open`` keywords for an input: a URL (a file served over http) gets a timeout."""
    return {"timeout": (_URL_TIMEOUT_S, _URL_TIMEOUT_S)} if "://" in os.fspath(path) else {}


def _first_frame_rotation(path: str) -> int:
    """Display rotation (degrees counter-clockwise) of the first decodable video frame, or 0."""
    try:
        with av.open(path, "r", **_open_kwargs(path)) as c:
            for frame in c.decode(video=0):
                return int(frame.rotation or 0)
    except (av.error.FFmpegError, OSError, ValueError, IndexError):
        pass
    return 0


def _reason(exc: BaseException) -> str:
    msg = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return " ".join(str(msg).split())
