"""Architectures: shapes at odd sizes, range, gradients, features, presets, checkpoints, teachers."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lowlight_rt.errors import ModelError
from lowlight_rt.models import create_model, list_models, load_checkpoint, model_config, save_checkpoint
from lowlight_rt.models.compact_clarity import CC_THESIS_CFG
from lowlight_rt.models.gradient_guided import GG_STUDENT_CFG, GG_TEACHER_CFG
from lowlight_rt.models.unet import UNET_STUDENT_CFG, UNET_TEACHER_CFG
from training.teachers import create_teacher, list_teachers, load_teacher
from training.teachers.mirnet_v2 import MIRNetV2, load_official_mirnet_v2

# Narrow configurations so every test runs in about a second on one CPU thread.
NARROW: dict[str, dict] = {
    "zero_dce": {"channels": 8},
    "gradient_guided": {"blocks": 2, "channels": 16},
    "unet": {"base_channels": 8, "depth": 3, "blocks": 1},
    "compact_clarity": {"n_feat": 16, "n_blocks": 1},
    "mirnet_v2": {"n_feat": 16, "n_MRB": 1, "n_RRG": 2},
}
# name -> (number of features from forward_features, channels of the last one)
FEATURES = {
    "zero_dce": (6, 8),
    "gradient_guided": (2, 16),
    "unet": (4, 8),
    "compact_clarity": (4, 16),
    "mirnet_v2": (2, 16),
}


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    yield
    torch.set_num_threads(n)


def build(name: str) -> torch.nn.Module:
    return create_model(name, **NARROW[name])


def test_all_families_registered():
    assert {"zero_dce", "gradient_guided", "unet", "compact_clarity", "mirnet_v2"} <= set(list_models())


@pytest.mark.parametrize("name", list(NARROW))
@pytest.mark.parametrize("size", [(37, 53), (3, 5), (32, 48)])
def test_forward_shape_and_range(name, size):
    model = build(name).eval()
    x = torch.rand(2, 3, *size)
    with torch.no_grad():
        y = model(x)
    assert y.shape == x.shape
    assert torch.isfinite(y).all()
    assert y.min() >= 0 and y.max() <= 1


@pytest.mark.parametrize("name", list(NARROW))
def test_enhance_full_from_low(name):
    model = build(name).eval()
    full = torch.rand(1, 3, 37, 53) * 0.3
    low = F.interpolate(full, size=(19, 27), mode="bilinear", align_corners=False)
    with torch.no_grad():
        out = model.enhance(full, low)
        same = model.enhance(full, full)
        net_full = model(full).clamp(0, 1)
        net_low_up = F.interpolate(model(low), size=full.shape[-2:], mode="bilinear", align_corners=False)
    assert out.shape == full.shape and same.shape == full.shape
    assert out.min() >= 0 and out.max() <= 1
    # the network sees the full frame: enhance is exactly the network's output
    assert torch.allclose(same, net_full, atol=1e-5)
    # from the low-res frame: the output is NOT just the upsampled low-res result, the full-resolution
    # detail the network never saw is carried over (out - up(net(low)) follows full - up(low))
    detail = full - F.interpolate(low, size=full.shape[-2:], mode="bilinear", align_corners=False)
    carried = out - net_low_up
    assert carried.abs().mean() > 0.01
    assert torch.corrcoef(torch.stack([carried.flatten(), detail.flatten()]))[0, 1] > 0.8


@pytest.mark.parametrize("name", list(NARROW))
def test_half_precision_forward(name):
    # the runtime's CUDA path runs models in FP16; CPU float16 convs exercise the same dtype handling
    model = build(name).eval()
    x = torch.rand(1, 3, 20, 28)
    with torch.no_grad():
        ref = model(x)
        out = model.half()(x.half())
    assert out.dtype == torch.float16 and out.shape == x.shape
    assert (out.float() - ref).abs().max() < 0.05


@pytest.mark.parametrize("name", list(NARROW))
def test_gradients_reach_every_parameter(name):
    model = build(name).train()
    x = torch.rand(2, 3, 20, 28)
    loss = F.mse_loss(model(x), torch.rand_like(x))
    loss.backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None, pname
        assert torch.isfinite(p.grad).all(), pname
    assert sum(float(p.grad.abs().sum()) for p in model.parameters()) > 0


@pytest.mark.parametrize("name", list(NARROW))
def test_forward_features(name):
    model = build(name).eval()
    x = torch.rand(1, 3, 37, 53)
    with torch.no_grad():
        out, feats = model.forward_features(x)
        ref = model(x)
    n, channels = FEATURES[name]
    assert len(feats) == n
    assert all(f.dim() == 4 and f.shape[0] == 1 for f in feats)
    assert feats[-1].shape[1] == channels
    torch.testing.assert_close(out, ref)


@pytest.mark.parametrize("name", list(NARROW))
def test_checkpoint_round_trip(name, tmp_path):
    model = build(name).eval()
    path = save_checkpoint(tmp_path / f"{name}.pt", model, {"note": "test"})
    loaded, meta = load_checkpoint(path)
    assert type(loaded) is type(model) and loaded.config == model.config
    assert meta["note"] == "test" and meta["num_parameters"] == model.num_parameters()
    x = torch.rand(1, 3, 21, 30)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x))


def test_preset_parameter_counts():
    # zero_dce: the official DCE-Net size (7 convs x 32 ch, 24 curve maps)
    assert create_model("zero_dce").num_parameters() == 79_416
    assert create_model("gradient_guided", **GG_TEACHER_CFG).num_parameters() == 1_837_857
    assert create_model("gradient_guided", **GG_STUDENT_CFG).num_parameters() == 272_316
    assert create_model("gradient_guided").config == GG_STUDENT_CFG
    assert create_model("unet", **UNET_TEACHER_CFG).num_parameters() == 18_282_275
    assert create_model("unet", **UNET_STUDENT_CFG).num_parameters() == 649_299
    with torch.device("meta"):  # construct only: no memory, no forward
        thesis = create_model("compact_clarity", **CC_THESIS_CFG)
    assert thesis.num_parameters() == 8_829_760
    assert 8e6 < thesis.num_parameters() < 11e6


def test_mirnet_v2_published_config_matches_official_release():
    with torch.device("meta"):
        model = MIRNetV2()  # n_feat 80, chan_factor 1.5, 4 RRGs x 2 MRBs, height 3, width 2
    sd = model.state_dict()
    assert len(sd) == 238
    assert sum(v.numel() for v in sd.values()) == 5_858_560
    # a few names / shapes of the official release
    assert sd["conv_in.weight"].shape == (80, 3, 3, 3)
    assert sd["body.3.body.1.dau_bot.body.0.weight"].shape == (180, 45, 3, 3)  # groups=4 on 180 ch
    assert sd["body.0.body.0.down4.1.body.0.bot.1.weight"].shape == (180, 120, 1, 1)
    assert sd["body.1.body.0.skff_mid.fcs.1.weight"].shape == (120, 15, 1, 1)
    assert sd["body.2.body.2.weight"].shape == (80, 80, 3, 3)
    assert sd["conv_out.weight"].shape == (3, 80, 3, 3)


def test_load_official_mirnet_v2_format(tmp_path):
    src = MIRNetV2(**NARROW["mirnet_v2"]).eval()
    # BasicSR layout: {"params": state_dict}, here with a DataParallel prefix as well
    torch.save({"params": {f"module.{k}": v for k, v in src.state_dict().items()}}, tmp_path / "net_g.pth")
    loaded = load_official_mirnet_v2(tmp_path / "net_g.pth", **NARROW["mirnet_v2"])
    x = torch.rand(1, 3, 16, 24)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), src(x))
    with pytest.raises(ModelError):
        load_official_mirnet_v2(tmp_path / "net_g.pth")  # published config: shapes differ


def test_bad_group_width_is_a_model_error():
    with pytest.raises(ModelError):
        create_model("compact_clarity", n_feat=72)


def test_grad_checkpointing_gives_same_gradients():
    torch.manual_seed(1)
    model = build("compact_clarity").train()
    x, target = torch.rand(1, 3, 16, 20), torch.rand(1, 3, 16, 20)
    F.l1_loss(model(x), target).backward()
    ref = {k: p.grad.clone() for k, p in model.named_parameters()}
    model.zero_grad()
    model.set_grad_checkpointing(True)
    F.l1_loss(model(x), target).backward()
    for k, p in model.named_parameters():
        torch.testing.assert_close(p.grad, ref[k], rtol=1e-4, atol=1e-6)


def test_teacher_registry(tmp_path):
    assert list_teachers() == ["cpga_net_plus", "cpga_net_plusplus", "gradient_guided", "iat", "iat_exposure", "lyt_net",
                               "mirnet_v2", "unet", "zero_dce"]
    assert create_teacher("gradient_guided").config == GG_TEACHER_CFG
    assert model_config("unet") == UNET_STUDENT_CFG
    with torch.device("meta"):
        assert create_teacher("unet").config == UNET_TEACHER_CFG
        assert create_teacher("mirnet_v2").num_parameters() == 5_858_560
    teacher = create_teacher("mirnet_v2", **NARROW["mirnet_v2"])
    path = save_checkpoint(tmp_path / "teacher.pt", teacher, {})
    loaded = load_teacher(path)
    assert isinstance(loaded, MIRNetV2) and not loaded.training
    assert not any(p.requires_grad for p in loaded.parameters())
    assert any(p.requires_grad for p in load_teacher(path, frozen=False).parameters())
    with pytest.raises(ModelError):
        create_teacher("nope")
    with pytest.raises(ModelError):
        load_teacher("gradient_guided")  # no official weights exist for it
    with pytest.raises(ModelError):
        load_teacher(tmp_path / "missing.pt")
