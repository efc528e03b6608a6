"""Training data pipeline (training.data): folders, synthetic pairs, SICE grouping, transforms,
progressive schedule, splits and the teacher-output cache. Generates its own pictures."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from lowlight_rt.errors import InputError
from training.data import (
    CachedTeacherDataset,
    PairedFolderDataset,
    PairTransform,
    ProgressiveSchedule,
    SyntheticPairDataset,
    TeacherCache,
    UnpairedFolderDataset,
    apply_augment,
    build_dataset,
    split_dataset,
    split_stems,
)
from training.data.sice import group_scenes, sice_pairs, thumbnail


def _texture(seed: int, h: int = 40, w: int = 56) -> np.ndarray:
    """A smooth, structured, well-lit RGB picture, (h, w, 3) uint8."""
    r = np.random.default_rng(seed)
    small = r.uniform(0.15, 0.85, (h // 8 + 1, w // 8 + 1, 3)).astype(np.float32)
    img = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    return (np.clip(img, 0, 1) * 255).round().astype(np.uint8)


def _write(path: Path, rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    params = [cv2.IMWRITE_JPEG_QUALITY, 98] if path.suffix in (".jpg", ".jpeg") else []
    if path.suffix == ".webp":
        params = [cv2.IMWRITE_WEBP_QUALITY, 101]  # lossless
    assert cv2.imwrite(str(path), rgb[..., ::-1], params)


@pytest.fixture
def paired_dir(tmp_path: Path) -> Path:
    """low/ and high/ with mixed extensions; low = high // 4 exactly (lossless formats)."""
    exts = {"a": (".png", ".webp"), "b": (".bmp", ".png"), "c": (".webp", ".bmp"), "d": (".png", ".png")}
    for i, (stem, (le, he)) in enumerate(exts.items()):
        high = _texture(i)
        _write(tmp_path / "high" / f"{stem}{he}", high)
        _write(tmp_path / "low" / f"{stem}{le}", high // 4)
    _write(tmp_path / "low" / "orphan.png", _texture(9))
    _write(tmp_path / "high" / "lonely.jpg", _texture(10))
    (tmp_path / "low" / "notes.txt").write_text("not an image")
    return tmp_path


# --- paired / unpaired folders -------------------------------------------------------------------

def test_paired_matches_by_stem_with_mixed_extensions(paired_dir, caplog):
    with caplog.at_level(logging.WARNING, logger="training.data"):
        ds = PairedFolderDataset(paired_dir)
    assert ds.stems == ["a", "b", "c", "d"]
    assert ds.unmatched_low == ["orphan"] and ds.unmatched_high == ["lonely"]
    assert "orphan" in caplog.text and "lonely" in caplog.text
    for i in range(len(ds)):
        item = ds[i]
        assert set(item) == {"low", "high", "name"}
        assert item["low"].shape == (3, 40, 56) and item["low"].dtype == torch.float32
        assert 0.0 <= item["low"].min() and item["high"].max() <= 1.0
        hi8 = (item["high"] * 255).round().to(torch.uint8)
        assert torch.equal((item["low"] * 255).round().to(torch.uint8), hi8 // 4)  # the right partner
    same = PairedFolderDataset((paired_dir / "low", paired_dir / "high"))
    assert same.stems == ds.stems
    with pytest.raises(InputError, match="orphan"):
        PairedFolderDataset(paired_dir, strict=True)


def test_paired_errors(tmp_path):
    with pytest.raises(InputError, match="not found"):
        PairedFolderDataset(tmp_path / "nothing")
    (tmp_path / "low").mkdir()
    (tmp_path / "high").mkdir()
    _write(tmp_path / "low" / "x.png", _texture(0, 32, 32))
    _write(tmp_path / "high" / "x.png", _texture(0, 40, 40))
    ds = PairedFolderDataset(tmp_path)
    with pytest.raises(InputError, match="differs in size"):
        ds[0]
    with pytest.raises(InputError, match="unknown dataset kind"):
        build_dataset("lol-v9", root=str(tmp_path))
    with pytest.raises(InputError, match="unknown option"):
        build_dataset("paired", root=str(tmp_path), crops=32)


def test_crops_flips_rotations_identical_for_the_pair(paired_dir):
    ds = PairedFolderDataset(paired_dir, crop=24, flip=True, rotate=True)
    torch.manual_seed(0)
    seen = set()
    for _ in range(12):
        for i in range(len(ds)):
            item = ds[i]
            assert item["low"].shape == (3, 24, 24) == item["high"].shape
            hi8 = (item["high"] * 255).round().to(torch.uint8)
            assert torch.equal((item["low"] * 255).round().to(torch.uint8), hi8 // 4)
            seen.add(float(item["high"].sum()))
    assert len(seen) > 20  # the windows / orientations really vary
    ds.set_crop(16)
    assert ds[0]["low"].shape == (3, 16, 16)
    ds.set_crop(64)  # larger than the picture: padded, still paired
    item = ds[1]
    assert item["low"].shape == (3, 64, 64)
    assert torch.equal((item["low"] * 255).round().to(torch.uint8), (item["high"] * 255).round().to(torch.uint8) // 4)


def test_transform_numpy_and_torch_agree():
    img = _texture(3)
    tf = PairTransform(crop=20, flip=True, rotate=True)
    for seed in range(8):
        p = tf.sample(40, 56, torch.Generator().manual_seed(seed))
        a = apply_augment(img, p)
        b = apply_augment(torch.from_numpy(img).permute(2, 0, 1), p).permute(1, 2, 0).numpy()
        assert a.shape == (20, 20, 3) and np.array_equal(a, b)
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    x = torch.rand(3, 40, 56)
    assert all(torch.equal(u, v) for u, v in zip(tf(x, x * 2, generator=g1), tf(x, x * 2, generator=g2)))
    with pytest.raises(ValueError):
        tf(x, torch.rand(3, 41, 56))


def test_unpaired_folder(tmp_path):
    for i in range(3):
        _write(tmp_path / f"{i + 1}.jpg", _texture(i))
    _write(tmp_path / "10.png", _texture(5))
    ds = UnpairedFolderDataset(tmp_path, crop=16, flip=True)
    assert ds.stems == ["1", "2", "3", "10"]  # natural order
    item = ds[0]
    assert set(item) == {"low", "name"} and item["low"].shape == (3, 16, 16)


# --- synthetic pairs -----------------------------------------------------------------------------

def test_synthetic_pairs_dark_noisy_and_seeded(tmp_path):
    for i in range(3):
        _write(tmp_path / f"img{i}.png", _texture(i, 48, 48))
    ds = SyntheticPairDataset(tmp_path, crop=32, flip=True, rotate=True, seed=7)
    a, b = ds[1], ds[1]
    assert a["low"].shape == a["high"].shape == (3, 32, 32)
    assert a["low"].mean() < 0.6 * a["high"].mean()
    assert torch.equal(a["low"], b["low"]) and torch.equal(a["high"], b["high"])
    fresh = SyntheticPairDataset(tmp_path, crop=32)
    torch.manual_seed(1)
    x = fresh[0]["low"]
    torch.manual_seed(2)
    assert not torch.equal(x, fresh[0]["low"])  # new noise / window per pass
    train, val = split_dataset(fresh, 0.34, seed=0)
    assert val[0]["low"].shape == (3, 48, 48)  # validation: whole picture
    assert torch.equal(val[0]["low"], val[0]["low"])  # and fixed noise
    assert not set(train.stems) & set(val.stems)
    fixed = build_dataset("synthetic", root=str(tmp_path), params={"exposure": 0.05, "read_noise": 0.0,
                                                                    "shot_noise": 1e6}, seed=0)
    assert fixed[0]["low"].mean() < 0.35 * fixed[0]["high"].mean()


# --- progressive schedule ------------------------------------------------------------------------

def test_progressive_schedule_numbers():
    s = ProgressiveSchedule([(1, 64, 32), (41, 128, 16), (81, 256, 4)], effective_batch=128)
    assert s(1) == (64, 32, 4) and s(40) == (64, 32, 4)
    assert s(41) == (128, 16, 8) and s(80) == (128, 16, 8)
    assert s(81) == (256, 4, 32) and s(250) == (256, 4, 32)
    assert {st.effective_batch for st in s.stages} == {128}
    assert s.boundaries() == [41, 81]
    s32 = ProgressiveSchedule([(81, 256, 4), (1, 64, 32), (41, 128, 16)], effective_batch=32)
    assert [st.accumulation for st in s32.stages] == [1, 2, 8]
    own = ProgressiveSchedule.from_config([{"epoch": 1, "crop": 128, "batch": 32},
                                           {"epoch": 31, "crop": 384, "batch": 8, "accumulation": 2}])
    assert own(31) == (384, 8, 2) and own.at(31).effective_batch == 16 and own(5) == (128, 32, 1)
    with pytest.raises(ValueError):
        ProgressiveSchedule([(1, 64, 32), (41, 128, 12)], effective_batch=32)
    with pytest.raises(ValueError):
        ProgressiveSchedule([])


# --- splits --------------------------------------------------------------------------------------

def test_split_disjoint_deterministic_and_order_independent():
    stems = [f"img{i:03d}" for i in range(200)]
    train, val = split_stems(stems, 0.1, seed=0)
    assert not set(train) & set(val) and set(train) | set(val) == set(stems)
    assert 8 <= len(val) <= 35
    assert split_stems(stems, 0.1, seed=0) == (train, val)
    rtrain, rval = split_stems(list(reversed(stems)), 0.1, seed=0)
    assert set(rval) == set(val)
    # a stem's side never depends on which other files exist
    _, val_half = split_stems(stems[:100], 0.1, seed=0)
    assert set(val_half) == {s for s in val if s in stems[:100]}
    _, other = split_stems(stems, 0.1, seed=1)
    assert set(other) != set(val)
    assert split_stems(["a", "b"], 0.01)[1]  # tiny sets still hold one out


def test_split_dataset_holds_out_whole_pictures(paired_dir):
    ds = PairedFolderDataset(paired_dir, crop=16, flip=True)
    train, val = split_dataset(ds, 0.3, seed=0)
    assert not set(train.stems) & set(val.stems) and len(train) + len(val) == len(ds)
    assert train[0]["low"].shape == (3, 16, 16)
    assert val[0]["low"].shape == (3, 40, 56)
    train.set_crop(24)
    val.set_crop(24)  # validation keeps whole pictures
    assert train[0]["low"].shape == (3, 24, 24) and val[0]["low"].shape == (3, 40, 56)
    # a synthetic set built from high/ can exclude the same validation stems
    syn = SyntheticPairDataset(paired_dir / "high", exclude_stems=val.stems)
    assert not set(syn.stems) & set(val.stems)


# --- teacher cache -------------------------------------------------------------------------------

class _CountingTeacher(nn.Module):
    """A frozen 'teacher' whose calls are counted: out = 0.5 + 0.5 * x, features = 2x2 average pool."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(0.5))
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return (0.5 + self.scale * x).clamp(0, 1)

    def forward_features(self, x: torch.Tensor):
        return self.forward(x), [F.avg_pool2d(x, 2), F.avg_pool2d(x, 4)]


def test_cache_hit_avoids_recomputation(paired_dir, tmp_path):
    teacher = _CountingTeacher()
    ds = PairedFolderDataset(paired_dir, crop=16, flip=True, rotate=True)
    cache = TeacherCache(tmp_path / "cache", teacher, "toy-teacher")
    cds = CachedTeacherDataset(ds, cache, output_key="teacher")
    for _ in range(3):
        for i in range(len(cds)):
            item = cds[i]
            assert set(item) == {"low", "high", "teacher", "name"} and item["teacher"].shape == (3, 16, 16)
            # cropped together: the teacher output is the teacher applied to this very low crop
            assert torch.allclose(item["teacher"], 0.5 + 0.5 * item["low"], atol=2e-3)
    assert teacher.calls == len(ds) == cache.misses and cache.hits == 2 * len(ds)
    files = list((tmp_path / "cache").rglob("*.pt"))
    assert len(files) == len(ds)
    entry = torch.load(files[0], weights_only=True)
    assert entry["out"].dtype == torch.float16 and entry["out"].shape == (3, 40, 56)  # full resolution

    again = TeacherCache(tmp_path / "cache", teacher, "toy-teacher")  # a new run: reads the disk
    again.precompute(ds, progress=False)
    assert teacher.calls == len(ds) and again.hits == len(ds)
    other = TeacherCache(tmp_path / "cache", teacher, "another-teacher")
    other.get(ds.paths(0)[0], ds.load_full(0)["low"])
    assert teacher.calls == len(ds) + 1  # another teacher id is another key
    low_path = ds.paths(1)[0]
    st = low_path.stat()
    os.utime(low_path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # the image changed
    again.get(low_path, ds.load_full(1)["low"])
    assert teacher.calls == len(ds) + 2


def test_cache_features_cropped_at_their_resolution(paired_dir, tmp_path):
    teacher = _CountingTeacher()
    ds = PairedFolderDataset(paired_dir, crop=16, flip=True, rotate=True)
    cache = TeacherCache(tmp_path / "c", teacher, "toy", with_features=True, pad_multiple=4)
    cds = CachedTeacherDataset(ds, cache, output_key="teacher", feats_key="teacher_feats", precompute=True)
    assert teacher.calls == len(ds)
    torch.manual_seed(3)
    for i in range(len(cds)):
        item = cds[i]
        f2, f4 = item["teacher_feats"]
        assert f2.shape == (3, 8, 8) and f4.shape == (3, 4, 4)
        assert torch.allclose(f2, F.avg_pool2d(item["low"][None], 2)[0], atol=2e-3)
        assert torch.allclose(f4, F.avg_pool2d(item["low"][None], 4)[0], atol=2e-3)
    assert teacher.calls == len(ds)
    with pytest.raises(TypeError):
        CachedTeacherDataset(SyntheticPairDataset(paired_dir / "high"), cache)


# --- SICE scene grouping -------------------------------------------------------------------------

def _exposures(img: np.ndarray, levels) -> list[np.ndarray]:
    lin = (img.astype(np.float32) / 255.0) ** 2.2
    return [(np.clip(lin * k, 0, 1) ** (1 / 2.2) * 255).round().astype(np.uint8) for k in levels]


def test_sice_grouping_on_a_generated_sequence(tmp_path):
    ramp = [0.03, 0.12, 0.4, 1.0, 2.5]
    scenes = [
        _exposures(_texture(1, 64, 64), ramp),
        _exposures(_texture(2, 64, 64), ramp[:3] + [0.9]),
        _exposures(_texture(3, 64, 64), [1.0, 2.5, 0.03, 0.12, 0.4]),  # stored out of exposure order
        _exposures(_texture(4, 64, 64), [0.1, 0.8, 2.0]),
    ]
    n = 1
    expected = []
    for sc in scenes:
        expected.append([f"{n + k}.jpg" for k in range(len(sc))])
        for img in sc:
            _write(tmp_path / f"{n}.jpg", img)
            n += 1
    _write(tmp_path / f"{n}.jpg", _texture(7, 64, 64))  # a lone image: no pair
    pairs = sice_pairs(tmp_path)
    assert [[p.name for p in pr.scene] for pr in pairs] == expected
    for pr, sc in zip(pairs, scenes):
        means = [im.mean() / 255 for im in sc]
        names = [f.name for f in pr.scene]
        assert pr.low.name == names[int(np.argmin(means))]  # the darkest
        assert abs(pr.high_mean - 0.45) == pytest.approx(min(abs(m - 0.45) for j, m in enumerate(means)
                                                             if names[j] != pr.low.name), abs=0.02)
    ds = build_dataset("sice", root=str(tmp_path), crop=32)
    assert len(ds) == 4 and ds[0]["low"].mean() < ds[0]["high"].mean()
    groups = group_scenes([thumbnail(tmp_path / f"{i}.jpg") for i in range(1, n + 1)])
    assert [len(g) for g in groups] == [5, 4, 5, 3, 1]


# ../shared next to the checkout (or $LOWLIGHT_SHARED), never a machine-specific absolute path
SHARED = (Path(os.environ["LOWLIGHT_SHARED"]) if os.environ.get("LOWLIGHT_SHARED")
          else Path(__file__).resolve().parents[1] / ".." / "shared")
SICE_PART1 = SHARED / "data" / "sice-part1"


@pytest.mark.shared
@pytest.mark.skipif(not SICE_PART1.is_dir(), reason="needs ../shared/data/sice-part1 (or $LOWLIGHT_SHARED)")
def test_sice_part1_first_scene_matches_readme():
    import training.data.sice as sice

    paths = sorted(SICE_PART1.glob("*.jpg"), key=lambda p: int(p.stem))[:20]
    groups = group_scenes([thumbnail(p) for p in paths])
    assert [paths[i].stem for i in groups[1]] == [str(k) for k in range(2, 9)]
    assert sice.similarity(thumbnail(paths[1]), thumbnail(paths[7])) > 0.5


def test_caches_of_two_teachers_stack(paired_dir, tmp_path):
    t1, t2 = _CountingTeacher(), _CountingTeacher()
    with torch.no_grad():
        t2.scale.fill_(0.25)
    ds = PairedFolderDataset(paired_dir, crop=16, flip=True, rotate=True)
    inner = CachedTeacherDataset(ds, TeacherCache(tmp_path / "c", t1), output_key="t1")
    both = CachedTeacherDataset(inner, TeacherCache(tmp_path / "c", t2), output_key="t2")
    assert inner.cache.teacher_id != both.cache.teacher_id  # fingerprints differ with the weights
    for _ in range(2):
        for i in range(len(both)):
            item = both[i]
            assert torch.allclose(item["t1"], 0.5 + 0.5 * item["low"], atol=2e-3)
            assert torch.allclose(item["t2"], 0.5 + 0.25 * item["low"], atol=2e-3)
    assert t1.calls == t2.calls == len(ds)
