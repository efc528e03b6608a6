"""Zero-DCE: curve arithmetic, official checkpoint loading (skips without ../shared)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from lowlight_rt.errors import ModelError
from lowlight_rt.models.zero_dce import ZeroDCE, load_official_zero_dce

OFFICIAL = Path(__file__).resolve().parents[1] / ".." / "shared" / "weights" / "zero-dce" / "Epoch99.pth"
needs_official = pytest.mark.skipif(not OFFICIAL.is_file(), reason="../shared/weights/zero-dce absent")


pytestmark = pytest.mark.usefixtures("one_thread")


def dark_scene(h: int = 48, w: int = 64, level: float = 0.08) -> torch.Tensor:
    """A smooth colourful scene with an edge, scaled down to a dark exposure: ``(1, 3, h, w)``."""
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    scene = torch.stack([0.3 + 0.7 * xx, 0.2 + 0.6 * yy, 0.5 + 0.5 * (xx > 0.5).float() * (1 - yy)])
    return (scene * level).unsqueeze(0)


def reference_official(sd: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """The official DCE-Net forward written out functionally: ``x + r * (x^2 - x)`` eight times."""
    def conv(name, t):
        return F.conv2d(t, sd[f"{name}.weight"], sd[f"{name}.bias"], padding=1)
    x1 = F.relu(conv("e_conv1", x))
    x2 = F.relu(conv("e_conv2", x1))
    x3 = F.relu(conv("e_conv3", x2))
    x4 = F.relu(conv("e_conv4", x3))
    x5 = F.relu(conv("e_conv5", torch.cat([x3, x4], 1)))
    x6 = F.relu(conv("e_conv6", torch.cat([x2, x5], 1)))
    r = torch.tanh(conv("e_conv7", torch.cat([x1, x6], 1)))
    for rn in torch.split(r, 3, dim=1):
        x = x + rn * (x * x - x)
    return x


def test_curve_identity_and_brightening():
    model = ZeroDCE()
    x = torch.rand(1, 3, 8, 8) * 0.5
    torch.testing.assert_close(model.apply_curves(x, torch.zeros(1, 24, 8, 8)), x)
    brighter = model.apply_curves(x, torch.ones(1, 24, 8, 8))
    assert (brighter >= x).all() and brighter.max() <= 1 and brighter.mean() > 2 * x.mean()


def test_forward_with_curves_shapes():
    model = ZeroDCE(iterations=4)
    out, curves = model.forward_with_curves(torch.rand(2, 3, 13, 17))
    assert out.shape == (2, 3, 13, 17) and curves.shape == (2, 12, 13, 17)
    assert curves.abs().max() <= 1


def test_module_prefix_state_dict_loads(tmp_path):
    src = ZeroDCE().eval()
    torch.save({f"module.{k}": v for k, v in src.state_dict().items()}, tmp_path / "dp.pth")
    loaded = load_official_zero_dce(tmp_path / "dp.pth")
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), src(x))


def test_bad_files_are_model_errors(tmp_path):
    with pytest.raises(ModelError):
        load_official_zero_dce(tmp_path / "missing.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(ModelError):
        load_official_zero_dce(tmp_path / "junk.pth")
    torch.save({"conv.weight": torch.zeros(1)}, tmp_path / "other.pth")
    with pytest.raises(ModelError):
        load_official_zero_dce(tmp_path / "other.pth")


@pytest.mark.shared
@needs_official
def test_official_checkpoint_loads_unchanged_and_matches_official_forward():
    model = load_official_zero_dce(OFFICIAL)
    sd = torch.load(OFFICIAL, map_location="cpu", weights_only=True)
    x = dark_scene()
    with torch.no_grad():
        torch.testing.assert_close(model(x), reference_official(sd, x), rtol=1e-5, atol=1e-5)


@pytest.mark.shared
@needs_official
def test_official_checkpoint_brightens_a_dark_image():
    model = load_official_zero_dce(OFFICIAL)
    x = dark_scene()
    with torch.no_grad():
        y = model(x)
        full = dark_scene(96, 128)
        low = F.interpolate(full, size=(48, 64), mode="bilinear", align_corners=False)
        y_full = model.enhance(full, low)
        y_direct = model(full)
    assert y.min() >= 0 and y.max() <= 1
    assert y.mean() > 2.5 * x.mean()
    # ordering of brightness is kept (curves are monotonic): the brighter half stays brighter
    assert y[..., :, 32:].mean() > y[..., :, :32].mean()
    # curves predicted at half resolution and applied at full resolution ~ running at full resolution
    assert y_full.shape == full.shape
    assert (y_full - y_direct).abs().mean() < 0.03


@pytest.mark.shared
@needs_official
def test_load_teacher_by_name():
    from training.teachers import load_teacher

    teacher = load_teacher("zero_dce")
    assert isinstance(teacher, ZeroDCE) and not any(p.requires_grad for p in teacher.parameters())
