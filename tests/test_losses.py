"""Tests of training/losses: every loss on identical / different inputs, gradients, odd sizes."""

from __future__ import annotations

import math

import pytest
import pytorch_msssim
import torch
from torch import nn

from lowlight_rt.errors import InputError, ModelError
from training import losses as L


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def _images(h: int = 37, w: int = 53, b: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.rand(b, 3, h, w)
    y = (x + 0.15 * torch.randn_like(x)).clamp(0, 1)
    return x, y


# ---------------------------------------------------------------- pred/target losses

PAIR_LOSSES = {
    "charbonnier": lambda: L.CharbonnierLoss(eps=1e-3),
    "l1": lambda: L.PixelLoss("l1"),
    "mse": lambda: L.PixelLoss("mse"),
    "output_distillation": lambda: L.OutputDistillationLoss("l1"),
    "fft": lambda: L.FFTAmplitudeLoss(),
    "ssim": lambda: L.SSIMLoss(),
    "ms_ssim": lambda: L.MSSSIMLoss(),
    "gradient_l1": lambda: L.GradientLoss("l1"),
    "gradient_l2": lambda: L.GradientLoss("l2"),
}
# value of each loss on identical inputs (Charbonnier's minimum is eps)
MINIMUM = {"charbonnier": 1e-3}


@pytest.mark.parametrize("name", list(PAIR_LOSSES))
@pytest.mark.parametrize("size", [(37, 53), (64, 64)])
def test_pair_loss_identical_different_and_gradient(name: str, size: tuple[int, int]) -> None:
    loss = PAIR_LOSSES[name]()
    x, y = _images(*size)
    same = loss(x, x.clone())
    assert same.ndim == 0
    assert same.item() == pytest.approx(MINIMUM.get(name, 0.0), abs=1e-5)
    pred = x.clone().requires_grad_(True)
    diff = loss(pred, y)
    assert diff.item() > MINIMUM.get(name, 0.0) + 1e-4
    diff.backward()
    assert pred.grad is not None and torch.isfinite(pred.grad).all() and pred.grad.abs().sum() > 0


@pytest.mark.parametrize("name", list(PAIR_LOSSES))
def test_pair_loss_rejects_bad_shapes(name: str) -> None:
    loss = PAIR_LOSSES[name]()
    with pytest.raises(ValueError):
        loss(torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 17))
    with pytest.raises(ValueError):
        loss(torch.rand(3, 16, 16), torch.rand(3, 16, 16))


def test_pair_losses_finite_gradient_at_identical_inputs() -> None:
    x = torch.rand(1, 3, 32, 32)
    for name, make in PAIR_LOSSES.items():
        pred = x.clone().requires_grad_(True)
        make()(pred, x).backward()
        assert torch.isfinite(pred.grad).all(), name


def test_charbonnier_value() -> None:
    pred, target = torch.zeros(1, 1, 2, 2), torch.full((1, 1, 2, 2), 0.5)
    assert L.charbonnier_loss(pred, target, eps=1e-3).item() == pytest.approx(math.sqrt(0.25 + 1e-6))


def test_output_distillation_detaches_teacher() -> None:
    s = torch.rand(1, 3, 8, 8, requires_grad=True)
    t = torch.rand(1, 3, 8, 8, requires_grad=True)
    L.output_distillation_loss(s, t, "mse").backward()
    assert s.grad is not None and t.grad is None


def test_fft_loss_ignores_a_circular_shift_and_works_in_half() -> None:
    x = torch.rand(1, 3, 32, 32)
    assert L.fft_amplitude_loss(x, torch.roll(x, shifts=(3, 5), dims=(2, 3))).item() < 1e-5
    assert L.fft_amplitude_loss(x.half(), x.half()).dtype == torch.float32


def test_gradient_loss_ignores_constant_offset() -> None:
    x = torch.rand(1, 3, 20, 24) * 0.5
    assert L.gradient_loss(x, x + 0.3).item() < 1e-6
    assert L.gradient_loss(x, x.flip(-1)).item() > 1e-3


# ---------------------------------------------------------------- SSIM / MS-SSIM

def test_ssim_matches_pytorch_msssim() -> None:
    x, y = _images(48, 40)
    assert L.ssim(x, y).item() == pytest.approx(pytorch_msssim.ssim(x, y, data_range=1.0).item(), abs=1e-6)


