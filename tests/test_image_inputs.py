"""Image inputs: oversized images, folders with files that are skipped, grey and RGBA images."""

from __future__ import annotations

import os
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
    monkeypatch.setattr(image_source, "image_header_size", lambda data: None)
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
