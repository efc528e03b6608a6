"""The real-time student's keep gate (well-lit frames stay themselves) and temporal operator filter."""

from __future__ import annotations

import pytest
import torch

from lowlight_rt.errors import ModelError
from lowlight_rt.models import create_model, save_checkpoint
from training.engine.networks import build_network


def _student(**cfg) -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model("realtime", width=4, depth=1, **cfg).eval()


@torch.no_grad()
def flat_students(*configs: dict, base, gain: float | None = None) -> list[torch.nn.Module]:
    """Small students, one per config, with the same weights and a constant head: base logits ``base`` (one
    value or three) everywhere and, with ``gain``, a constant detail-gain logit (-6: no detail gain)."""
    models = [_student(**cfg) for cfg in configs]
    for m in models:
        m.load_state_dict(models[0].state_dict())
        m.head.weight[slice(None) if gain is not None else slice(0, 3)].zero_()
        m.head.bias[:3] = torch.as_tensor(base, dtype=torch.float32)
        if gain is not None:
            m.head.bias[3:] = gain
    return models


@torch.no_grad()
def test_keep_gate_open_is_the_identity_and_closed_is_the_plain_student() -> None:
    x = torch.rand(2, 3, 40, 56)
    plain = _student()
    gated = _student(keep_gate=True)
    gated.load_state_dict({**gated.state_dict(), **plain.state_dict()})
    gated.keep_gate.bias.fill_(30.0)                                   # k = 1: keep the input
    offset, gain = gated.predict_operator(x)
    assert float(offset.abs().max()) < 1e-6 and torch.allclose(gain, torch.ones_like(gain))
    assert torch.allclose(gated.enhance(x, x), x, atol=1e-5)
    gated.keep_gate.bias.fill_(-30.0)                                  # k = 0: the plain student
    assert torch.allclose(gated.enhance(x, x), plain.enhance(x, x), atol=1e-5)


def test_keep_gate_is_trained_per_frame() -> None:
    model = _student(keep_gate=True).train()
    model(torch.rand(2, 3, 40, 56)).mean().backward()
    assert model.keep_gate.weight.grad is not None and float(model.keep_gate.weight.grad.abs().sum()) > 0


@torch.no_grad()
def test_temporal_filter_averages_static_cells_and_never_ghosts_moving_ones() -> None:
    model = _student(temporal_alpha=0.25, motion=0.05)
    ref = _student()                                                   # same weights, no filter
    torch.manual_seed(1)
    a = 0.1 + 0.05 * torch.rand(1, 3, 32, 48)
    b = a.clone()
    b[..., :, :24] += 0.01 * torch.randn(1, 3, 32, 24)                 # static noise on the left half
    b[..., :, 40:] = 0.3                                               # a strip on the right moves
    model.predict_operator(a)
    off_b, gain_b = model.predict_operator(b)
    off_a_ref, _ = ref.predict_operator(a)
    off_b_ref, gain_b_ref = ref.predict_operator(b)
    expected_static = torch.lerp(off_a_ref, off_b_ref, 0.25)[..., :, :18]   # grid cells 0..17 are static (19 neighbours the strip)
    assert torch.allclose(off_b[..., :, :18], expected_static, atol=1e-6)
    assert not torch.allclose(off_b[..., :, :18], off_b_ref[..., :, :18], atol=1e-3)
    assert torch.allclose(off_b[..., :, 21:], off_b_ref[..., :, 21:], atol=1e-6)   # moving: the fresh operator
    assert torch.allclose(gain_b[..., :, 21:], gain_b_ref[..., :, 21:], atol=1e-6)


