"""CPGA-Net+ / CPGA-Net++ teachers: architecture (always) and the published files (skip without ../shared)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from lowlight_rt.errors import ModelError
from lowlight_rt.models import load_checkpoint, save_checkpoint
from training.teachers import create_teacher, load_teacher
from training.teachers.cpga_net import CPGANetPlus, CPGANetPlusPlus, load_official_cpga_net


def _shared_weights() -> Path:
    root = os.environ.get("LOWLIGHT_SHARED")
    base = Path(root) if root else Path(__file__).resolve().parents[1] / ".." / "shared"
    return base / "weights" / "cpga-net-plus"


WEIGHTS = _shared_weights()
FILES = {"plus": (WEIGHTS / "cpga_net_plus_lolv1.pkl", CPGANetPlus, 60_378),
         "plusplus": (WEIGHTS / "cpga_net_plusplus_lolv1.pkl", CPGANetPlusPlus, 62_304)}
needs_weights = pytest.mark.skipif(not all(f.is_file() for f, _, _ in FILES.values()),
                                   reason="shared CPGA-Net+ weights absent")


pytestmark = pytest.mark.usefixtures("one_thread")


def dark_scene(h: int = 48, w: int = 64, seed: int = 0) -> torch.Tensor:
    """A smooth, coloured, dark ``(1, 3, h, w)`` image (mean about 0.08)."""
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(1, 3, h // 8 + 1, w // 8 + 1, generator=g)
    img = torch.nn.functional.interpolate(low, size=(h, w), mode="bilinear", align_corners=False)
    return (img * 0.16).clamp(0, 1)


@pytest.fixture(scope="module")
def official() -> dict[str, torch.nn.Module]:
    return {name: load_official_cpga_net(path) for name, (path, _, _) in FILES.items()}


# ------------------------------------------------------------------ without shared data


@pytest.mark.parametrize("name, cls", [("cpga_net_plus", CPGANetPlus), ("cpga_net_plusplus", CPGANetPlusPlus)])
def test_random_init_shapes_range_and_checkpoint_round_trip(name, cls, tmp_path):
    torch.manual_seed(0)
    model = create_teacher(name).eval()
    assert isinstance(model, cls)
    for h, w in ((67, 45), (32, 48), (1, 1)):
        x = torch.rand(1, 3, h, w)
        with torch.no_grad():
            y = model(x)
        assert y.shape == x.shape
        assert torch.isfinite(y).all() and y.min() >= 0 and y.max() <= 1
    # the self-describing checkpoint format rebuilds the same network
    path = save_checkpoint(tmp_path / f"{name}.pt", model)
    again, _ = load_checkpoint(path)
    x = torch.rand(1, 3, 20, 30)
    with torch.no_grad():
        torch.testing.assert_close(again(x), model(x))


def test_variants_differ_where_the_files_say():
    plus, plusplus = CPGANetPlus(), CPGANetPlusPlus()
    assert "iaaf_masking_rate" not in plus.state_dict() and "iaaf_masking_rate" in plusplus.state_dict()
    assert "iaaf.conv_scoring.0.weight" in plusplus.state_dict()
    assert "cpblks_pre.a_module.conv3_A.body.0.weight" in plus.state_dict()
    assert "cpblks_pre.a_module.conv3_A.dwconv.weight" in plusplus.state_dict()


def test_wrong_file_raises_model_error(tmp_path):
    bogus = tmp_path / "random.pkl"
    torch.save({"epoch": 3, "state_dict": {"conv.weight": torch.randn(4, 3, 3, 3)}}, bogus)
    with pytest.raises(ModelError):
        load_official_cpga_net(bogus)
    with pytest.raises(ModelError):
        load_teacher(bogus)
    # right keys, one tensor missing: strict loading fails with one clear line
    sd = CPGANetPlus().state_dict()
    sd.pop("ga_est.conv4_g.weight")
    broken = tmp_path / "broken.pkl"
    torch.save({"epoch": 1, "state_dict": sd}, broken)
    with pytest.raises(ModelError, match="Missing key") as err:
        load_official_cpga_net(broken)
    assert "\n" not in str(err.value)
    with pytest.raises(ModelError):
        load_official_cpga_net(tmp_path / "absent.pkl")


# ------------------------------------------------------------------ with the published files


@pytest.mark.shared
@needs_weights
@pytest.mark.parametrize("name", ["plus", "plusplus"])
def test_published_file_loads_unchanged(name, official):
    path, cls, n_params = FILES[name]
    model = official[name]
    assert type(model) is cls and not model.training
    assert model.num_parameters() == n_params
    raw = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
    ours = model.state_dict()
    assert set(ours) == set(raw)                   # strict: same names ...
    for k, v in raw.items():                       # ... same shapes, same values (but denormals)
        assert ours[k].shape == v.shape
        tiny = torch.finfo(v.dtype).tiny if v.is_floating_point() else 0
        expected = torch.where(v.abs() < tiny, torch.zeros_like(v), v) if v.is_floating_point() else v
        assert torch.equal(ours[k], expected), k
    # the CPGA-Net+ file holds thousands of subnormal floats (3-60x slower on CPU); none may survive
    for k, v in ours.items():
        if v.is_floating_point():
            assert not ((v != 0) & (v.abs() < torch.finfo(v.dtype).tiny)).any(), k


@pytest.mark.shared
@needs_weights
@pytest.mark.parametrize("name", ["plus", "plusplus"])
def test_published_model_brightens_dark_input_any_size(name, official):
    model = official[name]
    x = dark_scene(67, 45)
    with torch.no_grad():
        y = model(x)
    assert y.shape == x.shape
    assert y.min() >= 0 and y.max() <= 1
    assert y.mean() > 2 * x.mean()
    # colours stay close to the input's (no strong cast)
    chroma_in = x.mean((0, 2, 3)) / x.mean()
    chroma_out = y.mean((0, 2, 3)) / y.mean()
    assert (chroma_in - chroma_out).abs().max() < 0.25


@pytest.mark.shared
@needs_weights
def test_load_teacher_by_name_and_path():
    # by registered name (official weights in the shared folder) and by path (told apart by keys)
    for spec, cls in (("cpga_net_plus", CPGANetPlus), (FILES["plusplus"][0], CPGANetPlusPlus)):
        model = load_teacher(spec)
        assert type(model) is cls
        assert not model.training and not any(p.requires_grad for p in model.parameters())
    with pytest.raises(ModelError):
        load_teacher(FILES["plus"][0], n_channels=4)
