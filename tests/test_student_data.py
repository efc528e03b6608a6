"""The student's data and judging tools: H.264 night-video synthesis, teacher-target fusion and clean-up,
reference-free video measures, the acceptance gate's criteria. Generated data only (no ../shared)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lowlight_rt.models import create_model
from lowlight_rt.synth import LowLightParams, sample_params, simulate_low_light
from tests import media
from training.acceptance import criteria
from training.data.targets import clean_target, fuse_teachers, set_black_point
from training.video_eval import (block_grid, chroma_deviation, clip_share, dark_cast, enhance_video, luma,
                                 video_measures)


pytestmark = pytest.mark.usefixtures("one_thread")


def _scene(h: int = 64, w: int = 96) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([60 + 150 * xx / w, 80 + 100 * yy / h, 120 + 60 * np.sin(xx / 7.0)], -1)
    return img.clip(0, 255).astype(np.uint8)


# -- measures ------------------------------------------------------------------------------------
def test_luma_and_chroma_of_grey_and_colour():
    grey = np.full((4, 4, 3), 100, np.uint8)
    assert np.allclose(luma(grey), 100, atol=1e-3) and np.allclose(chroma_deviation(grey), 0, atol=1e-3)
    red = np.zeros((1, 1, 3), np.uint8)
    red[..., 0] = 255
    assert chroma_deviation(red)[0, 0] > 150


def test_dark_cast_only_counts_near_black_input():
    inp = np.full((8, 8, 3), 5, np.uint8)
    inp[:, 4:] = 200                                  # bright half: not counted
    out = np.full((8, 8, 3), 60, np.uint8)
    out[:, :4, 2] = 90                                # a blue cast painted into the dark half
    out[:, 4:, 0] = 250                               # bright half strongly coloured: ignored
    assert dark_cast(inp, out) == pytest.approx(30 * (0.5 + 0.081312), abs=0.05)
    assert np.isnan(dark_cast(np.full((4, 4, 3), 200, np.uint8), out[:4, :4]))


def test_block_grid_sees_an_8px_grid_and_not_a_smooth_ramp():
    ramp = np.tile(np.linspace(0, 200, 128)[None, :, None], (16, 1, 3)).astype(np.uint8)
    blocky = np.repeat(np.arange(16) * 12, 8)[None, :, None].repeat(16, 0).repeat(3, 2).astype(np.uint8)
    assert abs(block_grid(ramp)) < 0.3       # 8-bit rounding of the ramp only
    assert block_grid(blocky) > 5


def test_clip_share_counts_any_channel_at_255():
    img = np.zeros((2, 2, 3), np.uint8)
    img[0, 0, 1] = 255
    assert clip_share(img) == 0.25


def test_video_measures_on_a_generated_clip(tmp_path):
    clip = media.make_clip(tmp_path / "dark.mp4", width=96, height=64, frames=12, audio=False)
    keep: list = []
    fixed = video_measures(enhance_video(create_model("classical"), clip), keep=keep, keep_every=5)
    unfixed = video_measures(enhance_video(create_model("classical", grey_colour=0.0), clip))
    assert fixed.frames == 12 and len(keep) == 3
    assert fixed.luma_out > 2 * fixed.luma_in
    for m in (fixed, unfixed):
        assert np.isfinite([m.flicker, m.block, m.clip_added]).all()
    assert fixed.dark_cast <= unfixed.dark_cast + 1e-6


# -- H.264 night-video synthesis -------------------------------------------------------------------
def test_h264_stage_adds_blocks_and_its_chroma_bias():
    img = _scene()
    clean = simulate_low_light(img, exposure=0.05, read_noise=0.0, shot_noise=1e6, rng=0)
    coded = simulate_low_light(img, exposure=0.05, read_noise=0.0, shot_noise=1e6, video_crf=40,
                               chroma_bias=(0.0, 4.0), rng=0)
    assert coded.shape == img.shape and coded.dtype == np.uint8
    f = coded.astype(np.float32)
    cr = f @ np.array([0.5, -0.418688, -0.081312], np.float32)
    cr0 = clean.astype(np.float32) @ np.array([0.5, -0.418688, -0.081312], np.float32)
    assert cr.mean() - cr0.mean() > 2.0                        # the Cr bias survives the round trip
    odd = simulate_low_light(_scene(33, 47), video_crf=30, rng=1)
    assert odd.shape == (33, 47, 3)                            # odd sizes padded for 4:2:0 and cropped back


def test_h264_parameters_are_validated_and_drawn():
    with pytest.raises(ValueError):
        LowLightParams(video_crf=60)
    with pytest.raises(ValueError):
        LowLightParams(chroma_bias=(1.0, 1.0))                 # a bias needs the H.264 stage
    rng = np.random.default_rng(0)
    draws = [sample_params(rng, video_share=0.5) for _ in range(200)]
    coded = [p for p in draws if p.video_crf is not None]
    assert 60 < len(coded) < 140 and all(24 <= p.video_crf <= 40 and p.jpeg_quality is None for p in coded)
    assert all(p.video_crf is None for p in (sample_params(rng) for _ in range(50)))


# -- teacher targets -------------------------------------------------------------------------------
def test_fusion_outvotes_a_single_teacher_cast():
    good = np.full((4, 4, 3), 0.4, np.float32)
    purple = good.copy()
    purple[..., [0, 2]] = 0.9
    assert np.allclose(fuse_teachers([good, good * 1.02, purple]), good * 1.02, atol=1e-6)
    assert np.allclose(fuse_teachers([good, purple]), (good + purple) / 2)
    with pytest.raises(ValueError):
        fuse_teachers([])


def test_clean_target_neutral_blacks_kept_highlights_exposure_limit():
    low = np.full((32, 64, 3), 0.005, np.float32)
    low[:, 32:] = 0.8                                        # a well-lit half
    target = np.zeros_like(low)
    target[:, :32] = (0.35, 0.2, 0.45)                       # the teacher painted the black half purple
    target[:, 32:] = 1.0                                     # and blew the lit half out
    out = clean_target(low, target, denoise=0).astype(np.float32)
    assert chroma_deviation(out[:, :16].astype(np.uint8)).max() < 2.0   # grey where the input was black
    assert abs(out[:, 48:].mean() / 255 - 0.8) < 0.05                   # lit half back to the input
    bright = clean_target(np.full((8, 8, 3), 0.1, np.float32), np.full((8, 8, 3), 0.9, np.float32), denoise=0)
    assert abs(luma(bright).mean() / 255 - 0.42) < 0.01                 # exposure limited



def test_black_point_darkens_lifted_blacks_and_keeps_brightness():
    low = np.full((32, 64, 3), 0.005, np.float32)           # left half: black, no signal
    low[:, 32:] = np.linspace(0.05, 0.3, 32, dtype=np.float32)[None, :, None]
    target = np.empty_like(low)
    target[:, :32] = 0.2                                     # the teacher lifted black to grey 51
    target[:, 32:] = np.linspace(0.3, 0.9, 32, dtype=np.float32)[None, :, None]
    out = set_black_point(low, target)
    y_in, y_out = target @ np.array([0.299, 0.587, 0.114], np.float32), out @ np.array([0.299, 0.587, 0.114], np.float32)
    assert y_out[:, :32].mean() < 0.1                        # black is dark again (0.2 before) ...
    assert y_out[:, :32].mean() > 0.02                       # ... with a soft toe, not a clip to 0
    assert np.all(np.diff(y_out[0, 32:]) > 0)                # the lit half keeps its order (monotone curve)
    assert y_out[:, 32:].mean() > y_in[:, 32:].mean() - 0.05 # and about its brightness
    assert out.max() <= 1.0 and out[0, -1].mean() >= 0.88              # highlights not dimmed
    # nothing to do where the teacher kept black black, or where the input shows no black at all
    kept = target.copy()
    kept[:, :32] = 0.01
    assert np.array_equal(set_black_point(low, kept), kept)
    lit = np.full((8, 8, 3), 0.5, np.float32)
    assert abs(float(set_black_point(lit, lit).mean()) - 0.5) < 0.02


# -- the gate ----------------------------------------------------------------------------------------
def _report(student_psnr: float, flicker: float, dark: float) -> dict:
    paired = {"sice": {"student": {"psnr": student_psnr, "ssim": 0.7}, "classical": {"psnr": 16.0, "ssim": 0.6}}}
    video = {"ken2190_night_yard_1080p": {
        "student": {"clip_added": 0.1, "dark_cast": dark, "block": 0.1, "luma_out": 40.0, "flicker": flicker},
        "classical": {"flicker": 0.7, "block": 0.12}, "classical-nofix": {"block": 1.0}}}
    return {"paired": paired, "identity": {"sice_normal": {"student": {"psnr_vs_input": 30.0}}},
            "real": {"dicm": {"student": {"clip_added": 0.2}}}, "video": video}


def test_gate_criteria_pass_and_fail():
    ok = criteria(_report(18.0, 0.6, 3.0))
    assert ok and all(c["pass"] for c in ok)
    bad = {c["what"]: c["pass"] for c in criteria(_report(17.0, 0.8, 7.0))}
    assert not bad["sice: PSNR student - classical (dB)"]
    assert not bad["ken2190_night_yard_1080p: flicker (<= classical's)"]
    assert not bad["ken2190_night_yard_1080p: dark_cast"]


def test_enhance_video_denoises_like_the_runtime(tmp_path):
    """The gate's video path ends in the runtime's temporal denoiser: a static, noisy dark clip flickers less."""
    import av

    rng = np.random.default_rng(0)
    scene = np.zeros((96, 128, 3), np.float32)
    scene[:, :64] = 30.0
    scene[30:70, 80:120] = 55.0
    clip = tmp_path / "static_noisy.mp4"
    with av.open(str(clip), "w") as out:
        stream = out.add_stream("libx264", rate=24, options={"crf": "4", "preset": "ultrafast"})
        stream.width, stream.height, stream.pix_fmt = 128, 96, "yuv420p"
        for _ in range(16):
            noisy = np.clip(scene + rng.normal(0, 4, scene.shape), 0, 255).astype(np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(noisy, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    model = create_model("classical")
    on = video_measures(enhance_video(model, clip))
    off = video_measures(enhance_video(model, clip, denoise=False))
    assert on.frames == off.frames == 16
    assert on.flicker < 0.7 * off.flicker, (on.flicker, off.flicker)
    assert abs(on.luma_out - off.luma_out) < 2.0
