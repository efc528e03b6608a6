"""The temporal denoiser of the engine's output (lowlight_rt/inference/temporal_denoise.py)."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from lowlight_rt.cli import build_parser, config_from_args
from lowlight_rt.frames import Frame, YuvPlanes
from lowlight_rt.inference import Engine
from lowlight_rt.inference.temporal_denoise import SIGMA_FULL, SIGMA_OFF, TemporalDenoiser, noise_sigma
from lowlight_rt.models import EnhancementModel

H, W = 96, 128


def _scene(h: int = H, w: int = W) -> np.ndarray:
    """A clean ``(h, w)`` float scene: a gradient with hard-edged blocks (edges must not read as noise)."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    scene = 60.0 + 80.0 * xx / w
    scene[(yy // 16 + xx // 16) % 2 == 0] += 50.0
    return scene


def _noisy(clean: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    return np.clip(np.rint(clean + rng.normal(0.0, sigma, clean.shape)), 0, 255).astype(np.uint8)


def _planes(y: np.ndarray, u: np.ndarray, v: np.ndarray) -> YuvPlanes:
    return YuvPlanes(y, u, v, "bt709")


# -- noise estimate -------------------------------------------------------------------------------------
@pytest.mark.parametrize("sigma", [2.0, 4.0, 8.0])
def test_noise_sigma_measures_white_noise_and_ignores_edges(sigma):
    rng = np.random.default_rng(0)
    measured = noise_sigma(_noisy(_scene(240, 320), sigma, rng))
    assert abs(measured - sigma) < 0.2 * sigma + 0.3, measured


def test_noise_sigma_of_clean_edges_is_small_and_inputs_checked():
    assert noise_sigma(_scene(240, 320).astype(np.uint8)) < 0.5
    with pytest.raises(ValueError):
        noise_sigma(np.zeros((8, 8, 3), np.uint8))


# -- the filter -----------------------------------------------------------------------------------------
def _residual_noise(outputs: list[np.ndarray], clean: np.ndarray) -> float:
    return float(np.std(np.stack(outputs[10:]).astype(np.float32) - clean[None]))


def test_static_noisy_video_is_averaged_rgb():
    rng = np.random.default_rng(1)
    clean = np.repeat(_scene()[..., None], 3, axis=2)
    den = TemporalDenoiser()
    inputs = [_noisy(clean, 6.0, rng) for _ in range(30)]
    outputs = [den(x) for x in inputs]
    assert all(o.shape == x.shape and o.dtype == np.uint8 for o, x in zip(outputs, inputs))
    before, after = _residual_noise(inputs, clean), _residual_noise(outputs, clean)
    assert after < 0.55 * before, (before, after)
    assert den.weight == pytest.approx(den.alpha)


def test_static_noisy_video_is_averaged_yuv_in_every_plane():
    rng = np.random.default_rng(2)
    y, c = _scene(), np.full((H // 2, W // 2), 128.0)
    den = TemporalDenoiser()
    inputs = [_planes(_noisy(y, 6.0, rng), _noisy(c, 4.0, rng), _noisy(c, 4.0, rng)) for _ in range(30)]
    outputs = [den(p) for p in inputs]
    assert isinstance(outputs[-1], YuvPlanes) and outputs[-1].matrix == "bt709"
    for name, clean in (("y", y), ("u", c), ("v", c)):
        before = _residual_noise([getattr(p, name) for p in inputs], clean)
        after = _residual_noise([getattr(p, name) for p in outputs], clean)
        assert after < 0.6 * before, (name, before, after)


def test_moving_object_leaves_no_trail():
    """A bright square moving 12 px a frame over a noisy background: where it was, the output is
    background again at once, and where it is, it is the new frame."""
    rng = np.random.default_rng(3)
    background = np.full((H, W), 70.0)
    den = TemporalDenoiser()
    for t in range(14):
        clean = background.copy()
        x0 = 4 + 12 * (t % 7)
        clean[30:60, x0:x0 + 20] = 200.0
        out = den(np.repeat(_noisy(clean, 5.0, rng)[..., None], 3, axis=2))[..., 0].astype(np.float32)
        if t % 7 == 0:
            continue
        vacated = np.zeros((H, W), bool)
        vacated[30:60, x0 - 12:x0] = True
        assert np.abs(out[vacated] - 70.0).mean() < 6.0, t          # no ghost of the square
        assert np.abs(out[30:60, x0 + 2:x0 + 18] - 200.0).mean() < 6.0, t   # the square where it is now


def test_clean_video_passes_unchanged():
    den = TemporalDenoiser()
    clean = np.repeat(_scene()[..., None], 3, axis=2).astype(np.uint8)
    for i in range(6):
        frame = np.roll(clean, i, axis=1)
        assert den(frame) is frame
    assert den.sigma < SIGMA_OFF and den.weight == 1.0


def test_strength_ramps_between_the_noise_levels():
    den = TemporalDenoiser(alpha=0.25)
    assert den._weight(SIGMA_OFF) == 1.0
    assert den._weight(SIGMA_FULL) == pytest.approx(0.25)
    assert 0.25 < den._weight((SIGMA_OFF + SIGMA_FULL) / 2) < 1.0
    den.weight = den._weight((SIGMA_OFF + SIGMA_FULL) / 2)
    assert den.strength == pytest.approx(0.5)
    assert TemporalDenoiser(alpha=1.0).strength == 0.0


def test_reset_size_change_and_bad_inputs():
    rng = np.random.default_rng(4)
    den = TemporalDenoiser()
    clean = np.repeat(_scene()[..., None], 3, axis=2)
    for _ in range(5):
        den(_noisy(clean, 6.0, rng))
    first = _noisy(clean, 6.0, rng)
    den.reset_state()
    assert den(first) is first                      # no past after a reset
    small = _noisy(clean[:48, :64], 6.0, rng)
    assert den(small) is small                      # a new size starts over
    tiny = np.zeros((4, 4, 3), np.uint8)
    assert den(tiny) is tiny
    with pytest.raises(ValueError):
        den(np.zeros((8, 8), np.uint8))
    with pytest.raises(ValueError):
        TemporalDenoiser(alpha=0.0)


# -- in the engine --------------------------------------------------------------------------------------
class Brighten(EnhancementModel):
    """A non-operator model: ``min(1, 3 x)`` (the noise is brightened with the picture)."""

    default_proc_size = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (3.0 * x).clamp(0, 1)


def _dark_frames(n: int, seed: int = 5) -> tuple[list[Frame], np.ndarray]:
    rng = np.random.default_rng(seed)
    clean = np.repeat(_scene()[..., None], 3, axis=2) / 3.0
    return [Frame(image=_noisy(clean, 2.0, rng), index=i) for i in range(n)], clean * 3.0


def test_engine_denoises_video_by_default_and_not_when_off():
    frames, clean = _dark_frames(24)
    on = Engine(Brighten(), device="cpu", threads=1)
    off = Engine(Brighten(), device="cpu", threads=1, denoise=False)
    assert on.denoise and not off.denoise
    out_on = [on.enhance([f])[0] for f in frames]
    out_off = [off.enhance([f])[0] for f in frames]
    assert _residual_noise(out_on, clean) < 0.6 * _residual_noise(out_off, clean)
    on.denoise = False
    f = frames[0]
    np.testing.assert_array_equal(on.enhance([f])[0], off.enhance([f])[0])


def test_engine_never_denoises_still_images():
    frames, _ = _dark_frames(8)
    on = Engine(Brighten(), device="cpu", threads=1)
    off = Engine(Brighten(), device="cpu", threads=1, denoise=False)
    for f in frames:
        f.name = f"photo{f.index}.png"
        np.testing.assert_array_equal(on.enhance([f])[0], off.enhance([f])[0])


def test_engine_reset_state_forgets_the_past():
    frames, _ = _dark_frames(8)
    engine = Engine(Brighten(), device="cpu", threads=1)
    reference = Engine(Brighten(), device="cpu", threads=1, denoise=False).enhance([frames[-1]])[0]
    for f in frames[:-1]:
        engine.enhance([f])
    engine.reset_state()
    np.testing.assert_array_equal(engine.enhance([frames[-1]])[0], reference)


def test_cli_denoise_flag():
    parser = build_parser()
    assert config_from_args(parser.parse_args(["--input", "x.mp4"])).denoise is True
    assert config_from_args(parser.parse_args(["--input", "x.mp4", "--no-denoise"])).denoise is False


def test_run_summary_says_what_the_denoiser_did(tmp_path):
    from pathlib import Path

    from lowlight_rt.jobs import summary_text
    from lowlight_rt.pipeline import PipelineStats

    frames, _ = _dark_frames(6)
    engine = Engine(Brighten(), device="cpu", threads=1)
    for f in frames:
        engine.enhance([f])
    assert engine.denoiser.seen == 6 and engine.denoiser.filtered == 5   # the first frame has no past
    text = summary_text(PipelineStats(), engine, "brighten", Path("out.mp4"), "done")
    assert "denoise         5 of 6 frames filtered; output noise" in text
    engine.reset_state()
    assert engine.denoiser.seen == 6          # run totals survive a reset of the filter's past
    engine.denoise = False
    assert "denoise         off" in summary_text(PipelineStats(), engine, "brighten", Path("out.mp4"), "done")
    stills = Engine(Brighten(), device="cpu", threads=1)
    assert "denoise" not in summary_text(PipelineStats(), stills, "brighten", Path("out"), "done")


# -- end to end: a file job through the pipeline (YUV path, worker's finishing thread) -------------------
def _static_noisy_clip(path, frames: int = 20):
    import av

    rng = np.random.default_rng(8)
    scene = np.repeat((_scene() / 3.0)[..., None], 3, axis=2)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=24, options={"crf": "4", "preset": "ultrafast"})
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        for _ in range(frames):
            frame = av.VideoFrame.from_ndarray(_noisy(scene, 3.0, rng), format="rgb24")
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def test_file_job_writes_denoised_video_and_says_so(tmp_path, capsys):
    import av

    from lowlight_rt.cli import main

    clip = _static_noisy_clip(tmp_path / "noisy.mp4")
    temporal_noise = {}
    for flag in ("--denoise", "--no-denoise"):
        out = tmp_path / f"out{flag}.mp4"
        assert main(["--input", str(clip), "--out", str(out), "--model", "classical", flag]) == 0
        err = capsys.readouterr().err
        with av.open(str(out)) as c:
            ys = np.stack([f.to_ndarray(format="gray").astype(np.float32) for f in c.decode(video=0)])
        assert len(ys) == 20
        temporal_noise[flag] = float(ys[8:].std(axis=0).mean())      # a static scene: change over time is noise
        if flag == "--denoise":
            assert re.search(r"denoise +(1[5-9]|20) of 20 frames filtered; output noise", err), err
        else:
            assert "denoise         off" in err, err
    assert temporal_noise["--denoise"] < 0.6 * temporal_noise["--no-denoise"], temporal_noise
