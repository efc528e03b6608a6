"""Image inputs: oversized images, folders with files that are skipped, grey and RGBA images."""

from __future__ import annotations

import os
import re
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from lowlight_rt.cli import main
from lowlight_rt.sources import images as image_source
from lowlight_rt.sources import open_source

ERROR_PREFIX = "lowlight-rt: error:"


def run_cli(capsys, *args: str | os.PathLike) -> tuple[int, str]:
    code = main([os.fspath(a) for a in args])
    return code, capsys.readouterr().err


def png_claiming(path: Path, width: int, height: int) -> Path:
    """A tiny valid PNG whose IHDR is patched to claim ``width x height`` (CRC fixed with zlib.crc32)."""
    ok, buf = cv2.imencode(".png", np.full((4, 4, 3), 40, np.uint8))
    assert ok
    data = bytearray(buf.tobytes())
    assert data[12:16] == b"IHDR"  # 8-byte signature, then length (4) + type (4) + 13 data bytes + CRC
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])) & 0xFFFFFFFF)
    path.write_bytes(bytes(data))
    return path


# -- item 9: an image that claims a huge size ------------------------------------------------------------
@pytest.mark.parametrize("width,height", [(100000, 100000), (20000, 20000)])
def test_huge_image_is_an_input_error_naming_its_size(capsys, tmp_path, width, height):
    """100000x100000 is over OpenCV's own limit (it used to end in 'internal error'); 20000x20000
    is under OpenCV's but over ours (it would need gigabytes)."""
    src = png_claiming(tmp_path / "huge.png", width, height)
    out = tmp_path / "out.png"
    code, err = run_cli(capsys, "-q", "--input", src, "--out", out)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 3, err
    assert len(lines) == 1 and lines[0].startswith(ERROR_PREFIX), err
    assert f"image too large: {width} x {height}" in lines[0]
    assert not out.exists()


def test_huge_image_in_a_format_pillow_cannot_parse(capsys, tmp_path, monkeypatch):
    """Without a header size, OpenCV's refusal still becomes 'image too large' (exit 3)."""
    monkeypatch.setattr(image_source, "image_header", lambda data: None)
    src = png_claiming(tmp_path / "huge.png", 100000, 100000)
    code, err = run_cli(capsys, "-q", "--input", src, "--out", tmp_path / "out.png")
    assert code == 3 and "image too large" in err and "internal error" not in err, err


