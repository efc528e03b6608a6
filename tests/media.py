"""Tiny synthetic test media written with PyAV (shared by every test module).

Everything here is deterministic for a given ``seed`` and small enough to generate in well under a
second, so fixtures can create fresh files per test session without touching ``../shared``.
"""

from __future__ import annotations

import functools
import shutil
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

__all__ = [
    "make_clip",
    "make_frame",
    "truncate",
    "bitflip",
    "make_image_folder",
    "random_bytes_file",
    "make_audio_only",
    "read_video_pts",
    "read_audio_packets",
    "count_decodable_frames",
]

AUDIO_RATE = 48000


@functools.lru_cache(maxsize=8)
def _base_pattern(width: int, height: int) -> np.ndarray:
    """Static colour gradients ``(H, W, 3)`` float32 in [0, 1] (cached per size)."""
    x = np.linspace(0.0, 6.28, width, dtype=np.float32)[None, :]
    y = np.linspace(0.0, 6.28, height, dtype=np.float32)[:, None]
    r = 0.5 + 0.5 * np.sin(x) * np.ones_like(y)
    g = 0.5 + 0.5 * np.cos(y) * np.ones_like(x)
    b = (np.mod(x * 5 + y * 5, 6.28) / 6.28).astype(np.float32)
    return np.stack([r, g, b], axis=-1)