def test_ms_ssim_matches_pytorch_msssim_with_all_scales() -> None:
    x, y = _images(161, 170, b=1)
    assert L.ms_ssim_scales(161) == 5
    ours = L.ms_ssim(x, y).item()
    assert ours == pytest.approx(pytorch_msssim.ms_ssim(x, y, data_range=1.0).item(), abs=1e-6)


def test_ms_ssim_scale_reduction_on_small_crops() -> None:
    assert [L.ms_ssim_scales(s) for s in (160, 128, 64, 37, 21, 11, 7)] == [4, 4, 3, 2, 2, 1, 1]
    x, y = _images(64, 64)
    with pytest.raises(AssertionError):  # the library refuses 64 px crops ...
        pytorch_msssim.ms_ssim(x, y, data_range=1.0)
    value = L.ms_ssim(x, y)  # ... ours uses 3 scales with renormalised weights
    assert 0 < value.item() < 1
    x8, y8 = _images(8, 9, b=1)  # below the 11 px window: the window shrinks
    assert 0 < L.ms_ssim_loss(x8, y8).item() < 1
    assert L.ms_ssim_loss(x8, x8).item() == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError):
        L.ms_ssim(torch.rand(1, 3, 2, 2), torch.rand(1, 3, 2, 2))


def test_ms_ssim_orders_degradation() -> None:
    x = torch.rand(1, 3, 64, 64)
    small = (x + 0.02 * torch.randn_like(x)).clamp(0, 1)
    large = (x + 0.2 * torch.randn_like(x)).clamp(0, 1)
    assert L.ms_ssim_loss(x, small) < L.ms_ssim_loss(x, large)


# ---------------------------------------------------------------- perceptual (VGG19)

# torchvision's vgg19().features conv indices: the names our extractor must reproduce
_TORCHVISION_CONVS = (0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34)


def test_perceptual_without_weights_is_a_clear_model_error() -> None:
    with pytest.raises(ModelError) as info:
        L.PerceptualLoss()
    message = str(info.value)
    assert "\n" not in message and "VGG19" in message and "nothing is downloaded" in message
    with pytest.raises(ModelError, match="not found"):
        L.PerceptualLoss(weights="/nonexistent/vgg19.pth")
    with pytest.raises(ModelError):
        L.build_loss("perceptual")


def test_vgg19_layer_names_match_torchvision() -> None:
    assert L.VGG19_LAYERS["relu1_1"] == 1 and L.VGG19_LAYERS["relu5_4"] == 35
    assert [L.VGG19_LAYERS[f"conv{b}_{c}"] for b, n in ((1, 2), (2, 2), (3, 4), (4, 4), (5, 4))
            for c in range(1, n + 1)] == list(_TORCHVISION_CONVS)


def _random_vgg19_state() -> dict[str, torch.Tensor]:
    """A torchvision-layout VGG19 'features' state dict with RANDOM weights (loading tests only)."""
    gen = torch.Generator().manual_seed(0)
    state: dict[str, torch.Tensor] = {}
    channels = [3, 64, 64, 128, 128, 256, 256, 256, 256, 512, 512, 512, 512, 512, 512, 512, 512]
    for i, index in enumerate(_TORCHVISION_CONVS):
        state[f"features.{index}.weight"] = torch.randn(channels[i + 1], channels[i], 3, 3, generator=gen) * 0.05
        state[f"features.{index}.bias"] = torch.zeros(channels[i + 1])
    state["classifier.6.bias"] = torch.zeros(10)  # torchvision files carry a classifier: ignored
    return state


@pytest.fixture(scope="module")
def random_vgg19(tmp_path_factory) -> tuple:
    """(path, state) of a random VGG19 features file, written once per module."""
    state = _random_vgg19_state()
    path = tmp_path_factory.mktemp("vgg") / "vgg19_random.pth"
    torch.save(state, path)
    return path, state


