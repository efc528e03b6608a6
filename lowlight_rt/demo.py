"""The bundled demo clip: a procedural night street, darkened by :mod:`lowlight_rt.synth`.

Nothing here comes from third-party footage. :class:`NightScene` renders a clean, well-exposed
night street (sky gradient with stars and a moon, brick buildings with lit and flickering windows,
street lamps, textured asphalt, a car with headlights driving through, a person walking) with
numpy / OpenCV, at 2x resolution then area-downsampled for anti-aliasing. Each frame is passed
through the low-light model with a fixed, low exposure and fresh sensor noise, and encoded with
PyAV (libx264, yuv420p) together with a generated AAC soundtrack (ambient noise, a soft tone and
the car passing by, panned left to right).

    python -m lowlight_rt.demo --regenerate      # rebuild assets/demo/night_demo.mp4 (deterministic)

The clean frames are never written: ``NightScene().frames()`` regenerates them in memory, bit-exact,
as a reference (e.g. PSNR of an enhanced demo against the scene before darkening).
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import av
import cv2
import numpy as np

from .synth import LowLightParams, simulate_low_light

__all__ = [
    "DEMO_PARAMS",
    "NightScene",
    "demo_clip_path",
    "demo_frames",
    "make_demo_audio",
    "probe_clip",
    "write_demo_clip",
]

#: The capture the demo clip simulates: 7 % of a good exposure, 1500 photons at full scale, some read noise.
DEMO_PARAMS = LowLightParams(exposure=0.07, shot_noise=1500.0, read_noise=0.004, gain=1.0,
                             color_cast=(1.04, 1.0, 0.94))


def demo_clip_path() -> Path:
    """Path of the bundled demo clip, ``assets/demo/night_demo.mp4`` (it may not exist yet)."""
    try:
        from .assets import assets_dir
    except ImportError:  # assets.py is optional for this module
        return Path(__file__).resolve().parent.parent / "assets" / "demo" / "night_demo.mp4"
    return Path(assets_dir()) / "demo" / "night_demo.mp4"


def _value_noise(rng: np.random.Generator, h: int, w: int, cell: int) -> np.ndarray:
    """Smooth random texture ``(h, w)`` float32 with zero mean, unit-ish amplitude."""
    small = rng.standard_normal((h // cell + 2, w // cell + 2)).astype(np.float32)
    big = cv2.resize(small, (w + 2 * cell, h + 2 * cell), interpolation=cv2.INTER_CUBIC)
    return big[cell:cell + h, cell:cell + w]


def _add_glow(img: np.ndarray, center: tuple[float, float], radius: float, color: tuple[float, float, float],
              strength: float) -> None:
    """Adds a Gaussian light glow in place (``img`` float32 ``(H, W, 3)``)."""
    h, w = img.shape[:2]
    cx, cy = center
    r = int(3 * radius)
    x0, x1 = max(0, int(cx) - r), min(w, int(cx) + r + 1)
    y0, y1 = max(0, int(cy) - r), min(h, int(cy) + r + 1)
    if x0 >= x1 or y0 >= y1:
        return
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    g = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2.0 * radius**2)) * strength
    img[y0:y1, x0:x1] += g[..., None] * np.asarray(color, np.float32)


@dataclass
class _Building:
    x0: int
    x1: int
    top: int
    color: tuple[float, float, float]
    windows: list[tuple[int, int, int, int, float, float]]  # x, y, w, h, lit level (0 = dark), flicker phase


class NightScene:
    """A procedural night street, rendered frame by frame.

    ``frame(i)`` returns the clean (pre-darkening) picture ``(height, width, 3) uint8 RGB``: a
    long-exposure look of the scene, mean luma about 0.3-0.4. Deterministic for a given ``seed``.
    """

    def __init__(self, width: int = 640, height: int = 360, fps: int = 24, seconds: float = 6.0,
                 seed: int = 2024) -> None:
        self.width, self.height, self.fps = width, height, fps
        self.num_frames = int(round(fps * seconds))
        self.seed = seed
        self._s = 2  # supersampling factor
        self._W, self._H = width * self._s, height * self._s
        self._rng = np.random.default_rng(seed)
        self._horizon = int(self._H * 0.70)
        self._buildings: list[_Building] = []
        self._background = self._render_background()

    # --- static layers -------------------------------------------------------------------------
    def _render_background(self) -> np.ndarray:
        W, H, hz, rng = self._W, self._H, self._horizon, self._rng
        img = np.zeros((H, W, 3), np.float32)
        # sky: deep blue at the top to a hazy violet at the horizon, plus faint cloud texture
        t = np.linspace(0.0, 1.0, hz, dtype=np.float32)[:, None, None]
        top, bottom = np.array([0.08, 0.12, 0.30], np.float32), np.array([0.34, 0.30, 0.44], np.float32)
        img[:hz] = top * (1 - t) + bottom * t
        clouds = _value_noise(rng, hz, W, 48)
        img[:hz] += 0.03 * clouds[..., None] * np.array([0.8, 0.8, 1.0], np.float32)
        for _ in range(90):  # stars
            x, y = int(rng.integers(0, W)), int(rng.integers(0, int(hz * 0.6)))
            b = float(rng.uniform(0.4, 1.0))
            cv2.circle(img, (x, y), int(rng.integers(1, 3)), (b, b, 0.95 * b), -1)
        _add_glow(img, (W * 0.82, H * 0.13), 40.0, (0.35, 0.35, 0.40), 0.6)  # moon halo
        cv2.circle(img, (int(W * 0.82), int(H * 0.13)), 22, (0.95, 0.93, 0.85), -1)

        # buildings with brick texture and windows
        x = -int(rng.integers(0, 40))
        while x < W:
            bw = int(rng.integers(110, 260))
            top = int(rng.integers(int(H * 0.18), int(H * 0.50)))
            base = np.array([rng.uniform(0.28, 0.42), rng.uniform(0.22, 0.32), rng.uniform(0.20, 0.30)],
                            np.float32)
            windows = []
            ww, wh, gap_x, gap_y = 22, 30, 18, 24
            for wy in range(top + 24, hz - 70, wh + gap_y):
                for wx in range(x + 16, x + bw - ww - 10, ww + gap_x):
                    lit = float(rng.uniform(0.7, 1.0)) if rng.random() < 0.45 else 0.0
                    flicker = float(rng.uniform(0, 2 * math.pi)) if (lit > 0 and rng.random() < 0.12) else -1.0
                    windows.append((wx, wy, ww, wh, lit, flicker))
            self._buildings.append(_Building(x, x + bw, top, tuple(base.tolist()), windows))
            x += bw + int(rng.integers(0, 30))
        for b in self._buildings:
            x0, x1 = max(0, b.x0), min(W, b.x1)
            if x0 >= x1:
                continue
            region = img[b.top:hz, x0:x1]
            region[:] = np.asarray(b.color, np.float32)
            hh, bw = region.shape[:2]
            tex = _value_noise(rng, hh, bw, 6) * 0.035 + rng.standard_normal((hh, bw)).astype(np.float32) * 0.02
            region += tex[..., None]
            # mortar lines every 8 px, staggered vertical joints every 24 px
            yy = np.arange(hh)[:, None]
            xx = np.arange(bw)[None, :] + (x0 - b.x0) + ((yy // 8) % 2) * 12
            mortar = (yy % 8 == 0) | (xx % 24 == 0)
            region[mortar] *= 0.72
            cv2.rectangle(img, (x0, b.top), (x1 - 1, b.top + 6), (0.16, 0.14, 0.14), -1)  # roof edge
            for wx, wy, ww, wh, lit, _ in b.windows:
                if lit == 0.0:
                    cv2.rectangle(img, (wx, wy), (wx + ww, wy + wh), (0.10, 0.12, 0.17), -1)
                    cv2.line(img, (wx + ww // 2, wy), (wx + ww // 2, wy + wh), (0.2, 0.2, 0.22), 2)

        # street: sidewalk, kerb, asphalt with grain and dashed lane markings
        ground = img[hz:]
        gh = H - hz
        t = np.linspace(0.0, 1.0, gh, dtype=np.float32)[:, None, None]
        ground[:] = np.array([0.22, 0.21, 0.22], np.float32) * (1 - 0.3 * t) + 0.02
        grain = _value_noise(rng, gh, W, 3) * 0.04 + rng.standard_normal((gh, W)).astype(np.float32) * 0.035
        ground += grain[..., None]
        walk = int(gh * 0.22)
        ground[:walk] = ground[:walk] * 0.6 + np.array([0.20, 0.19, 0.18], np.float32)
        for px in range(0, W, 64):  # paving joints
            cv2.line(ground, (px, 0), (px - 20, walk), (0.18, 0.17, 0.16), 2)
        cv2.rectangle(ground, (0, walk), (W, walk + 5), (0.45, 0.44, 0.42), -1)  # kerb
        lane_y = int(gh * 0.62)
        for px in range(20, W, 140):
            cv2.rectangle(ground, (px, lane_y), (px + 70, lane_y + 6), (0.85, 0.85, 0.80), -1)

        # street lamps: pole, head, glow and a warm pool of light on the ground
        self._lamps = []
        for lx in np.linspace(W * 0.12, W * 0.92, 3):
            lx = int(lx)
            ly = hz - 150
            cv2.line(img, (lx, hz + 8), (lx, ly), (0.12, 0.12, 0.13), 6)
            cv2.line(img, (lx, ly), (lx + 30, ly), (0.12, 0.12, 0.13), 5)
            cv2.ellipse(img, (lx + 30, ly + 6), (14, 6), 0, 0, 360, (1.0, 0.9, 0.6), -1)
            pool = np.zeros_like(img)
            cv2.ellipse(pool, (lx + 30, hz + 30), (150, 30), 0, 0, 360, (0.30, 0.24, 0.12), -1)
            img += cv2.GaussianBlur(pool, (0, 0), 18)
            _add_glow(img, (lx + 30, ly + 8), 26.0, (1.0, 0.85, 0.55), 0.55)
            self._lamps.append((lx + 30, ly + 8))
        return img

    # --- dynamic layers ------------------------------------------------------------------------
    def _draw_windows(self, img: np.ndarray, t: float) -> None:
        for b in self._buildings:
            for wx, wy, ww, wh, lit, phase in b.windows:
                if lit == 0.0 or wx + ww < 0 or wx >= self._W:
                    continue
                if phase >= 0:  # a TV: bluish, flickering
                    level = lit * (0.55 + 0.45 * abs(math.sin(3.1 * t + phase) * math.sin(7.3 * t + 2 * phase)))
                    color = (0.45 * level, 0.60 * level, 1.0 * level)
                else:
                    color = (1.0 * lit, 0.80 * lit, 0.45 * lit)
                cv2.rectangle(img, (wx, wy), (wx + ww, wy + wh), color, -1)
                cv2.line(img, (wx + ww // 2, wy), (wx + ww // 2, wy + wh), (0.25 * lit, 0.2 * lit, 0.12 * lit), 2)
                cv2.line(img, (wx, wy + wh // 2), (wx + ww, wy + wh // 2), (0.25 * lit, 0.2 * lit, 0.12 * lit), 2)

    def _draw_car(self, img: np.ndarray, t: float, seconds: float) -> float:
        """Draws the car; returns its x position as a fraction of the width (for the audio pan)."""
        W, hz = self._W, self._horizon
        gh = self._H - hz
        span = W + 600
        cx = -300 + span * (t / seconds)
        y = hz + int(gh * 0.74)  # bottom of the wheels
        body = (0.55, 0.08, 0.08)
        cv2.rectangle(img, (int(cx - 130), y - 70), (int(cx + 130), y - 22), body, -1)
        roof = np.array([[cx - 80, y - 70], [cx - 50, y - 112], [cx + 55, y - 112], [cx + 90, y - 70]], np.int32)
        cv2.fillPoly(img, [roof], body)
        win = np.array([[cx - 70, y - 72], [cx - 45, y - 104], [cx + 50, y - 104], [cx + 78, y - 72]], np.int32)
        cv2.fillPoly(img, [win], (0.12, 0.16, 0.22))
        cv2.line(img, (int(cx + 2), y - 104), (int(cx + 2), y - 72), body, 5)
        for wx in (cx - 80, cx + 80):
            cv2.circle(img, (int(wx), y - 20), 24, (0.05, 0.05, 0.05), -1)
            cv2.circle(img, (int(wx), y - 20), 11, (0.45, 0.45, 0.48), -1)
        # headlight beam ahead (the car drives to the right) and lights
        beam = np.zeros_like(img)
        poly = np.array([[cx + 130, y - 56], [cx + 520, y - 10], [cx + 520, y + 40], [cx + 130, y - 40]], np.int32)
        cv2.fillPoly(beam, [poly], (0.55, 0.52, 0.40))
        img += cv2.GaussianBlur(beam, (0, 0), 14)
        _add_glow(img, (cx + 128, y - 50), 14.0, (1.0, 1.0, 0.9), 1.2)
        _add_glow(img, (cx - 128, y - 52), 9.0, (1.0, 0.1, 0.05), 0.9)
        return float(np.clip(cx / W, 0.0, 1.0))

    def _draw_walker(self, img: np.ndarray, t: float) -> None:
        """A person walking right to left on the sidewalk, legs and arms swinging."""
        W, hz = self._W, self._horizon
        x = W * 0.85 - 70.0 * t
        foot_y = hz + 34
        hip = (x, foot_y - 70)
        shoulder = (x, foot_y - 130)
        coat = (0.18, 0.22, 0.30)
        swing = math.sin(2 * math.pi * 1.8 * t)
        for sgn in (1, -1):
            a = 0.45 * swing * sgn
            foot = (hip[0] + 70 * math.sin(a), hip[1] + 70 * math.cos(a))
            cv2.line(img, (int(hip[0]), int(hip[1])), (int(foot[0]), int(foot[1])), (0.10, 0.10, 0.14), 13)
            hand = (shoulder[0] - 55 * math.sin(0.8 * a), shoulder[1] + 55 * math.cos(0.8 * a))
            cv2.line(img, (int(shoulder[0]), int(shoulder[1]) + 6), (int(hand[0]), int(hand[1])), coat, 10)
        cv2.ellipse(img, (int(x), int(foot_y - 100)), (17, 38), 0, 0, 360, coat, -1)
        cv2.circle(img, (int(x), int(foot_y - 150)), 14, (0.62, 0.48, 0.40), -1)
        cv2.ellipse(img, (int(x), int(foot_y - 158)), (15, 8), 0, 180, 360, (0.08, 0.06, 0.05), -1)

    def frame_float(self, i: int) -> tuple[np.ndarray, float]:
        """Clean frame ``i`` as ``(height, width, 3)`` float32 in [0, 1], and the car's x fraction."""
        t = i / self.fps
        img = self._background.copy()
        self._draw_windows(img, t)
        self._draw_walker(img, t)
        car_x = self._draw_car(img, t, self.num_frames / self.fps)
        img = cv2.resize(img, (self.width, self.height), interpolation=cv2.INTER_AREA)
        return np.clip(img, 0.0, 1.0), car_x

    def frame(self, i: int) -> np.ndarray:
        """Clean frame ``i``: ``(height, width, 3)`` uint8 RGB."""
        return (self.frame_float(i)[0] * 255.0 + 0.5).astype(np.uint8)

    def frames(self) -> Iterator[np.ndarray]:
        """All clean frames in order, each ``(height, width, 3)`` uint8 RGB."""
        for i in range(self.num_frames):
            yield self.frame(i)

    def car_positions(self) -> np.ndarray:
        """The car's x position (fraction of the width, clipped to [0, 1]) at each frame."""
        span = self._W + 600
        cx = -300 + span * (np.arange(self.num_frames) / self.num_frames)
        return np.clip(cx / self._W, 0.0, 1.0)


