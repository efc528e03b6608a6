"""No systematic brightness / colour bias anywhere between the input file and the output file.

``--strength 0`` must give back the input (it used to come out ~1 code darker in luma: swscale's
default YUV -> RGB path truncates), and the operator application must not shift levels at any
strength. Means are compared against float references; a bias is a mean error, a rounding error
of up to half a code per pixel is fine.
"""

from __future__ import annotations

import os

import av
import numpy as np
import pytest
import torch

from lowlight_rt.cli import main
from lowlight_rt.inference import Engine, apply_operator_numpy
from lowlight_rt.frames import SWS_TO_RGB, FixedShape, Frame
from lowlight_rt.models.affine import AffineOperatorModel
from lowlight_rt.models.base import EnhancementModel
from lowlight_rt.sinks import VideoFileSink
from lowlight_rt.sources import open_source
from tests import media

BT709 = (0.2126, 0.7152, 0.0722)


def exact_rgb(path) -> np.ndarray:
    """Every frame of ``path`` decoded with rounding (not swscale's truncating default), float64."""
    with av.open(os.fspath(path)) as c:
        return np.stack([f.to_ndarray(format="rgb24", interpolation=SWS_TO_RGB)
                         for f in c.decode(video=0)]).astype(np.float64)


def luma(rgb: np.ndarray) -> np.ndarray:
    return rgb @ np.array(BT709)


def planes(frame: av.VideoFrame) -> list[np.ndarray]:
    """Y, U, V of a yuv420p frame as float64 arrays (no conversion)."""
    return [np.frombuffer(p, np.uint8).reshape(-1, p.line_size)[: p.height, : p.width].astype(np.float64)
            for p in frame.planes[:3]]


def float_rgb_from_yuv420p(frame: av.VideoFrame) -> np.ndarray:
    """The exact BT.601 limited-range conversion (what an untagged clip means), chroma replicated."""
    y, u, v = planes(frame)
    u = np.repeat(np.repeat(u, 2, 0), 2, 1)[: y.shape[0], : y.shape[1]] - 128.0
    v = np.repeat(np.repeat(v, 2, 0), 2, 1)[: y.shape[0], : y.shape[1]] - 128.0
    kr, kb = 0.299, 0.114
    kg = 1.0 - kr - kb
    yy, cs = (y - 16.0) * 255.0 / 219.0, 255.0 / 224.0
    r = yy + 2 * (1 - kr) * cs * v
    g = yy - 2 * (1 - kb) * kb / kg * cs * u - 2 * (1 - kr) * kr / kg * cs * v
    b = yy + 2 * (1 - kb) * cs * u
    return np.clip(np.stack([r, g, b], -1), 0, 255)


@pytest.fixture(scope="module")
def dark_clip(tmp_path_factory):
    """320x192, 20 frames, dark and noisy, H.264 4:2:0 untagged (BT.601), with audio."""
    return media.make_clip(tmp_path_factory.mktemp("fidelity") / "dark.mp4", width=320, height=192,
                           frames=20, seed=11)


# -- the three conversions, one by one ----------------------------------------------------------------
def test_decoded_frames_are_not_darkened(dark_clip):
    """A source's RGB frames have the mean of the exact conversion of the decoded YUV (was -1.3)."""
    with av.open(os.fspath(dark_clip)) as c:
        reference = [float_rgb_from_yuv420p(f) for f in c.decode(video=0)]
    source = open_source(dark_clip)
    try:
        got = [f.image.astype(np.float64) for f in source]
    finally:
        source.stop()
    assert len(got) == len(reference) == 20
    error = np.stack(got) - np.stack(reference)
    assert abs(luma(error).mean()) < 0.05, luma(error).mean()
    assert np.abs(error.mean(axis=(0, 1, 2))).max() < 0.1, error.mean(axis=(0, 1, 2))


def test_downscaled_processing_frames_are_not_darkened(dark_clip):
    """``Frame.proc`` (what the network sees) has the full-resolution frame's brightness."""
    source = open_source(dark_clip, proc_shape=FixedShape(96))
    try:
        frames = list(source)
    finally:
        source.stop()
    assert frames[0].proc is not None and frames[0].proc.shape[0] == 96
    full = np.mean([luma(f.image.astype(np.float64)).mean() for f in frames])
    proc = np.mean([luma(f.proc.astype(np.float64)).mean() for f in frames])
    assert abs(proc - full) < 0.1, (proc, full)