@torch.no_grad()
def test_motion_noise_averages_sensor_noise_on_a_static_scene_and_still_never_ghosts() -> None:
    """A static, noisy night scene: with ``motion`` alone the noise counts as motion and the grid follows
    it frame by frame; with ``motion_noise`` the threshold rises with the noise and the grid is averaged,
    while an object that really moves (a bright strip) still takes the fresh operator at once."""
    torch.manual_seed(2)
    scene = 0.04 + 0.04 * torch.rand(1, 3, 64, 96)                     # dark, textured, static
    frames = [(scene + 0.012 * torch.randn(1, 3, 64, 96)).clamp(0, 1) for _ in range(8)]
    frames[-1][..., :, 80:] = 0.5                                      # last frame: a lit strip appears
    plain, adaptive, ref = _student(temporal_alpha=0.35), _student(temporal_alpha=0.35, motion_noise=3.0), _student()
    steps = {name: [m.predict_operator(f)[0] for f in frames] for name, m in
             (("plain", plain), ("adaptive", adaptive), ("ref", ref))}

    def jitter(offs: list[torch.Tensor]) -> float:   # frame-to-frame change of the operator, static part
        return float(torch.stack([(b - a)[..., :, :30].abs().mean() for a, b in zip(offs[1:-2], offs[2:-1])]).mean())
    assert jitter(steps["plain"]) > 0.8 * jitter(steps["ref"])        # the noise passes the fixed threshold
    assert jitter(steps["adaptive"]) < 0.5 * jitter(steps["plain"])    # averaged out
    fresh = steps["ref"][-1][..., :, 43:]                              # grid cells of the strip and beside it
    assert torch.allclose(steps["adaptive"][-1][..., :, 43:], fresh, atol=1e-6)
    with pytest.raises(ValueError):
        _student(motion_noise=-1.0)


@torch.no_grad()
def test_temporal_filter_resets_on_scene_cut_reset_state_and_in_training() -> None:
    model = _student(temporal_alpha=0.25)
    ref = _student()
    dark, bright = torch.full((1, 3, 32, 48), 0.05), torch.full((1, 3, 32, 48), 0.5)
    model.predict_operator(dark)
    assert torch.allclose(model.predict_operator(bright)[0], ref.predict_operator(bright)[0])   # cut
    model.reset_state()
    assert torch.allclose(model.predict_operator(dark)[0], ref.predict_operator(dark)[0])
    model.train()
    assert torch.allclose(model.predict_operator(dark * 1.1)[0], ref.train().predict_operator(dark * 1.1)[0])
    # a batch is filtered in frame order, like consecutive calls
    model.eval().reset_state()
    seq = torch.cat([dark, dark * 1.05, dark * 1.1])
    batched = model.predict_operator(seq)[0]
    model.reset_state()
    one_by_one = torch.cat([model.predict_operator(f[None])[0] for f in seq])
    assert torch.allclose(batched, one_by_one, atol=1e-6)


def test_temporal_options_are_checked() -> None:
    with pytest.raises(ValueError):
        _student(temporal_alpha=0.0)
    with pytest.raises(ValueError):
        _student(motion=0.0)


def test_init_new_loads_an_earlier_stage_without_the_new_parts(tmp_path) -> None:
    stage1 = save_checkpoint(tmp_path / "stage1.pt", _student(), {"note": "stage 1"})
    spec = {"arch": "realtime", "config": {"width": 4, "depth": 1, "keep_gate": True}, "init": str(stage1)}
    with pytest.raises(ModelError):
        build_network(spec)                                            # the gate is missing from stage 1
    model = build_network({**spec, "init_new": ["keep_gate"]})
    assert torch.allclose(model.head.weight, _student().head.weight)  # the rest came from stage 1


def test_engine_keeps_no_temporal_state_between_still_images() -> None:
    """Photos of an image folder are independent: the second is enhanced as if it came alone;
    video frames (no file name) are averaged over time."""
    import numpy as np

    from lowlight_rt.inference import Engine
    from lowlight_rt.frames import Frame

    rng = np.random.default_rng(0)
    a = rng.integers(20, 40, (48, 64, 3), dtype=np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-3, 4, a.shape), 0, 255).astype(np.uint8)   # same level
    engine = Engine(_student(temporal_alpha=0.2), device="cpu", proc_size=32, threads=1)
    alone = engine.enhance([Frame(image=b, index=0, name="b.png")])[0]
    photos = engine.enhance([Frame(image=a, index=0, name="a.png"), Frame(image=b, index=1, name="b.png")])
    assert np.array_equal(photos[1], alone)
    engine.reset_state()
    video = engine.enhance([Frame(image=a, index=0), Frame(image=b, index=1)])
    assert not np.array_equal(video[1], alone)


@torch.no_grad()
def test_exposure_floor_keeps_well_exposed_frames_and_leaves_dark_ones() -> None:
    model = _student(keep_gate=True, keep_from=0.22, keep_full=0.34)
    plain = _student(keep_gate=True)
    bright = 0.3 + 0.2 * torch.rand(1, 3, 40, 56)                      # mean level 0.4 > keep_full
    dark = 0.1 * torch.rand(1, 3, 40, 56)                               # 0.05 < keep_from
    assert torch.allclose(model.enhance(bright, bright), bright, atol=1e-5)
    assert torch.allclose(model.enhance(dark, dark), plain.enhance(dark, dark), atol=1e-6)
    with pytest.raises(ValueError):
        _student(keep_from=0.4, keep_full=0.3)