def make_demo_audio(seconds: float, rate: int = 48000, seed: int = 2024,
                    car_pan: np.ndarray | None = None) -> np.ndarray:
    """Generated soundtrack ``(2, N)`` float32 in [-1, 1]: ambient noise, a soft tone, a passing car.

    ``car_pan`` (car x position over time, 0 = left, 1 = right) drives the car's loudness (loudest in
    the middle) and its stereo pan; the default sweeps left to right over the clip.
    """
    rng = np.random.default_rng(seed)
    n = int(round(seconds * rate))
    tt = np.arange(n, dtype=np.float64) / rate
    # ambient: white noise low-passed (first-order response, 300 Hz corner, via FFT) into a soft rumble
    white = rng.standard_normal((2, n))
    freqs = np.fft.rfftfreq(n, 1.0 / rate)
    amb = np.fft.irfft(np.fft.rfft(white, axis=1) / (1.0 + 1j * freqs / 300.0), n=n, axis=1)
    amb = amb / (np.abs(amb).max() + 1e-9) * 0.10
    # a soft tone: A2 + E3 with a slow swell
    swell = 0.5 - 0.5 * np.cos(2 * math.pi * tt / max(seconds, 1e-6))
    tone = (np.sin(2 * math.pi * 110.0 * tt) + 0.5 * np.sin(2 * math.pi * 164.8 * tt)) * 0.06 * (0.3 + 0.7 * swell)
    # the car: an engine buzz (harmonics of ~45 Hz with band noise), loudest as it passes the middle
    if car_pan is None:
        pan = np.clip(tt / seconds, 0.0, 1.0)
    else:
        pan = np.interp(tt, np.linspace(0.0, seconds, len(car_pan), endpoint=False), car_pan)
    loud = np.exp(-((pan - 0.5) ** 2) / (2 * 0.18**2))
    f0 = 45.0 * (1.0 + 0.05 * (0.5 - pan))  # slight Doppler drop
    phase = 2 * math.pi * np.cumsum(f0) / rate
    engine = sum(np.sin(k * phase) / k for k in range(1, 6)) * 0.12 + 0.05 * rng.standard_normal(n)
    engine = engine * loud
    left = amb[0] + tone + engine * np.sqrt(1.0 - pan)
    right = amb[1] + tone + engine * np.sqrt(pan)
    audio = np.stack([left, right]).astype(np.float32)
    fade = np.minimum(1.0, np.minimum(tt, seconds - tt) / 0.25).astype(np.float32)  # 250 ms fades
    return np.clip(audio * fade, -1.0, 1.0)


