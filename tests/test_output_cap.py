"""The per-pixel cap on an operator's output luma (``out_cap``): the glow a coarse operator spreads into
black pixels is removed, everything lifted about as much as the frame is left alone, on every path."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lowlight_rt.frames import YuvPlanes
from lowlight_rt.inference.cpu import apply_operator_numpy, apply_operator_yuv, frame_caps
from lowlight_rt.models import create_model
from lowlight_rt.models.affine import cap_output_luma
from tests.test_realtime_options import flat_students


def _lit_square() -> np.ndarray:
    """(48, 64, 3) uint8: black night with a lit, warm square (a floodlit building)."""
    img = np.full((48, 64, 3), 2, np.uint8)
    img[16:32, 24:40] = (200, 170, 120)
    return img


def _to_t(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255.0


def test_cap_darkens_the_glow_keeps_the_lit_part_and_the_colour() -> None:
    full = _to_t(_lit_square())
    glow = torch.full_like(full, 0.5) * torch.tensor([1.0, 0.9, 0.8]).view(1, 3, 1, 1)   # a lifted, warm haze
    out = cap_output_luma(glow, full, 0.05, torch.tensor([4.0]))
    dark = out[..., :8, :8]
    luma = 0.299 * dark[:, 0] + 0.587 * dark[:, 1] + 0.114 * dark[:, 2]
    assert float(luma.max()) <= 0.05 + 4.0 * 2 / 255 + 1e-4             # black stays near black: at the cap
    assert torch.allclose(out[..., 20:28, 28:36], glow[..., 20:28, 28:36])   # the lit part untouched
    ratio = dark[:, 0] / dark[:, 2]
    assert torch.allclose(ratio, torch.full_like(ratio, 1.0 / 0.8), atol=1e-4)   # colours scaled together


def _operator(h: int = 12, w: int = 16) -> tuple[np.ndarray, np.ndarray]:
    return np.full((h, w, 3), 0.5 * 255.0, np.float32), np.zeros((h, w, 1), np.float32)   # out = 0.5 flat


def test_the_rgb_and_yuv_paths_cap_like_the_reference() -> None:
    img = _lit_square()
    offset, gain = _operator()
    ref = cap_output_luma(torch.full((1, 3, 48, 64), 0.5), _to_t(img), 0.05, torch.tensor([4.0]))
    ref = (ref[0].permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)
    rgb = apply_operator_numpy(img, offset, gain, cap=(0.05, 4.0))
    assert np.abs(rgb.astype(int) - ref).max() <= 2
    uncapped = apply_operator_numpy(img, offset, gain)
    assert uncapped[:8, :8].min() >= 127 and rgb[:8, :8].max() <= 22          # the cap did something
    from lowlight_rt.bench import rgb_to_planes

    planes = apply_operator_yuv(rgb_to_planes(img), offset, gain, cap=(0.05, 4.0))
    y, y_rgb = planes.y.astype(int), rgb_to_planes(rgb).y.astype(int)         # the RGB path's result as planes
    assert np.abs(y[:8, :8] - y_rgb[:8, :8]).max() <= 2 and y[:8, :8].max() < 40  # capped alike
    assert abs(int(y[24, 32]) - int(y_rgb[24, 32])) <= 2                      # the lit part alike
    uncapped_yuv = apply_operator_yuv(rgb_to_planes(img), offset, gain)
    assert uncapped_yuv.y[:8, :8].min() > 120
    assert np.abs(planes.u.astype(int) - 128).max() <= 3                        # grey stays grey


def test_strength_eases_the_cap_and_zero_switches_it_off() -> None:
    model = create_model("realtime", width=4, depth=1, out_cap=3.0, out_cap_floor=0.05).eval()
    low = torch.full((2, 3, 24, 32), 0.04)                       # normalising gain 0.25 / 0.05 = 5
    floor, slope = model.output_cap(low)
    assert floor == 0.05 and torch.allclose(slope, torch.full((2,), 15.0))
    assert frame_caps(model, low, 1.0) == [pytest.approx((0.05, 15.0))] * 2
    assert frame_caps(model, low, 0.5)[0] == pytest.approx((0.55, 15.0))
    bright = torch.full((1, 3, 24, 32), 0.5)                     # normalising gain 0.49: the slope stays 3 x 3
    assert float(model.output_cap(bright)[1]) == pytest.approx(9.0)
    assert frame_caps(model, low, 0.0) == [None, None]
    assert create_model("realtime", width=4, depth=1).output_cap(low) is None
    with pytest.raises(ValueError):
        create_model("realtime", width=4, depth=1, out_cap=-1.0)


@torch.no_grad()
def test_the_model_applies_its_cap_in_forward_and_enhance() -> None:
    plain, capped = flat_students({}, {"out_cap": 1.0}, base=1.0, gain=-6.0)   # lifts everything to ~0.73, flat
    x = _to_t(_lit_square())
    a, b = plain.enhance(x, x), capped.enhance(x, x)
    assert float(a[..., :8, :8].mean()) > 0.5 and float(b[..., :8, :8].mean()) < 0.08
    assert torch.allclose(capped(x, scale=1.0), b)