def test_perceptual_loads_a_torchvision_layout_file(random_vgg19) -> None:
    # Loading test only: the weights are random, so this checks names/shapes and plumbing, not quality.
    path, state = random_vgg19
    loss = L.PerceptualLoss(weights=path, layers={"relu1_2": 1.0, "relu2_2": 0.5})
    assert torch.equal(loss.vgg.features[2].weight, state["features.2.weight"])
    assert len(loss.vgg.features) == 9  # truncated after relu2_2
    assert all(not p.requires_grad for p in loss.parameters())
    loss.train()
    assert not loss.vgg.training
    x, y = _images(37, 53, b=1)
    assert loss(x, x.clone()).item() == pytest.approx(0.0, abs=1e-6)
    pred = x.clone().requires_grad_(True)
    value = loss(pred, y)
    assert value.item() > 0
    value.backward()
    assert torch.isfinite(pred.grad).all() and pred.grad.abs().sum() > 0
    full = L.VGG19Features(path, layers=("relu5_4",))
    assert sorted(full.state_dict()) == sorted(k for k in state if k.startswith("features."))


def test_perceptual_rejects_wrong_tensors(tmp_path) -> None:
    path = tmp_path / "wrong_shape.pth"
    torch.save({"features.0.weight": torch.zeros(8, 3, 3, 3), "features.0.bias": torch.zeros(8)}, path)
    with pytest.raises(ModelError, match="shape"):
        L.PerceptualLoss(weights=path, layers=["relu1_1"])
    with pytest.raises(ModelError, match="lacks"):
        L.PerceptualLoss(weights=path, layers=["relu2_1"])
    bad = tmp_path / "not_vgg.pth"
    torch.save({"conv.weight": torch.zeros(1)}, bad)
    with pytest.raises(ModelError, match="features"):
        L.PerceptualLoss(weights=bad)
    with pytest.raises(ValueError):
        L.VGG19Features(path, layers=("relu9_9",))
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a torch file")
    with pytest.raises(ModelError, match="cannot read"):
        L.PerceptualLoss(weights=junk)


# ---------------------------------------------------------------- adversarial

@pytest.mark.parametrize("kind", L.GAN_KINDS)
def test_gan_losses_order(kind: str) -> None:
    high, low = torch.full((4, 1, 3, 3), 3.0), torch.full((4, 1, 3, 3), -3.0)
    assert L.discriminator_loss(high, low, kind) < L.discriminator_loss(low, high, kind)
    assert L.generator_loss(high, kind) < L.generator_loss(low, kind)
    fake = torch.zeros(2, 1, requires_grad=True)
    L.generator_loss(fake, kind).backward()
    assert fake.grad is not None and (fake.grad < 0).all()  # raising D(fake) lowers the G loss


def test_bce_one_sided_label_smoothing() -> None:
    target_logit = math.log(0.9 / 0.1)
    fake = torch.full((1, 1), -5.0)
    at_smooth = L.discriminator_loss(torch.full((1, 1), target_logit), fake, "bce", real_label=0.9)
    overconfident = L.discriminator_loss(torch.full((1, 1), 10.0), fake, "bce", real_label=0.9)
    assert at_smooth < overconfident  # smoothing penalises over-confidence on reals
    no_smooth = L.discriminator_loss(torch.full((1, 1), 10.0), fake, "bce", real_label=1.0)
    assert no_smooth < at_smooth
    with pytest.raises(ValueError):
        L.discriminator_loss(fake, fake, "wgan")


@pytest.mark.parametrize("size", [(37, 53), (64, 64)])
def test_discriminators_shapes_and_spectral_norm(size: tuple[int, int]) -> None:
    x = torch.rand(2, 3, *size, requires_grad=True)
    patch = L.PatchDiscriminator(base_channels=8)
    out = patch(x)
    assert out.shape[:2] == (2, 1) and out.shape[2] >= 1 and out.shape[3] >= 1
    res = L.ResidualDiscriminator(base_channels=8, num_blocks=3)
    assert res(x).shape == (2, 1)
    for d in (patch, res):
        assert any("parametrizations.weight" in n for n, _ in d.named_parameters())
    (out.mean() + res(x).mean()).backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    with pytest.raises(ValueError):
        res(torch.rand(1, 3, 4, 4))