@torch.no_grad()
def test_detail_denoise_lowers_the_detail_gain_on_flat_noisy_areas_only() -> None:
    torch.manual_seed(2)
    flat = 0.1 + 0.02 * torch.randn(1, 3, 64, 64)                       # noise only
    edges = flat.clone()
    edges[..., :, 32:] += 0.3                                            # a strong vertical edge
    plain, denoised = _student(), _student(detail_denoise=1.0)
    g_plain = plain.predict_operator(edges)[1]
    g_den = denoised.predict_operator(edges)[1]
    assert torch.all(g_den <= g_plain + 1e-7)
    # the grid cells at the edge (columns 15, 16 of 32) keep most of their gain, flat cells lose most
    ratio = (g_den / g_plain)[0, 0]
    assert float(ratio[:, 15:17].mean()) > 0.8 > 0.5 > float(ratio[:, :8].mean())
    with pytest.raises(ValueError):
        _student(detail_denoise=-1.0)


def test_export_student_changes_settings_not_weights(tmp_path, capsys) -> None:
    from lowlight_rt.errors import UsageError
    from lowlight_rt.models import load_checkpoint
    from training.export_student import export, main

    src = save_checkpoint(tmp_path / "best.pt", _student(keep_gate=True), {"preset": "test"})
    dst = tmp_path / "realtime.pt"
    assert main([str(src), str(dst), "--set", "detail_denoise=1.0", "--set", "temporal_alpha=0.5", "--no-onnx"]) == 0
    model, meta = load_checkpoint(dst)
    assert model.config["detail_denoise"] == 1.0 and model.config["temporal_alpha"] == 0.5
    assert meta["preset"] == "test" and meta["export"]["settings"] == {"detail_denoise": 1.0, "temporal_alpha": 0.5}
    trained, _ = load_checkpoint(src)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), trained.state_dict().values()))
    assert model.onnx_operator is None and meta["export"]["onnx_operator"] is False   # --no-onnx
    with pytest.raises(UsageError):
        export(str(src), str(dst), {"no_such_option": 1})
    capsys.readouterr()
    assert main([str(src), str(dst), "--set", "oops"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("python -m training.export_student: error: ")


@torch.no_grad()
def test_lift_limit_keeps_a_black_sky_dark_beside_a_lit_building() -> None:
    x = torch.zeros(1, 3, 48, 64)
    x[..., :, 40:] = 0.7                                     # a lit building on the right, black sky on the left
    plain, limited = flat_students({}, {"lift_limit": 4.0}, base=-0.85)   # a network that lifts black to grey 0.3
    sky_plain = plain.enhance(x, x)[..., :, :24]
    sky = limited.enhance(x, x)[..., :, :24]
    assert float(sky_plain.mean()) > 0.25
    assert float(sky.max()) <= 0.03 + 1e-4                   # capped at the black floor where nothing is lit
    building = (..., slice(None), slice(48, None))
    assert torch.allclose(limited.enhance(x, x)[building], plain.enhance(x, x)[building], atol=1e-5)
    dim = 0.02 + 0.01 * torch.rand(1, 3, 48, 64)             # a dark night frame is not limited: ratio is large
    assert torch.allclose(limited.enhance(dim, dim), plain.enhance(dim, dim), atol=1e-5)
    with pytest.raises(ValueError):
        _student(lift_limit=-1.0)


def test_export_student_mix_averages_two_fine_tunes(tmp_path, capsys) -> None:
    from lowlight_rt.models import load_checkpoint
    from training.export_student import main

    a = _student(keep_gate=True)
    torch.manual_seed(5)
    b = create_model("realtime", width=4, depth=1, keep_gate=True).eval()
    pa = save_checkpoint(tmp_path / "a.pt", a, {"preset": "a"})
    pb = save_checkpoint(tmp_path / "b.pt", b, {"preset": "b"})
    dst = tmp_path / "mix.pt"
    assert main([str(pa), str(dst), "--mix", f"{pb}=0.25", "--set", "lift_limit=4.0", "--no-onnx"]) == 0
    mixed, meta = load_checkpoint(dst)
    sa, sb = a.state_dict(), b.state_dict()
    for k, v in mixed.state_dict().items():
        assert torch.allclose(v, 0.75 * sa[k] + 0.25 * sb[k], atol=1e-6), k
    assert meta["preset"] == "a" and meta["export"]["mix"] == {"with": str(pb), "weight": 0.25}
    assert mixed.config["lift_limit"] == 4.0
    other = save_checkpoint(tmp_path / "c.pt", create_model("realtime", width=8, depth=1).eval(), {})
    capsys.readouterr()
    assert main([str(pa), str(dst), "--mix", f"{other}=0.5"]) == 2           # not the same network
    assert main([str(pa), str(dst), "--mix", f"{pb}=1.5"]) == 2              # weight outside [0, 1]
    assert main([str(pa), str(dst), "--mix", f"{pb}"]) == 2                  # no weight
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(e.startswith("python -m training.export_student: error: --mix") for e in err)


@torch.no_grad()
def test_lit_hue_keeps_the_colour_of_lit_areas_and_their_rim_and_leaves_dark_ones() -> None:
    x = torch.full((1, 3, 48, 64), 0.02)
    x[:, 0, :, 40:], x[:, 1, :, 40:], x[:, 2, :, 40:] = 0.75, 0.55, 0.2     # a gold floodlit wall on the right
    # a network that white-balances gold to green
    plain, kept = flat_students({}, {"lit_hue": 0.15}, base=[-1.0, 1.0, 1.0])
    wall = (..., slice(8, -8), slice(48, None))
    def rg(t: torch.Tensor) -> float:
        return float(t[:, 0].mean() / t[:, 1].mean())
    assert rg(plain.enhance(x, x)[wall]) < 0.6                # green: red well under green
    assert abs(rg(kept.enhance(x, x)[wall]) - 0.75 / 0.55) < 0.05   # the input's hue
    rim = (..., slice(8, -8), slice(38, 40))                 # the grid cell beside the wall (2 px per cell)
    assert rg(plain.enhance(x, x)[rim]) < 0.3                 # took the complement: a cyan rim
    assert rg(kept.enhance(x, x)[rim]) > 0.8                  # the dark road's own (grey) hue
    dark = (..., slice(None), slice(0, 24))
    assert torch.allclose(kept.enhance(x, x)[dark], plain.enhance(x, x)[dark], atol=1e-6)
    with pytest.raises(ValueError):
        _student(lit_hue=0.8)


@torch.no_grad()
def test_lit_desaturate_brightens_lit_colour_like_a_power_curve_and_keeps_the_luma() -> None:
    from kornia.color import rgb_to_grayscale

    x = torch.full((1, 3, 48, 64), 0.02)
    x[:, 0, :, 40:], x[:, 1, :, 40:], x[:, 2, :, 40:] = 0.36, 0.24, 0.08    # a warm headlight pool
    models = flat_students({"lit_hue": 0.15}, {"lit_hue": 0.15, "lit_desaturate": 1.0},   # lifts to ~0.73
                           {"lit_hue": 0.15, "lit_desaturate": 0.5}, base=1.0, gain=-6.0)
    pool = (..., slice(8, -8), slice(48, None))
    keep, tone, half = (m.enhance(x, x)[pool].mean(dim=(2, 3)) for m in models)
    y_in = float(rgb_to_grayscale(x[pool]).mean())
    luma = [float(rgb_to_grayscale(o[..., None, None])) for o in (keep, tone, half)]
    assert luma[0] > 2 * y_in and max(luma) - min(luma) < 0.01            # brightened, same luma
    assert abs(float(keep[0, 0] / keep[0, 2]) - 0.36 / 0.08) < 0.1        # s = 0: the input's ratios
    power = torch.tensor(luma[1]).log() / torch.tensor(y_in).log()
    expected = (0.36 / 0.08) ** float(power)                          # red / blue after a power curve
    assert abs(float(tone[0, 0] / tone[0, 2]) - expected) < 0.05 * expected
    assert expected < float(half[0, 0] / half[0, 2]) < 0.36 / 0.08       # s = 0.5: in between
    dark = (..., slice(None), slice(0, 24))
    assert torch.allclose(models[1].enhance(x, x)[dark], models[0].enhance(x, x)[dark], atol=1e-6)
    for bad in (-0.1, 1.1):
        with pytest.raises(ValueError):
            _student(lit_desaturate=bad)


@torch.no_grad()
def test_mono_keeps_black_and_white_input_grey_and_leaves_colour_input_alone() -> None:
    torch.manual_seed(1)
    grey = (0.02 + 0.1 * torch.rand(1, 1, 48, 64)).expand(1, 3, 48, 64).contiguous()   # an infrared camera
    tinted = (grey + torch.tensor([0.004, 0.0, -0.002]).view(1, 3, 1, 1)).clamp(0, 1)  # + a constant tint
    colour = grey * torch.tensor([1.2, 1.0, 0.7]).view(1, 3, 1, 1)
    plain, mono = flat_students({}, {"mono": 0.004}, base=[0.5, -0.5, 0.6])   # it paints a purple cast

    def cast(t: torch.Tensor) -> float:                      # mean deviation from grey
        return float((t - t.mean(dim=1, keepdim=True)).abs().mean())
    assert cast(plain.enhance(grey, grey)) > 0.02
    assert cast(mono.enhance(grey, grey)) < 1e-6
    assert cast(plain.enhance(tinted, tinted)) > 0.02
    assert cast(mono.enhance(tinted, tinted)) < 1e-3          # a constant tint counts as no colour
    assert torch.allclose(mono.enhance(colour, colour), plain.enhance(colour, colour), atol=1e-6)
    for bad in (-0.1, 0.06):
        with pytest.raises(ValueError):
            _student(mono=bad)


@torch.no_grad()
def test_lit_keep_leaves_exposed_areas_as_they_are_and_enhances_dark_ones() -> None:
    torch.manual_seed(3)
    x = torch.full((1, 3, 48, 64), 0.03)
    x[..., :, 36:] = 0.55 + 0.3 * torch.rand(1, 3, 48, 28)   # a floodlit, textured wall on the right
    # lit_keep fully from 0.65; a network that lifts everything to 0.7, flat, without detail gain
    plain, kept = flat_students({}, {"lit_keep": 0.25}, base=0.85, gain=-6.0)
    wall = (..., slice(8, -8), slice(52, None))              # more than 2 grid cells (2 px each) inside
    assert float((plain.enhance(x, x)[wall] - x[wall]).abs().mean()) > 0.06   # the texture is flattened
    assert torch.allclose(kept.enhance(x, x)[wall], x[wall], atol=1e-5)      # kept as it is
    dark = (..., slice(None), slice(0, 20))
    assert torch.allclose(kept.enhance(x, x)[dark], plain.enhance(x, x)[dark], atol=1e-6)
    for bad in (-0.1, 1.0):
        with pytest.raises(ValueError):
            _student(lit_keep=bad)


def test_export_student_reads_a_training_state(tmp_path, capsys) -> None:
    """``last.pt`` exports its EMA network, built from the preset the state names."""
    from lowlight_rt.models import load_checkpoint
    from training.engine.config import load_preset
    from training.engine.state import save_state
    from training.export_student import main

    spec = load_preset("realtime_small")["model"]
    torch.manual_seed(3)
    raw, ema = (create_model(spec["arch"], **spec["config"]) for _ in range(2))
    state = save_state(tmp_path / "last.pt", {"preset": "realtime_small", "role": "student", "epoch": 7,
                                              "epochs": 16, "model": raw.state_dict(),
                                              "ema": {"module": ema.state_dict(), "updates": 10, "decay": 0.9},
                                              "history": [{"epoch": 7, "val_psnr": 18.0, "loss": 0.1}]})
    dst = tmp_path / "realtime.pt"
    assert main([str(state), str(dst), "--set", "lift_limit=4.0", "--no-onnx"]) == 0
    model, meta = load_checkpoint(dst)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), ema.state_dict().values()))
    assert meta["epoch"] == 7 and meta["preset"] == "realtime_small" and meta["val_metrics"] == {"val_psnr": 18.0}
    assert model.config["lift_limit"] == 4.0 and model.config["width"] == 12
    save_state(tmp_path / "bad.pt", {"preset": "realtime_small", "role": "student", "epoch": 1,
                                     "model": create_model("realtime", width=4).state_dict(), "ema": None})
    capsys.readouterr()
    assert main([str(tmp_path / "bad.pt"), str(dst)]) == 5           # weights of another network
    assert main([str(tmp_path / "missing.pt"), str(dst)]) == 5
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "do not match preset" in err[0]