def make_frame(index: int, width: int, height: int, *, dark: bool = True,
               rng: np.random.Generator | None = None) -> np.ndarray:
    """A moving test pattern, ``(height, width, 3)`` uint8 RGB; dark (and noisy with ``rng``)."""
    img = _base_pattern(width, height)
    shift = (index * 3) % max(1, width)
    img = np.roll(img, shift, axis=1)
    # a bright square that moves, so frames are distinguishable
    s = max(2, min(width, height) // 6)
    cx = int((index * 7) % max(1, width - s))
    cy = int((index * 3) % max(1, height - s))
    img = (img * (0.12 if dark else 1.0) * 255.0).astype(np.uint8)
    img[cy:cy + s, cx:cx + s] = 255 if not dark else 60
    if dark and rng is not None:
        img = cv2.add(img, rng.integers(0, 8, img.shape, dtype=np.uint8))
    return img


def _vfr_durations(frames: int, fps: float, rng: np.random.Generator) -> list[float]:
    """Irregular frame durations (seconds) averaging about ``1 / fps``."""
    base = 1.0 / fps
    return [base * float(rng.choice([0.5, 1.0, 1.0, 1.5, 2.0])) for _ in range(frames)]


def make_clip(
    path: str | Path,
    width: int = 160,
    height: int = 96,
    frames: int = 30,
    fps: int = 30,
    audio: bool = True,
    vfr: bool = False,
    dark: bool = True,
    seed: int = 0,
    *,
    codec: str = "libx264",
    audio_streams: int = 1,
    metadata: dict[str, str] | None = None,
    rotation: int = 0,
) -> Path:
    """Write a short H.264 clip (+ AAC audio) and return its path.

    The container follows the extension (``.mp4``, ``.mkv``, ``.ts``, ``.mov``). MP4/MOV files are
    written with ``movflags=faststart`` (index first), so a truncated copy is still openable.
    ``vfr=True`` gives irregular pts (time base 1/1000 s). Odd sizes are encoded with yuv444p
    (4:2:0 needs even sizes); the decoded frames keep the odd size. ``rotation`` stores a display
    matrix (degrees counter-clockwise).
    """
    path = Path(path)
    rng = np.random.default_rng(seed)
    suffix = path.suffix.lower()
    options = {"movflags": "faststart"} if suffix in (".mp4", ".mov", ".m4v") else {}
    odd = width % 2 or height % 2
    with av.open(str(path), "w", options=options) as out:
        if metadata:
            out.metadata.update(metadata)
        vs = out.add_stream(codec, rate=fps)
        vs.width, vs.height = width, height
        vs.pix_fmt = "yuv444p" if odd else "yuv420p"
        vs.options = {"preset": "ultrafast", "crf": "23"} if codec == "libx264" else {}
        if rotation:
            vs.set_display_rotation(rotation)  # like a phone clip shot in portrait
        tb = Fraction(1, 1000) if vfr else Fraction(1, fps)
        vs.codec_context.time_base = tb
        if vfr:
            vs.time_base = tb
        astreams = []
        if audio:
            for k in range(audio_streams):
                a = out.add_stream("aac", rate=AUDIO_RATE)
                a.layout = "mono"
                a.metadata["language"] = ["eng", "fra", "deu"][k % 3]
                astreams.append(a)

        t = 0.0
        times = []
        durations = _vfr_durations(frames, fps, rng) if vfr else [1.0 / fps] * frames
        for i in range(frames):
            img = make_frame(i, width, height, dark=dark, rng=rng)
            vf = av.VideoFrame.from_ndarray(img, format="rgb24")
            vf.pts = int(round(t / tb)) if vfr else i
            vf.time_base = tb
            times.append(t)
            t += durations[i]
            for pkt in vs.encode(vf):
                out.mux(pkt)
        for pkt in vs.encode(None):
            out.mux(pkt)

        total = int(round(t * AUDIO_RATE))
        for k, a in enumerate(astreams):
            n = 1024
            pts = 0
            freq = 220.0 * (k + 1)
            while pts < total:
                m = min(n, total - pts)
                tt = (np.arange(pts, pts + m) / AUDIO_RATE).astype(np.float32)
                samples = (0.2 * np.sin(2 * np.pi * freq * tt)).astype(np.float32)[None, :]
                af = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
                af.sample_rate = AUDIO_RATE
                af.pts = pts
                af.time_base = Fraction(1, AUDIO_RATE)
                pts += m
                for pkt in a.encode(af):
                    out.mux(pkt)
            for pkt in a.encode(None):
                out.mux(pkt)
    return path


def make_audio_only(path: str | Path, seconds: float = 0.2) -> Path:
    """An AAC-only file (no video stream)."""
    path = Path(path)
    with av.open(str(path), "w") as out:
        a = out.add_stream("aac", rate=AUDIO_RATE)
        a.layout = "mono"
        n = int(seconds * AUDIO_RATE)
        af = av.AudioFrame.from_ndarray(np.zeros((1, n), np.float32), format="fltp", layout="mono")
        af.sample_rate, af.pts, af.time_base = AUDIO_RATE, 0, Fraction(1, AUDIO_RATE)
        for pkt in a.encode(af):
            out.mux(pkt)
        for pkt in a.encode(None):
            out.mux(pkt)
    return path


def truncate(path: str | Path, fraction: float, dst: str | Path | None = None) -> Path:
    """Copy ``path`` keeping only its first ``fraction`` of bytes; returns the copy's path."""
    path = Path(path)
    dst = Path(dst) if dst is not None else path.with_name(f"{path.stem}_trunc{path.suffix}")
    data = path.read_bytes()
    dst.write_bytes(data[: max(1, int(len(data) * fraction))])
    return dst


def bitflip(
    path: str | Path,
    n: int,
    seed: int = 0,
    dst: str | Path | None = None,
    *,
    region: tuple[float, float] = (0.35, 0.9),
) -> Path:
    """Copy ``path`` with ``n`` random bytes inverted inside ``region`` (fractions of the file size).

    The default region skips the container header/index (``faststart`` MP4s keep it at the start)
    so the result still opens and the damage lands in the coded frames.
    """
    path = Path(path)
    dst = Path(dst) if dst is not None else path.with_name(f"{path.stem}_flip{path.suffix}")
    data = bytearray(path.read_bytes())
    rng = np.random.default_rng(seed)
    lo, hi = int(len(data) * region[0]), int(len(data) * region[1])
    for pos in rng.integers(lo, max(lo + 1, hi), size=n):
        data[int(pos)] ^= 0xFF
    dst.write_bytes(bytes(data))
    return dst


def make_image_folder(
    directory: str | Path,
    sizes: list[tuple[int, int]],
    *,
    names: list[str] | None = None,
    seed: int = 0,
) -> list[Path]:
    """Write one image per ``(width, height)`` in ``sizes`` into ``directory``; returns the paths.

    Default names are ``img_000.png``, ``img_001.jpg``, ... alternating PNG / JPEG. Names may contain
    non-ASCII characters (written via ``cv2.imencode`` + ``tofile``).
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    if names is None:
        names = [f"img_{i:03d}{'.png' if i % 2 == 0 else '.jpg'}" for i in range(len(sizes))]
    paths = []
    for i, ((w, h), name) in enumerate(zip(sizes, names)):
        rgb = make_frame(i, w, h, dark=True, rng=rng)
        p = directory / name
        ok, buf = cv2.imencode(p.suffix, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        assert ok, f"cannot encode {p.suffix}"
        buf.tofile(str(p))
        paths.append(p)
    return paths


def random_bytes_file(path: str | Path, size: int = 65536, seed: int = 0) -> Path:
    """A file of random bytes (not media of any kind)."""
    path = Path(path)
    path.write_bytes(np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8).tobytes())
    return path


def read_video_pts(path: str | Path) -> tuple[list[Fraction], tuple[int, int]]:
    """Decode the first video stream fully: every frame's time in seconds (exact) and ``(w, h)``."""
    times: list[Fraction] = []
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        size = (s.codec_context.width, s.codec_context.height)
        for f in c.decode(s):
            times.append(Fraction(f.pts) * s.time_base)
    return times, size


def read_audio_packets(path: str | Path) -> list[list[bytes]]:
    """Payload bytes of every audio packet, one list per audio stream, in stream order."""
    with av.open(str(path)) as c:
        streams = list(c.streams.audio)
        out: list[list[bytes]] = [[] for _ in streams]
        if not streams:
            return out
        pos = {s.index: k for k, s in enumerate(streams)}
        for pkt in c.demux(*streams):
            if pkt.size:
                out[pos[pkt.stream.index]].append(bytes(pkt))
    return out


def count_decodable_frames(path: str | Path) -> int:
    """How many video frames FFmpeg decodes from ``path`` (strict: raises on a decode error)."""
    with av.open(str(path)) as c:
        return sum(1 for _ in c.decode(video=0))


def copy(path: str | Path, dst: str | Path) -> Path:
    """Plain file copy (used to keep test inputs pristine)."""
    return Path(shutil.copyfile(path, dst))