def test_adversarial_loss_generator_and_discriminator_sides() -> None:
    adv = L.AdversarialLoss("patch", kind="hinge", base_channels=8)
    pred = torch.rand(2, 3, 32, 32, requires_grad=True)
    target = torch.rand(2, 3, 32, 32)
    adv(pred).backward()
    assert pred.grad is not None and pred.grad.abs().sum() > 0
    pred.grad = None
    d_loss = adv.discriminator_loss(pred, target)
    d_loss.backward()
    assert pred.grad is None  # the D step does not reach the generator
    assert all(p.grad is not None for p in adv.discriminator_parameters() if p.requires_grad)
    cond = L.AdversarialLoss("residual", kind="lsgan", conditional=True, base_channels=8, num_blocks=2)
    assert cond(pred, target).ndim == 0
    with pytest.raises(ValueError, match="condition"):
        cond(pred)


# ---------------------------------------------------------------- contrastive

def test_info_nce_matched_lower_than_shuffled() -> None:
    q = torch.randn(16, 32)
    k = q + 0.1 * torch.randn_like(q)
    matched = L.info_nce(q, k, tau=0.1)
    shuffled = L.info_nce(q, k[torch.randperm(16)], tau=0.1)
    assert matched < shuffled
    assert matched.item() < 0.1 and shuffled.item() > math.log(16) - 1
    with pytest.raises(ValueError):
        L.info_nce(q, k, tau=0.0)


@pytest.mark.parametrize("mode", ["position", "sample"])
def test_contrastive_module_gradients_and_sizes(mode: str) -> None:
    loss = L.ContrastiveDistillationLoss(student_channels=8, teacher_channels=12, dim=16, tau=0.2, mode=mode)
    fs = torch.randn(4, 8, 19, 27, requires_grad=True)  # odd student size
    ft = torch.randn(4, 12, 37, 53)                       # teacher at another resolution
    value = loss(fs, ft)
    assert value.ndim == 0 and value.item() > 0
    value.backward()
    assert fs.grad is not None and fs.grad.abs().sum() > 0
    for head in (loss.student_head, loss.teacher_head):
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in head.parameters())


def test_contrastive_training_separates_pairs() -> None:
    # with learnable heads a few steps must lower the loss for matched feature pairs
    loss = L.ContrastiveDistillationLoss(4, 6, dim=8, tau=0.2, mode="sample")
    ft = torch.randn(8, 6, 4, 4)
    fs = ft[:, :4] * 2 + 0.05 * torch.randn(8, 4, 4, 4)
    opt = torch.optim.Adam(loss.parameters(), lr=2e-2)
    first = loss(fs, ft).item()
    for _ in range(15):
        opt.zero_grad()
        loss(fs, ft).backward()
        opt.step()
    assert loss(fs, ft).item() < first - 0.3
    shuffled = loss(fs, ft[torch.randperm(8)]).item()
    assert loss(fs, ft).item() < shuffled


def test_contrastive_batch_of_one_position_mode_and_lists() -> None:
    loss = L.ContrastiveDistillationLoss(3, 5, dim=8, grid=4)
    value = loss([torch.randn(1, 9, 6, 6), torch.randn(1, 3, 10, 10)], [torch.randn(1, 5, 12, 12)])
    assert torch.isfinite(value)
    with pytest.raises(ValueError):
        L.ContrastiveDistillationLoss(3, 5, mode="sample")(torch.randn(1, 3, 4, 4), torch.randn(1, 5, 4, 4))


# ---------------------------------------------------------------- attention

def test_attention_distillation() -> None:
    f = torch.randn(2, 8, 19, 27)
    assert L.attention_distillation_loss(f, f.clone()).item() == pytest.approx(0.0, abs=1e-7)
    assert L.attention_distillation_loss(f, 3 * f).item() == pytest.approx(0.0, abs=1e-6)  # scale-free
    s = torch.randn(2, 8, 19, 27, requires_grad=True)
    t = torch.randn(2, 16, 37, 53)  # different channels and size
    value = L.AttentionDistillationLoss()(s, t)
    assert 0 < value.item() <= 2
    value.backward()
    assert torch.isfinite(s.grad).all() and s.grad.abs().sum() > 0
    pair = L.attention_distillation_loss([s, f], [t, f])
    assert pair.item() == pytest.approx(value.item() / 2, rel=1e-5)
    assert L.attention_map(f).shape == (2, 1, 19, 27)
    with pytest.raises(ValueError):
        L.attention_distillation_loss([s], [t, t])


