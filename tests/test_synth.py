"""The physically-motivated low-light model (lowlight_rt.synth)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lowlight_rt.synth import (
    LowLightModel,
    LowLightParams,
    linear_to_srgb,
    sample_params,
    simulate_low_light,
    srgb_to_linear,
)


def _picture(h: int = 48, w: int = 64, seed: int = 0) -> np.ndarray:
    """A well-lit test picture: gradients plus texture, (H, W, 3) uint8."""
    r = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = np.stack([xx / w, yy / h, 0.5 + 0.3 * np.sin(xx / 5.0)], axis=-1)
    img = 0.25 + 0.6 * base + 0.05 * r.standard_normal((h, w, 3))
    return (np.clip(img, 0, 1) * 255).round().astype(np.uint8)


def test_srgb_round_trip():
    x = torch.rand(2, 3, 8, 8)
    assert torch.allclose(linear_to_srgb(srgb_to_linear(x)), x, atol=1e-5)
    # EOTF is the real sRGB curve, not a plain power: mid-grey 0.5 -> 0.214.
    assert srgb_to_linear(torch.full((1, 3, 1, 1), 0.5))[0, 0].item() == pytest.approx(0.2140, abs=1e-3)


def test_output_is_darker_and_same_shape_dtype():
    img = _picture()
    dark = simulate_low_light(img, exposure=0.05, rng=0)
    assert dark.shape == img.shape and dark.dtype == np.uint8
    assert dark.mean() < 0.5 * img.mean()
    t = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255
    dt = simulate_low_light(t, exposure=0.05, rng=0)
    assert dt.shape == t.shape and dt.dtype == torch.float32
    assert 0.0 <= dt.min() and dt.max() <= 1.0
    assert dt.mean() < 0.5 * t.mean()


def test_darker_with_lower_exposure():
    img = _picture()
    means = [simulate_low_light(img, exposure=e, rng=1).mean() for e in (0.3, 0.1, 0.03)]
    assert means[0] > means[1] > means[2]


def _noise_var(flat_value: float, **kw) -> float:
    img = np.full((64, 64, 3), flat_value, np.uint8)
    out = simulate_low_light(img, rng=3, **kw).astype(np.float64)
    return float(out.var())


def test_noise_variance_increases_with_gain_and_fewer_photons():
    v_g1 = _noise_var(200, exposure=0.05, gain=1.0, shot_noise=2000, read_noise=0.001)
    v_g4 = _noise_var(200, exposure=0.05, gain=4.0, shot_noise=2000, read_noise=0.001)
    assert v_g4 > 2 * v_g1
    v_many = _noise_var(200, exposure=0.05, shot_noise=50000, read_noise=0.0)
    v_few = _noise_var(200, exposure=0.05, shot_noise=500, read_noise=0.0)
    assert v_few > 4 * v_many
    v_r0 = _noise_var(200, exposure=0.05, shot_noise=50000, read_noise=0.0)
    v_r1 = _noise_var(200, exposure=0.05, shot_noise=50000, read_noise=0.01)
    assert v_r1 > 2 * v_r0


def test_deterministic_with_seed_and_differs_without():
    img = _picture()
    a = simulate_low_light(img, exposure=0.05, rng=42)
    b = simulate_low_light(img, exposure=0.05, rng=42)
    c = simulate_low_light(img, exposure=0.05, rng=43)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    ga = simulate_low_light(img, exposure=0.05, rng=np.random.default_rng(5))
    gb = simulate_low_light(img, exposure=0.05, rng=np.random.default_rng(5))
    assert np.array_equal(ga, gb)


@pytest.mark.parametrize("jpeg", [None, 80])
def test_uint8_and_torch_paths_agree(jpeg):
    img = _picture()
    p = LowLightParams(exposure=0.07, shot_noise=3000, read_noise=0.003, color_cast=(1.1, 1.0, 0.9),
                       jpeg_quality=jpeg)
    a = simulate_low_light(img, p, rng=7)
    t = torch.from_numpy(img).permute(2, 0, 1).float() / 255  # (3, H, W) path
    b = simulate_low_light(t, p, rng=7)
    b8 = (b.permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()
    assert np.array_equal(a, b8)


def test_color_cast_shifts_channels():
    img = np.full((32, 32, 3), 180, np.uint8)
    out = simulate_low_light(img, exposure=0.2, color_cast=(1.3, 1.0, 0.7), read_noise=0.0,
                             shot_noise=1e6, rng=0).reshape(-1, 3).mean(0)
    assert out[0] > out[1] > out[2]


def test_gamma_power_law_option():
    img = np.full((16, 16, 3), 200, np.uint8)
    kw = dict(exposure=0.1, read_noise=0.0, shot_noise=1e7, rng=0)
    srgb = simulate_low_light(img, **kw).mean()
    g22 = simulate_low_light(img, gamma=2.2, **kw).mean()
    lin = (200 / 255 + 0.055) / 1.055
    lin = lin**2.4 * 0.1
    assert g22 == pytest.approx(255 * lin ** (1 / 2.2), abs=1.0)
    assert abs(srgb - g22) > 0.5  # the option changes the curve


def test_sample_params_ranges_and_determinism():
    ps = [sample_params(np.random.default_rng(i)) for i in range(200)]
    assert all(0.02 <= p.exposure <= 0.3 for p in ps)
    assert all(500 <= p.shot_noise <= 20000 for p in ps)
    assert any(p.jpeg_quality is not None for p in ps) and any(p.jpeg_quality is None for p in ps)
    assert any(p.color_cast != (1.0, 1.0, 1.0) for p in ps)
    assert sample_params(np.random.default_rng(9)) == sample_params(np.random.default_rng(9))


def test_model_reproducible_sequence():
    t = torch.rand(2, 3, 16, 16)
    m1, m2 = LowLightModel(seed=11), LowLightModel(seed=11)
    for _ in range(3):
        (a, pa), (b, pb) = m1.with_params(t), m2.with_params(t)
        assert pa == pb and torch.equal(a, b)


def test_bad_inputs_raise():
    with pytest.raises(ValueError):
        LowLightParams(exposure=0.0)
    with pytest.raises(ValueError):
        simulate_low_light(np.zeros((8, 8), np.uint8))
    with pytest.raises(ValueError):
        simulate_low_light(torch.zeros(1, 4, 8, 8))


# --- the bundled demo clip (lowlight_rt.demo) ---------------------------------------------------

def test_bundled_demo_clip_is_dark_noisy_and_has_audio():
    from lowlight_rt.demo import demo_clip_path, probe_clip

    path = demo_clip_path()
    assert path.is_file(), f"{path} missing: python -m lowlight_rt.demo --regenerate"
    assert path.stat().st_size <= 3_000_000
    info = probe_clip(path)
    assert info["size"] == (640, 360)
    assert info["video_frames"] >= 120
    assert info["mean_luma"] < 0.12  # really dark
    assert info["audio_packets"] > 100
    assert info["audio_samples"] >= 48000 * 5  # audio covers the clip


def test_demo_generation_small_is_deterministic(tmp_path):
    import av

    from lowlight_rt.demo import DEMO_PARAMS, NightScene, demo_frames, probe_clip, write_demo_clip

    kw = dict(width=160, height=96, fps=12, seconds=0.5, seed=3)
    first = list(demo_frames(NightScene(**kw), DEMO_PARAMS, seed=3))
    again = list(demo_frames(NightScene(**kw), DEMO_PARAMS, seed=3))
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(first, again))
    assert not np.array_equal(first[0][1], first[1][1])  # fresh noise per frame

    path, clean = write_demo_clip(tmp_path / "a.mp4", keep_clean=True, **kw)
    assert all(np.array_equal(c, f[0]) for c, f in zip(clean, first))
    info = probe_clip(path)
    assert info["video_frames"] == 6 == len(clean)
    assert clean[0].shape == (96, 160, 3) and clean[0].dtype == np.uint8
    assert info["mean_luma"] < 0.5 * np.mean([c.mean() for c in clean]) / 255.0
    assert info["audio_packets"] > 0
    assert not list(tmp_path.glob("*.part.mp4"))
    with av.open(str(path)) as c:
        decoded = [f.to_ndarray(format="rgb24").astype(np.int16) for f in c.decode(video=0)]
    # what was encoded is the darkened frames (up to H.264 loss on sensor noise)
    assert all(np.abs(d - f[1]).mean() < 10 for d, f in zip(decoded, first))


def test_demo_scene_moves():
    from lowlight_rt.demo import NightScene

    s = NightScene(width=160, height=96, fps=12, seconds=1.0, seed=1)
    f0, f6 = s.frame(0).astype(int), s.frame(6).astype(int)
    assert np.abs(f0 - f6).mean() > 0.5  # car, walker and windows change
    assert np.array_equal(s.frame(3), NightScene(160, 96, 12, 1.0, seed=1).frame(3))
