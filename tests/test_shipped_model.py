"""The shipped default model: ``assets/models/realtime.pt`` (see assets/MODELS.md)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from lowlight_rt.assets import models_dir
from lowlight_rt.models import load_model
from lowlight_rt.models.catalog import default_model_name

SHIPPED = models_dir() / "realtime.pt"
pytestmark = pytest.mark.skipif(not SHIPPED.is_file(), reason="assets/models/realtime.pt is not shipped")


def test_the_shipped_student_is_the_default_and_describes_itself() -> None:
    assert default_model_name() == "realtime"
    model, info = load_model(None)
    assert model.arch_name == "realtime" and info["path"] is not None and not model.training
    assert sum(p.numel() for p in model.parameters()) <= 300_000
    for name, t in model.state_dict().items():
        if t.is_floating_point():
            assert not bool(((t != 0) & (t.abs() < torch.finfo(torch.float32).tiny)).any()), f"subnormals in {name}"
    meta = info["metadata"]
    assert meta["preset"] == "realtime_small_fine" and meta["git_revision"] and meta["train_data"]
    assert {t["name"] for t in meta["provenance"]["teachers"]} == {"iat", "cpga_net_plus", "lyt_net"}
    assert meta["export"]["settings"] == {k: model.config[k] for k in meta["export"]["settings"]}


def test_the_shipped_student_carries_an_onnx_export_the_cpu_engine_runs() -> None:
    pytest.importorskip("onnxruntime")
    import warnings

    from lowlight_rt.frames import Frame
    from lowlight_rt.inference.engine import Engine

    model, info = load_model(None)
    assert model.onnx_operator is not None and info["metadata"]["export"]["onnx_operator"] is True
    engine = Engine(model, device="cpu")
    frame = Frame(image=np.full((72, 128, 3), 20, np.uint8), index=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")                  # it matches the weights and settings: no fallback
        engine.enhance([frame])
    assert engine.network_runtime == "onnxruntime"


@torch.no_grad()
def test_the_shipped_student_brightens_dark_frames_and_leaves_well_lit_ones() -> None:
    model, _ = load_model("realtime")
    rng = np.random.default_rng(0)
    scene = rng.uniform(0.2, 0.9, (1, 3, 12, 16)).astype(np.float32)
    full = torch.nn.functional.interpolate(torch.from_numpy(scene), size=(192, 256), mode="bilinear")
    dark = full * 0.08
    model.reset_state()
    out = model.enhance(dark, dark)
    assert float(out.mean()) > 3 * float(dark.mean())
    model.reset_state()
    lit = full.clamp(0, 1)
    assert float((model.enhance(lit, lit) - lit).abs().max()) < 2 / 255


@torch.no_grad()
def test_the_shipped_student_keeps_a_night_sky_dark_beside_a_lit_building() -> None:
    model, _ = load_model("realtime")
    model.reset_state()
    frame = torch.full((1, 3, 192, 256), 0.004)
    frame[..., 96:, 128:] = torch.tensor([0.75, 0.55, 0.3]).view(1, 3, 1, 1)   # a floodlit facade
    out = model.enhance(frame, frame)
    sky = out[..., :64, :96]                                                # far from the lit part
    assert float(sky.mean()) < 0.06, float(sky.mean())
    assert float(out[..., 128:, 176:].mean()) > 0.4                         # the facade stays lit


@torch.no_grad()
def test_the_shipped_student_keeps_a_gold_floodlit_wall_gold() -> None:
    """Lit areas keep their hue (``lit_hue``): the small student alone turned a gold tower green."""
    model, _ = load_model(None)
    model.reset_state()
    frame = torch.full((1, 3, 192, 256), 0.01)
    frame[:, 0, 40:150, 150:230], frame[:, 1, 40:150, 150:230], frame[:, 2, 40:150, 150:230] = 0.75, 0.55, 0.2
    wall = model.enhance(frame, frame)[:, :, 60:130, 170:210].mean(dim=(2, 3))[0]
    r, g, b = wall.tolist()
    assert r > g > b and r / g > 1.2


@torch.no_grad()
def test_the_shipped_student_brightens_a_warm_headlight_pool_to_warm_white_not_orange() -> None:
    """``lit_desaturate``: a lit area brightened several times loses saturation like a tone curve
    (it kept the input's colour ratios and a halogen-lit road turned saturated orange)."""
    model, _ = load_model(None)
    model.reset_state()
    frame = torch.full((1, 3, 192, 320), 0.006)
    road = (..., slice(120, 192), slice(80, 240))
    frame[road] = torch.tensor([0.24, 0.16, 0.07]).view(1, 3, 1, 1)        # a warm headlight pool
    pool = model.enhance(frame, frame)[..., 140:180, 110:210].mean(dim=(2, 3))[0]
    r, g, b = pool.tolist()
    assert (r + g + b) / 3 > 2 * (0.24 + 0.16 + 0.07) / 3                # brightened
    assert r > g > b                                                      # still warm
    assert r / b < 0.8 * (0.24 / 0.07), (r, g, b)                         # but not as saturated


@torch.no_grad()
def test_the_shipped_student_keeps_a_black_and_white_night_frame_grey() -> None:
    """``mono``: an infrared camera's picture gets no colour (the network alone gave it pink and blue casts)."""
    model, _ = load_model(None)
    model.reset_state()
    rng = np.random.default_rng(4)
    scene = rng.uniform(0.0, 0.15, (1, 1, 12, 16)).astype(np.float32)
    grey = torch.nn.functional.interpolate(torch.from_numpy(scene), size=(192, 256), mode="bilinear").expand(1, 3, 192, 256)
    grey = grey.contiguous()
    out = model.enhance(grey, grey)
    assert float(out.mean()) > 2 * float(grey.mean())                     # brightened
    assert float((out - out.mean(dim=1, keepdim=True)).abs().max()) < 1e-5   # and still grey


_SHARED = (Path(os.environ["LOWLIGHT_SHARED"]) if os.environ.get("LOWLIGHT_SHARED")
           else Path(__file__).resolve().parents[1] / ".." / "shared")
_MEMORIAL = _SHARED / "data" / "real-dark" / "dicm" / "26.jpg"


@pytest.mark.skipif(not _MEMORIAL.is_file(), reason="needs ../shared/data/real-dark (or $LOWLIGHT_SHARED)")
def test_the_shipped_student_leaves_no_glow_around_a_floodlit_building() -> None:
    """``out_cap``: the black sky 4-10 px around DICM 26's floodlit memorial stays dark (luma 112 before
    the cap, input 1.4); the building stays bright. Through the gate's runtime path (stills, RGB)."""
    import cv2
    from PIL import Image

    from training.video_eval import enhance_frame

    model, _ = load_model(None)
    image = np.array(Image.open(_MEMORIAL).convert("RGB"))
    out = enhance_frame(model, image, None, still=True)
    luma_in, luma_out = (cv2.cvtColor(a, cv2.COLOR_RGB2GRAY) for a in (image, out))
    lit = cv2.morphologyEx((luma_in > 60).astype(np.uint8), cv2.MORPH_CLOSE, np.ones((9, 9), np.uint8))
    ring = ((cv2.dilate(lit, np.ones((21, 21), np.uint8)) > 0) & ~(cv2.dilate(lit, np.ones((7, 7), np.uint8)) > 0)
            & (luma_in < 12))
    assert ring.sum() > 5000
    assert float(luma_out[ring].mean()) < 50, float(luma_out[ring].mean())
    assert float(luma_out[lit > 0].mean()) > 180


_YARD = _SHARED / "data" / "video" / "ken2190_night_yard_1080p.mp4"


@pytest.mark.skipif(not _YARD.is_file(), reason="needs ../shared/data/video (or $LOWLIGHT_SHARED)")
def test_the_shipped_student_keeps_a_dim_lamp_lit_door_warm() -> None:
    """``lit_hue`` 0.1: the yard clip's lamp-lit garage door (input ~0.19 of full scale at most, orange-yellow)
    stays warm, red over green over blue; at the earlier threshold 0.15 the network's own colour showed,
    lemon yellow with green over red: (246, 248, 170). Through the engine, as the CLI runs it."""
    import av

    from lowlight_rt.frames import Frame
    from lowlight_rt.inference import Engine

    with av.open(str(_YARD)) as container:
        for i, decoded in enumerate(container.decode(video=0)):
            if i == 60:
                image = decoded.to_ndarray(format="rgb24")
                break
    model, _ = load_model(None)
    engine = Engine(model, device="cpu")
    out = engine.enhance([Frame(image=image, index=0)])[0]
    engine.close()
    door_in, door_out = (a[480:640, 870:1070].reshape(-1, 3).mean(0) for a in (image, out))
    assert door_in[0] > door_in[1] > door_in[2]
    assert door_out[0] > 1.02 * door_out[1] and door_out[1] > 1.05 * door_out[2], door_out
    assert door_out.mean() > 4 * door_in.mean()   # still brightened