# ---------------------------------------------------------------- Zero-DCE

def test_zero_reference_losses() -> None:
    x, y = _images(37, 53)
    assert L.spatial_consistency_loss(x, x.clone()).item() == pytest.approx(0.0, abs=1e-8)
    assert L.spatial_consistency_loss(y, x).item() > 0
    assert L.spatial_consistency_loss(y, x, padding="replicate").item() > 0
    grey = torch.full((2, 3, 37, 53), 0.6)
    assert L.exposure_control_loss(grey).item() == pytest.approx(0.0, abs=1e-10)
    assert L.exposure_control_loss(grey * 0.3).item() == pytest.approx(0.42 ** 2, rel=1e-4)
    assert L.exposure_control_loss(torch.rand(1, 3, 8, 8)).ndim == 0  # smaller than a 16 px patch
    g = grey.clone().requires_grad_(True)
    col = L.color_constancy_loss(g)
    col.backward()
    assert col.item() == pytest.approx(0.0, abs=1e-10) and torch.isfinite(g.grad).all()
    tinted = grey * torch.tensor([1.0, 0.5, 0.2]).view(1, 3, 1, 1)
    assert L.color_constancy_loss(tinted).item() > 0.01
    flat = torch.full((2, 24, 37, 53), 0.3)
    assert L.illumination_smoothness_loss(flat).item() == 0.0
    assert L.illumination_smoothness_loss(torch.rand(2, 24, 37, 53)).item() > 0


def test_zero_reference_total_and_gradients() -> None:
    total = L.ZeroReferenceLoss()
    x = torch.rand(2, 3, 37, 53) * 0.2
    curves = (0.1 * torch.randn(2, 24, 37, 53)).requires_grad_(True)
    enhanced = x
    for i in range(8):
        a = curves[:, 3 * i:3 * i + 3]
        enhanced = enhanced + a * enhanced * (1 - enhanced)
    parts = total.components(enhanced, x, curves)
    value = total(enhanced, x, curves)
    expected = parts["spatial"] + 10 * parts["exposure"] + 5 * parts["color"] + 200 * parts["smoothness"]
    assert value.item() == pytest.approx(expected.item(), rel=1e-5)
    value.backward()
    assert torch.isfinite(curves.grad).all() and curves.grad.abs().sum() > 0


# ---------------------------------------------------------------- temporal