def test_huge_image_in_a_folder_is_skipped(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    png_claiming(folder / "a_huge.png", 100000, 100000)
    cv2.imwrite(str(folder / "b_ok.png"), np.full((24, 32, 3), 30, np.uint8))
    source = open_source(folder)
    try:
        frames = list(source)
    finally:
        source.stop()
    assert [f.name for f in frames] == ["b_ok.png"]
    assert source.stats.decode_errors == 1
    assert source.summary_notes() == [("skipped", "1 unreadable image: a_huge.png (image too large: 100000 x 100000)")]


# -- item 11: folders (skipped files named), grey and alpha kept -----------------------------------------
def _dark_rgb(h: int = 36, w: int = 48, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    ramp = np.linspace(10, 60, w, dtype=np.float32)[None, :, None]
    return np.clip(ramp + rng.normal(0, 4, (h, w, 3)), 0, 255).astype(np.uint8)


def _alpha(h: int = 36, w: int = 48) -> np.ndarray:
    """A non-trivial alpha plane: a diagonal ramp with a fully transparent corner."""
    a = (np.add.outer(np.arange(h), np.arange(w)) * 255 // (h + w - 2)).astype(np.uint8)
    a[:6, :6] = 0
    return a


@pytest.fixture
def mixed_folder(tmp_path) -> Path:
    """3 good images (grey PNG, RGBA PNG, colour JPEG), 8 unreadable ones, a subfolder, a text file."""
    d = tmp_path / "photos"
    (d / "sub").mkdir(parents=True)
    rgb = _dark_rgb()
    cv2.imwrite(str(d / "a_grey.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))
    cv2.imwrite(str(d / "b_rgba.png"), cv2.merge([*cv2.split(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)), _alpha()]))
    cv2.imwrite(str(d / "c_colour.jpg"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    for i in range(7):
        (d / f"broken{i}.png").write_bytes(b"\x89PNG\r\n\x1a\n but the rest is not" * (i + 1))
    (d / "empty.jpg").write_bytes(b"")
    cv2.imwrite(str(d / "sub" / "inner.png"), rgb)
    (d / "notes.txt").write_text("not a picture\n")
    return d


def test_folder_summary_names_skipped_and_ignored_files(capsys, mixed_folder, tmp_path):
    out = tmp_path / "bright"
    code, err = run_cli(capsys, "--input", mixed_folder, "--out", out)
    assert code == 0, err
    assert re.search(r"frames in/out\s+3 / 3\s+dropped 0\s+decode errors 8", err), err
    skipped = [line for line in err.splitlines() if line.strip().startswith("skipped")]
    assert len(skipped) == 1, err
    # natural order: broken0..broken6, empty.jpg; the first five are named, the rest counted
    assert skipped[0].split(None, 1)[1] == ("8 unreadable images: broken0.png, broken1.png, broken2.png, "
                                            "broken3.png, broken4.png and 3 more")
    ignored = [line for line in err.splitlines() if line.strip().startswith("ignored")]
    assert len(ignored) == 1 and "1 subfolder(s), not entered: sub/" in ignored[0]
    assert "1 non-image file(s): notes.txt" in ignored[0]
    assert sorted(p.name for p in out.iterdir()) == ["a_grey.png", "b_rgba.png", "c_colour.jpg"]


def test_grey_stays_grey_and_alpha_is_copied(capsys, mixed_folder, tmp_path):
    out = tmp_path / "bright"
    code, err = run_cli(capsys, "-q", "--input", mixed_folder, "--out", out)
    assert code == 0, err
    grey_in = cv2.imread(str(mixed_folder / "a_grey.png"), cv2.IMREAD_UNCHANGED)
    grey_out = cv2.imread(str(out / "a_grey.png"), cv2.IMREAD_UNCHANGED)
    assert grey_in.ndim == 2 and grey_out.ndim == 2 and grey_out.shape == grey_in.shape
    assert grey_out.mean() > grey_in.mean() + 10  # enhanced
    rgba_in = cv2.imread(str(mixed_folder / "b_rgba.png"), cv2.IMREAD_UNCHANGED)
    rgba_out = cv2.imread(str(out / "b_rgba.png"), cv2.IMREAD_UNCHANGED)
    assert rgba_out.shape == rgba_in.shape == (36, 48, 4)
    assert np.array_equal(rgba_out[..., 3], rgba_in[..., 3])  # alpha copied exactly
    assert rgba_out[..., :3].mean() > rgba_in[..., :3].mean() + 10  # colour enhanced
    colour_out = cv2.imread(str(out / "c_colour.jpg"), cv2.IMREAD_UNCHANGED)
    assert colour_out.shape == (36, 48, 3)


def test_single_rgba_image_keeps_alpha_only_where_the_format_can(capsys, tmp_path):
    src = tmp_path / "logo.png"
    cv2.imwrite(str(src), cv2.merge([*cv2.split(_dark_rgb()), _alpha()]))
    code, err = run_cli(capsys, "-q", "--input", src, "--out", tmp_path / "logo_bright.webp")
    assert code == 0, err
    out = cv2.imread(str(tmp_path / "logo_bright.webp"), cv2.IMREAD_UNCHANGED)
    assert out.shape == (36, 48, 4)
    assert np.abs(out[..., 3].astype(int) - _alpha()).max() <= 1  # WebP (lossy colour, lossless alpha)
    code, err = run_cli(capsys, "-q", "--input", src, "--out", tmp_path / "logo_bright.jpg")
    assert code == 0, err
    assert cv2.imread(str(tmp_path / "logo_bright.jpg"), cv2.IMREAD_UNCHANGED).shape == (36, 48, 3)


def test_grey_with_alpha_and_16_bit_grey(tmp_path):
    from PIL import Image

    folder = tmp_path / "in"
    folder.mkdir()
    grey = cv2.cvtColor(_dark_rgb(), cv2.COLOR_RGB2GRAY)
    Image.fromarray(np.dstack([grey, _alpha()]), "LA").save(folder / "la.png")
    cv2.imwrite(str(folder / "deep.png"), grey.astype(np.uint16) * 257)
    source = open_source(folder)
    try:
        frames = {f.name: f for f in source}
    finally:
        source.stop()
    la, deep = frames["la.png"], frames["deep.png"]
    assert la.extra.get("grey") and np.array_equal(la.extra["alpha"], _alpha())
    assert np.array_equal(la.image[..., 0], grey) and np.array_equal(la.image[..., 2], grey)
    assert deep.extra.get("grey") and "alpha" not in deep.extra
    assert np.abs(deep.image[..., 1].astype(int) - grey).max() <= 1


@pytest.mark.parametrize("orientation", range(1, 9))
def test_alpha_images_are_turned_upright_like_colour_ones(tmp_path, orientation):
    """RGBA files are decoded without OpenCV's EXIF handling (which drops alpha): the orientation
    is applied by hand and must match Pillow's ``exif_transpose``, for colour and alpha alike."""
    from PIL import Image, ImageOps

    rgba = np.dstack([_dark_rgb(10, 16), _alpha(10, 16)])
    rgba[0, :3, :3] = 250  # a mark in the stored top-left corner
    img = Image.fromarray(rgba, "RGBA")
    exif = img.getexif()
    exif[0x0112] = orientation
    path = tmp_path / f"o{orientation}.png"
    img.save(path, exif=exif)
    expected = np.asarray(ImageOps.exif_transpose(Image.open(path)).convert("RGBA"))
    decoded = image_source.decode_image(path)
    assert decoded is not None and decoded.alpha is not None and not decoded.grey
    assert np.array_equal(decoded.rgb, expected[..., :3])
    assert np.array_equal(decoded.alpha, expected[..., 3])


def test_help_says_subfolders_are_not_entered(capsys):
    assert main(["--help"]) == 0
    help_text = " ".join(capsys.readouterr().out.split())
    assert "subfolders are not entered" in help_text