def demo_frames(scene: NightScene, params: LowLightParams = DEMO_PARAMS,
                seed: int = 2024) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """``(clean, dark)`` pairs of ``(H, W, 3) uint8`` frames; fresh, seeded sensor noise per frame."""
    noise_rng = np.random.default_rng(seed + 1)
    for i in range(scene.num_frames):
        clean = scene.frame(i)
        yield clean, simulate_low_light(clean, params, rng=noise_rng)


def write_demo_clip(path: str | Path | None = None, *, width: int = 640, height: int = 360, fps: int = 24,
                    seconds: float = 6.0, seed: int = 2024, params: LowLightParams = DEMO_PARAMS,
                    crf: int = 22, keep_clean: bool = False) -> tuple[Path, list[np.ndarray] | None]:
    """Render, darken and encode the demo clip (H.264 yuv420p + AAC stereo 48 kHz) to ``path``.

    Deterministic for a given ``seed``: the scene, the sensor noise of every frame (fresh per frame,
    drawn from one seeded generator) and the soundtrack. libx264 runs single-threaded; the bitstream
    has come out byte-identical across regenerations of the full clip, though rare runs on tiny
    clips have differed by a few encoder decisions, so compare decoded pictures, not bytes. With ``keep_clean`` the clean (pre-darkening) frames are returned
    in memory (``(H, W, 3) uint8`` each); they are never written.
    """
    path = Path(path) if path is not None else demo_clip_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    scene = NightScene(width, height, fps, seconds, seed)
    clean_frames: list[np.ndarray] | None = [] if keep_clean else None
    audio_rate = 48000
    audio = make_demo_audio(scene.num_frames / fps, audio_rate, seed, scene.car_positions())

    tmp = path.with_name(path.name + ".part.mp4")
    with av.open(str(tmp), mode="w") as out:
        out.metadata["title"] = "lowlight-rt demo: procedural night street (synthetic low light)"
        out.metadata["comment"] = f"generated by lowlight_rt.demo, seed {seed}"
        vs = out.add_stream("libx264", rate=fps)
        vs.width, vs.height, vs.pix_fmt = width, height, "yuv420p"
        vs.time_base = Fraction(1, fps)
        vs.options = {"crf": str(crf), "preset": "medium", "threads": "1"}
        aus = out.add_stream("aac", rate=audio_rate)
        aus.layout = "stereo"
        aus.bit_rate = 96000
        for i, (clean, dark) in enumerate(demo_frames(scene, params, seed)):
            if clean_frames is not None:
                clean_frames.append(clean)
            vf = av.VideoFrame.from_ndarray(dark, format="rgb24")
            vf.pts = i
            vf.time_base = Fraction(1, fps)
            for pkt in vs.encode(vf.reformat(format="yuv420p")):
                out.mux(pkt)
        for pkt in vs.encode(None):
            out.mux(pkt)
        step = 1024
        for start in range(0, audio.shape[1], step):
            chunk = np.ascontiguousarray(audio[:, start:start + step])
            af = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="stereo")
            af.sample_rate = audio_rate
            af.pts = start
            af.time_base = Fraction(1, audio_rate)
            for pkt in aus.encode(af):
                out.mux(pkt)
        for pkt in aus.encode(None):
            out.mux(pkt)
    tmp.replace(path)
    return path, clean_frames