class _PositionDependent(nn.Module):
    """Brightens the right side more than the left: not consistent under motion."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.linspace(0.5, 1.5, x.shape[-1])


def test_temporal_consistency() -> None:
    x = torch.rand(2, 3, 37, 53)
    loss = L.TemporalConsistencyLoss(max_translation=0.05, max_rotation=2.0)
    assert loss(nn.Identity(), x).item() == pytest.approx(0.0, abs=1e-7)
    assert loss(_PositionDependent(), x).item() > 1e-3
    conv = nn.Conv2d(3, 3, 3, padding=1)
    value = loss(conv, x, output=conv(x))
    assert value.item() >= 0
    value.backward()
    assert conv.weight.grad is not None and torch.isfinite(conv.weight.grad).all()


def test_temporal_warp_and_mask() -> None:
    m = L.random_affine(3, 20, 30, max_translation=0.1, generator=torch.Generator().manual_seed(1))
    assert m.shape == (3, 2, 3)
    mask = L.valid_mask(m, 20, 30)
    assert mask.shape == (3, 1, 20, 30) and 0.5 < mask.mean().item() < 1.0
    assert L.valid_mask(m, 20, 30, margin=2).sum() < mask.sum()
    shift = torch.tensor([[[1.0, 0.0, 2.0], [0.0, 1.0, 0.0]]])  # 2 px to the right
    x = torch.rand(1, 1, 6, 8)
    assert torch.allclose(L.warp(x, shift)[..., 2:], x[..., :-2], atol=1e-5)
    with pytest.raises(ValueError):
        L.temporal_consistency_loss(nn.Identity(), torch.rand(2, 3, 8, 8), m)


# ---------------------------------------------------------------- hybrid and registry

COMPACT_CLARITY = {"charbonnier": 0.55, "fft": 0.08, "perceptual": 0.08, "ms_ssim": 0.20, "gradient": 0.15,
                   "adversarial": {"weight": 0.001, "kind": "bce", "base_channels": 8},
                   "contrastive": {"weight": 0.01, "student_channels": 8, "teacher_channels": 12, "dim": 16}}


def _batch(h: int = 64, w: int = 64) -> dict[str, torch.Tensor]:
    x, y = _images(h, w)
    return {"pred": x.requires_grad_(True), "target": y, "student_feats": torch.randn(2, 8, h // 4, w // 4),
            "teacher_feats": torch.randn(2, 12, h // 2, w // 2)}


def test_hybrid_compact_clarity_terms(random_vgg19) -> None:
    with pytest.raises(ModelError):
        L.HybridLoss.from_config(COMPACT_CLARITY)
    loss = L.HybridLoss.from_config(COMPACT_CLARITY, missing_ok=True)
    assert list(loss.skipped) == ["perceptual"] and "VGG19" in loss.skipped["perceptual"]
    batch = _batch()
    total, logs = loss(batch)
    assert set(logs) == {"charbonnier", "fft", "ms_ssim", "gradient", "adversarial", "contrastive", "total"}
    weighted = sum(loss.weights[n] * v for n, v in logs.items() if n != "total")
    assert total.item() == pytest.approx(weighted, rel=1e-5) and logs["total"] == pytest.approx(total.item())
    total.backward()
    assert batch["pred"].grad is not None
    heads = {id(p) for p in loss.terms["contrastive"].parameters()}
    trainable = {id(p) for p in loss.trainable_parameters()}
    disc = {id(p) for p in loss.discriminator_parameters()}
    assert heads <= trainable and disc and not (disc & trainable)
    d_total, d_logs = loss.discriminator_loss(batch)
    assert set(d_logs) == {"adversarial_d"} and torch.isfinite(d_total)

    path, _ = random_vgg19
    config = dict(COMPACT_CLARITY, perceptual={"weight": 0.08, "weights": str(path), "layers": ["relu1_2"]})
    full = L.HybridLoss.from_config(config)
    assert list(full.weights.values()) == [0.55, 0.08, 0.08, 0.20, 0.15, 0.001, 0.01]


def test_hybrid_weights_inputs_and_errors() -> None:
    loss = L.HybridLoss.from_config({"l1": 1.0, "to_teacher": {"type": "ms_ssim", "inputs": ["pred", "teacher"]},
                                     "attention": {"weight": 1.0}})
    x = torch.rand(1, 3, 32, 32)
    f = torch.randn(1, 4, 8, 8)
    total, logs = loss(pred=x, target=x, teacher=x, student_feats=f, teacher_feats=f)
    assert total.item() == pytest.approx(0.0, abs=1e-5)
    loss.set_weight("attention", 0.0)
    _, logs = loss(pred=x, target=x, teacher=x)  # attention not computed: its inputs are not needed
    assert "attention" not in logs
    with pytest.raises(KeyError, match="teacher"):
        loss(pred=x, target=x)
    with pytest.raises(InputError, match="unknown loss"):
        L.HybridLoss.from_config({"nope": 1.0})
    with pytest.raises(InputError, match="bad options"):
        L.build_loss("charbonnier", epsilon=1)
    assert L.WeightedLoss is L.HybridLoss


def test_registry_builds_every_loss(random_vgg19) -> None:
    path, _ = random_vgg19
    needs = {"perceptual": {"weights": str(path), "layers": ["relu1_1"]},
             "contrastive": {"student_channels": 4, "teacher_channels": 4},
             "adversarial": {"base_channels": 8}}
    for name in L.list_losses():
        module = L.build_loss(name, **needs.get(name, {}))
        assert isinstance(module, nn.Module) and module.input_keys, name


def test_losses_under_autocast_cpu_bfloat16() -> None:
    # mixed precision: FFT / SSIM compute in float32 internally, the rest must stay finite
    loss = L.HybridLoss.from_config(COMPACT_CLARITY, missing_ok=True)
    batch = _batch(48, 48)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        total, logs = loss(batch)
    assert torch.isfinite(total) and all(math.isfinite(v) for v in logs.values())
    total.backward()
    assert torch.isfinite(batch["pred"].grad).all()