def test_video_sink_writes_unbiased_luma_and_chroma(tmp_path):
    """RGB -> yuv420p in the sink: Y has the exact BT.709 mean; a round trip keeps R, G and B."""
    rng = np.random.default_rng(3)
    images = [media.make_frame(i, 320, 192, rng=rng) for i in range(6)]
    out = tmp_path / "lossless.mp4"
    sink = VideoFileSink(out, 320, 192, time_base=None, fps=30, crf=0, preset="ultrafast")
    for i, img in enumerate(images):
        sink.write(Frame(image=img, index=i), img)
    sink.close()
    with av.open(os.fspath(out)) as c:
        decoded = list(c.decode(video=0))
    assert len(decoded) == len(images)
    y_written = np.mean([planes(f)[0].mean() for f in decoded])
    y_exact = np.mean([16.0 + luma(img.astype(np.float64)).mean() * 219.0 / 255.0 for img in images])
    assert abs(y_written - y_exact) < 0.05, (y_written, y_exact)
    back = exact_rgb(out)
    error = (back - np.stack(images).astype(np.float64)).mean(axis=(0, 1, 2))
    assert np.abs(error).max() < 0.05, error  # swscale's default path: -0.11


# -- end to end through the command --------------------------------------------------------------------
def test_strength_zero_gives_back_the_input_luma(capsys, dark_clip, tmp_path):
    """The issue's check: a clip through ``lowlight-rt --strength 0`` keeps its mean luma (was -1.1)."""
    out = tmp_path / "s0.mp4"
    code = main(["-q", "--input", os.fspath(dark_clip), "--out", os.fspath(out), "--strength", "0"])
    assert code == 0, capsys.readouterr().err
    a, b = exact_rgb(dark_clip), exact_rgb(out)
    assert a.shape == b.shape
    assert abs(luma(b).mean() - luma(a).mean()) < 0.2, (luma(b).mean(), luma(a).mean())
    per_frame = luma(b).mean(axis=(1, 2)) - luma(a).mean(axis=(1, 2))
    assert np.abs(per_frame).max() < 0.3, per_frame
    assert np.abs((b - a).mean(axis=(0, 1, 2))).max() < 0.3  # each channel


# -- the operator application ---------------------------------------------------------------------------
class ConstantOperator(AffineOperatorModel):
    """``offset + gain * x`` with constants (``offset`` in 0..1 units), on a coarse grid."""

    default_proc_size = None

    def __init__(self, gain: float = 1.0, offset: float = 0.0) -> None:
        super().__init__(gain=gain, offset=offset)
        self.gain, self.offset = gain, offset

    def predict_operator(self, low: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, _, h, w = low.shape
        grid = (max(1, h // 4), max(1, w // 4))
        return (low.new_full((b, 3, *grid), self.offset), low.new_full((b, 1, *grid), self.gain))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.enhance(x)


class IdentityModel(EnhancementModel):
    """A non-operator model (generic ``enhance`` path) that returns its input."""

    default_proc_size = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def _noisy(seed: int = 0, h: int = 72, w: int = 120) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_identity_operator_returns_the_exact_input():
    image = _noisy()
    out = apply_operator_numpy(image, np.zeros((9, 15, 3), np.float32), np.ones((9, 15, 1), np.float32))
    assert np.array_equal(out, image)


@pytest.mark.parametrize("strength", [0.0, 0.25, 0.5, 1.0])
@pytest.mark.parametrize("model", [ConstantOperator(1.0, 0.0), IdentityModel()], ids=["operator", "generic"])
def test_identity_models_return_the_exact_input_at_every_strength(model, strength):
    engine = Engine(model, device="cpu", threads=1, proc_size=0, strength=strength)
    image = _noisy(1)
    assert np.array_equal(engine.enhance([Frame(image=image, index=0)])[0], image)


@pytest.mark.parametrize("strength", [0.5, 1.0])
@pytest.mark.parametrize("gain,offset", [(1.7, 3.3 / 255), (0.8, -2.2 / 255), (2.3, 0.0)])
def test_operator_application_has_no_systematic_bias(gain, offset, strength):
    """Output mean = the float result's mean (rounding to nearest; no truncation) at any strength."""
    engine = Engine(ConstantOperator(gain, offset), device="cpu", threads=1, proc_size=0, strength=strength)
    rng = np.random.default_rng(5)
    image = np.clip(rng.normal(60, 25, (96, 160, 3)), 0, 255).astype(np.uint8)  # no clipping at 255
    g = 1.0 + strength * (gain - 1.0)
    expected = np.clip(strength * offset * 255.0 + g * image.astype(np.float64), 0, 255)
    out = engine.enhance([Frame(image=image, index=0)])[0].astype(np.float64)
    assert np.abs(out - expected).max() <= 0.5 + 1e-3
    assert abs((out - expected).mean()) < 0.02, (out - expected).mean()