def probe_clip(path: str | Path) -> dict:
    """Decodes the clip fully and returns counts: video frames, audio packets / samples, mean luma."""
    video_frames = audio_packets = audio_samples = 0
    luma_sum = 0.0
    with av.open(str(path)) as c:
        vstream, astream = c.streams.video[0], c.streams.audio[0]
        size = (vstream.codec_context.width, vstream.codec_context.height)
        for pkt in c.demux(vstream, astream):
            if pkt.stream.type == "audio" and pkt.size > 0:
                audio_packets += 1
            for fr in pkt.decode():
                if pkt.stream.type == "video":
                    video_frames += 1
                    luma_sum += float(fr.to_ndarray(format="gray").mean()) / 255.0
                else:
                    audio_samples += fr.samples
    return {"video_frames": video_frames, "audio_packets": audio_packets, "audio_samples": audio_samples,
            "mean_luma": luma_sum / max(video_frames, 1), "size": size, "bytes": Path(path).stat().st_size}


def main(argv: list[str] | None = None) -> int:
    """``python -m lowlight_rt.demo [--regenerate] [--out PATH]``: build and/or probe the demo clip."""
    ap = argparse.ArgumentParser(prog="python -m lowlight_rt.demo", description=__doc__.split("\n")[0])
    ap.add_argument("--regenerate", action="store_true", help="render and encode the clip again")
    ap.add_argument("--out", type=Path, default=None, help="where to write it (default: the bundled path)")
    ap.add_argument("--seed", type=int, default=2024)
    args = ap.parse_args(argv)
    path = args.out or demo_clip_path()
    if args.regenerate or not path.exists():
        write_demo_clip(path, seed=args.seed)
    info = probe_clip(path)
    print(f"{path}: {info['size'][0]}x{info['size'][1]}, {info['video_frames']} frames, "
          f"{info['audio_packets']} audio packets ({info['audio_samples']} samples), "
          f"mean luma {info['mean_luma']:.3f}, {info['bytes'] / 1e6:.2f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
