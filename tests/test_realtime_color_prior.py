"""The real-time student's colour prior: colour comes from the input's coarse chromaticity."""

from __future__ import annotations

import pytest
import torch

from lowlight_rt.models import create_model, load_checkpoint, save_checkpoint


def _chroma(t: torch.Tensor) -> float:
    return float((t - t.mean(1, keepdim=True)).abs().mean())


def test_color_prior_keeps_the_input_hue_at_initialisation() -> None:
    torch.manual_seed(0)
    x = torch.zeros(1, 3, 64, 96)
    x[:, 0], x[:, 1], x[:, 2] = 0.12, 0.06, 0.03          # a dark orange picture
    with torch.no_grad():
        plain = create_model("realtime", width=8, depth=1).eval()(x)
        prior = create_model("realtime", width=8, depth=1, color_prior=True).eval()(x)
    assert _chroma(plain) < 0.01                              # the untrained plain net outputs near grey
    r, g, b = prior[0].mean(dim=(1, 2)).tolist()
    assert r > g > b and _chroma(prior) > 0.05                # the prior keeps the input's hue order


def test_color_prior_shapes_at_odd_sizes_and_checkpoint_round_trip(tmp_path) -> None:
    model = create_model("realtime", width=4, depth=1, color_prior=True).eval()
    full, low = torch.rand(1, 3, 75, 101), torch.rand(1, 3, 27, 37)
    assert model.enhance(full, low).shape == full.shape and model(full).shape == full.shape
    offset, gain = model.predict_operator(low)
    assert offset.shape[-2:] == gain.shape[-2:] == (14, 19)
    path = save_checkpoint(tmp_path / "rt.pt", model, {"note": "test"})
    loaded, _ = load_checkpoint(path)
    assert loaded.config["color_prior"] is True
    assert torch.allclose(loaded.enhance(full, low), model.enhance(full, low), atol=1e-6)


def test_finer_prior_pool_keeps_colour_closer_to_a_sharp_colour_edge() -> None:
    """An orange stripe on a grey road: the colour the prior spreads onto the road beside it shrinks
    with the pool (the spread is what the network would otherwise have to undo, leaving a fringe)."""
    torch.manual_seed(0)
    x = torch.full((1, 3, 64, 96), 0.05)
    x[:, 0, :, 44:52], x[:, 1, :, 44:52], x[:, 2, :, 44:52] = 0.5, 0.3, 0.1
    spread = {}
    for pool in (8, 4, 2):
        model = create_model("realtime", width=8, depth=1, color_prior=True, prior_pool=pool).eval()
        with torch.no_grad():
            out = model.enhance(x, x)
        road = out[..., 8:-8, 32:40]       # 4-12 pixels left of the stripe
        spread[pool] = _chroma(road)
    assert spread[2] < spread[4] < spread[8]


def test_prior_pool_shapes_round_trip_and_checks(tmp_path) -> None:
    full, low = torch.rand(1, 3, 75, 101), torch.rand(1, 3, 27, 37)
    for pool in (2, 4):
        model = create_model("realtime", width=4, depth=1, color_prior=True, prior_pool=pool).eval()
        offset, gain = model.predict_operator(low)
        assert offset.shape[-2:] == gain.shape[-2:] == (14, 19)
        loaded, _ = load_checkpoint(save_checkpoint(tmp_path / f"rt{pool}.pt", model, {}))
        assert loaded.config["prior_pool"] == pool
        assert torch.allclose(loaded.enhance(full, low), model.enhance(full, low), atol=1e-6)
    with pytest.raises(ValueError, match="prior_pool"):
        create_model("realtime", prior_pool=3)
